#!/usr/bin/python3
"""Kiln vs ONNX Runtime, side by side, on the real models.

For each model x thread count: writes one input set (.npy, fixed seed), then runs `kiln bench`
and bench/ort_bench.js in separate processes, interleaved over --rounds rounds (kiln, ort in even
rounds; ort, kiln in odd ones), each process doing a first run, --warmup untimed runs and --iters
timed runs. Each cell of the table is the median over the rounds of the per-process value (median,
p90, peak RSS, load time, first run), except "min": the fastest single run over all rounds.
Prints a markdown table (and writes it to --out).

  /usr/bin/python3 bench/side_by_side.py [--models det,rec,cls,silero_vad] [--threads 1,2]
      (also resnet50,mobilenet_v2,efficientnet_b0,rrdb_x4 after bench/export_models.py)
      [--rounds 3] [--warmup 2] [--iters 10] [--kiln build/kiln] [--variant int8=DIR]...
      [--out table.md] [--raw results.json]

Needs numpy only. ONNX Runtime and the models come from .deps/npm (scripts/setup.sh).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCR_DIR = os.path.join('node_modules', '@gutenye', 'ocr-models', 'assets')


def page(h, w):
    """A synthetic text page (as Page() in tests/unit/precision_test.cc): rows of dark glyphs."""
    y = np.arange(h).reshape(h, 1)
    x = np.arange(w).reshape(1, w)
    ink = ((y % 32) >= 10) & ((y % 32) < 22) & ((x % 48) < 36) & ((x // 3) % 3 != 0)
    plane = np.where(ink, np.float32(-1.7), np.float32(1.9)).astype(np.float32)
    return np.broadcast_to(plane, (1, 3, h, w)).copy()


def uniform(rng, shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


# name -> (model file under the npm folder, function(rng) -> {input name: array})
MODELS = {
    'det': (os.path.join(OCR_DIR, 'ch_PP-OCRv4_det_infer.onnx'),
            lambda rng: {'x': page(640, 640)}),
    'rec': (os.path.join(OCR_DIR, 'ch_PP-OCRv4_rec_infer.onnx'),
            lambda rng: {'x': uniform(rng, (1, 3, 48, 320))}),
    'cls': (os.path.join(OCR_DIR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
            lambda rng: {'x': uniform(rng, (1, 3, 48, 192))}),
    'silero_vad': (os.path.join('models', 'silero_vad.onnx'),
                   lambda rng: {'input': uniform(rng, (1, 512), -0.1, 0.1),
                                'state': np.zeros((2, 1, 128), np.float32),
                                'sr': np.array(16000, np.int64)}),
}
DEFAULT_MODELS = list(MODELS)
# Vision models exported with random weights by bench/export_models.py (not in the default list:
# they need python3-torch to make): inputs uniform in [0, 1).
VISION_DIR = os.path.join(REPO, 'build', 'cache', 'bench_models')
for _name, _shape in (('resnet50', (1, 3, 224, 224)), ('mobilenet_v2', (1, 3, 224, 224)),
                      ('efficientnet_b0', (1, 3, 224, 224)), ('rrdb_x4', (1, 3, 128, 128))):
    MODELS[_name] = (os.path.join(VISION_DIR, _name + '.onnx'),
                     lambda rng, s=_shape: {'input': uniform(rng, s, 0.0, 1.0)})
# Further exports there (export_models.py --models convnext_tiny,...): 1x3x224x224 'input'.
if os.path.isdir(VISION_DIR):
    for _f in sorted(os.listdir(VISION_DIR)):
        if _f.endswith('.onnx') and _f[:-5] not in MODELS:
            MODELS[_f[:-5]] = (os.path.join(VISION_DIR, _f),
                               lambda rng: {'input': uniform(rng, (1, 3, 224, 224), 0.0, 1.0)})


def variant_inputs(model_path, inputs, tmp, stem):
    """-i arguments for a variant: float inputs cast to the model's float type (fp16 models)."""
    import onnx  # python3-onnx; only needed for variants
    model = onnx.load(model_path, load_external_data=False)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    args = []
    for name, arr in inputs.items():
        if types.get(name) == onnx.TensorProto.FLOAT16 and arr.dtype == np.float32:
            arr = arr.astype(np.float16)
        f = os.path.join(tmp, f'{stem}_{name}.npy')
        np.save(f, arr)
        args += ['-i', f'{name}={f}']
    return args


def fail(message):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(1)


def int_list(text, what):
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        fail(f'{what}: expected comma-separated integers, got {text!r}')
    if not values or min(values) < 1:
        fail(f'{what}: expected integers >= 1, got {text!r}')
    return values


def machine():
    cpu, flags = platform.machine(), ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                elif line.startswith('flags'):
                    flags = line.split(':', 1)[1].split()
    except OSError:
        pass
    simd = [s for s in ('avx2', 'fma', 'f16c', 'avx512f', 'avx512_vnni', 'avx_vnni') if s in flags]
    return f'{cpu}, {os.cpu_count()} cores, {"/".join(simd) or "no AVX2"}'


def median(values):
    return statistics.median(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', default=','.join(DEFAULT_MODELS),
                    help='comma-separated: ' + ','.join(MODELS))
    ap.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    ap.add_argument('--rounds', type=int, default=3, help='processes per engine, interleaved')
    ap.add_argument('--warmup', type=int, default=2, help='untimed runs after the first one')
    ap.add_argument('--iters', type=int, default=10, help='timed runs per process')
    ap.add_argument('--kiln', default=os.path.join(REPO, 'build', 'kiln'), help='kiln binary')
    ap.add_argument('--node', default='node', help='node binary')
    ap.add_argument('--npm-dir', default=os.environ.get('KILN_NPM_DIR',
                                                        os.path.join(REPO, '.deps', 'npm')),
                    help='folder with node_modules/onnxruntime-node and the models')
    ap.add_argument('--variant', action='append', default=[],
                    help='NAME=DIR: also time Kiln on the model files in DIR (e.g. int8=out/q8, '
                         'files found by "det"/"rec"/"cls" in their names), against ONNX Runtime '
                         'fp32 and Kiln fp32 (repeatable)')
    ap.add_argument('--isa', default='auto',
                    help='comma-separated ISA levels to run Kiln at (kiln bench --isa: auto, '
                         'portable, avx2, avx512, avx512vnni; capped by the CPU): one Kiln row '
                         'per level, e.g. auto,avx2 for the AVX2 path beside the best one')
    ap.add_argument('--seed', type=int, default=0, help='seed of the random inputs')
    ap.add_argument('--out', help='also write the markdown table to this file')
    ap.add_argument('--raw', help='write every per-process JSON result to this file')
    a = ap.parse_args()

    models = [m.strip() for m in a.models.split(',') if m.strip()]
    for m in models:
        if m not in MODELS:
            fail(f'--models: unknown model {m!r} (known: {", ".join(MODELS)})')
    threads = int_list(a.threads, '--threads')
    if a.rounds < 1 or a.iters < 1 or a.warmup < 0:
        fail('--rounds and --iters must be >= 1, --warmup >= 0')
    variants = []  # (name, folder)
    for v in a.variant:
        name, sep, folder = v.partition('=')
        if not sep or not name or not os.path.isdir(folder):
            fail(f'--variant {v!r}: expected NAME=DIR with an existing folder')
        variants.append((name, folder))
    isas = [x.strip() for x in a.isa.split(',') if x.strip()]
    known_isas = ('auto', 'portable', 'avx2', 'avx512', 'avx512vnni')
    for x in isas:
        if x not in known_isas:
            fail(f'--isa: unknown level {x!r} (known: {", ".join(known_isas)})')
    if not isas or len(set(isas)) != len(isas):
        fail('--isa: give each level once')
    if not os.access(a.kiln, os.X_OK):
        fail(f'--kiln {a.kiln}: no such executable (build it: ninja -C build kiln)')
    ort_bench = os.path.join(REPO, 'bench', 'ort_bench.js')
    env_npm = dict(os.environ, KILN_NPM_DIR=a.npm_dir)

    load_before = os.getloadavg()[0]
    rows, raw = [], []
    with tempfile.TemporaryDirectory(prefix='kiln_bench_') as tmp:
        for m in models:
            rel, make_inputs = MODELS[m]
            model_path = os.path.join(a.npm_dir, rel)
            if not os.path.isfile(model_path):
                fail(f'model {m}: no such file {model_path} (run scripts/setup.sh, or '
                     f'bench/export_models.py for the vision models)')
            inputs = make_inputs(np.random.default_rng(a.seed))
            input_args = []
            for name, arr in inputs.items():
                f = os.path.join(tmp, f'{m}_{name}.npy')
                np.save(f, arr)
                input_args += ['-i', f'{name}={f}']
            for t in threads:
                common = input_args + ['--threads', str(t), '--warmup', str(a.warmup),
                                       '--iters', str(a.iters)]
                cmds = {'ort': [a.node, ort_bench, model_path] + common}
                for isa in isas:
                    # Engine keys: kiln[:variant][@isa] (no @ for auto).
                    at = '' if isa == 'auto' else '@' + isa
                    isa_args = [] if isa == 'auto' else ['--isa', isa]
                    cmds['kiln' + at] = ([a.kiln, 'bench', model_path] + common + isa_args
                                         + ['--json', '-'])
                    for name, folder in variants:
                        found = [f for f in sorted(os.listdir(folder))
                                 if f.endswith('.onnx') and m in f]
                        if found:
                            vpath = os.path.join(folder, found[0])
                            vargs = variant_inputs(vpath, inputs, tmp, f'{m}_{name}')
                            cmds['kiln:' + name + at] = (
                                [a.kiln, 'bench', vpath] + vargs + common[len(input_args):]
                                + isa_args + ['--json', '-'])
                got = {e: [] for e in cmds}
                for r in range(a.rounds):
                    order = list(cmds) if r % 2 == 0 else list(reversed(list(cmds)))
                    for engine in order:
                        cmd = cmds[engine]
                        res = subprocess_json(cmd, f'{engine} on {m}', env_npm)
                        got[engine].append(res)
                        raw.append({'model': m, 'threads': t, 'round': r, 'engine': engine,
                                    'result': res})
                        print(f'{m} threads {t} round {r + 1}/{a.rounds} {engine}: median '
                              f'{res["median_ms"]:.2f} ms', file=sys.stderr)
                keys = ('median_ms', 'p90_ms', 'peak_rss_mb', 'load_ms', 'first_run_ms')
                agg = {e: {k: median([g[k] for g in got[e]]) for k in keys} for e in got}
                for e in got:  # the fastest run of all: least disturbed by other load
                    agg[e]['min_ms'] = min(g['min_ms'] for g in got[e])
                rows.append((m, t, agg))

    ort_version = next((x['result'].get('version') for x in raw if x['engine'] == 'ort'), '?')
    lines = [
        f'{datetime.date.today().isoformat()}, {machine()}; '
        f'ONNX Runtime {ort_version} (CPU EP); {a.rounds} rounds x (first + {a.warmup} warmup + '
        f'{a.iters} timed runs) per engine; each cell the median over rounds; load average '
        f'{load_before:.2f} before, {os.getloadavg()[0]:.2f} after.',
        '',
        '| model | kiln variant | kiln ISA | threads | kiln median ms | ort fp32 median ms | kiln/ort '
        '| vs kiln fp32 | kiln p90 ms | ort p90 ms '
        '| kiln peak RSS MB | ort peak RSS MB | kiln load ms | ort load ms | kiln min ms '
        '| ort min ms | kiln first ms | ort first ms |',
        '| --- | --- | --- |' + ' ---: |' * 15,
    ]
    for m, t, g in rows:
      o = g['ort']
      for engine in g:
        if engine == 'ort':
            continue
        k = g[engine]
        base, _, isa = engine.partition('@')
        variant = 'fp32' if base == 'kiln' else base.split(':', 1)[1]
        fp32 = g['kiln' + ('@' + isa if isa else '')]  # Kiln fp32 at the same ISA level
        ratio = k['median_ms'] / o['median_ms'] if o['median_ms'] > 0 else float('inf')
        speedup = fp32['median_ms'] / k['median_ms'] if k['median_ms'] > 0 else float('inf')
        lines.append(f'| {m} | {variant} | {isa or "auto"} | {t} | {k["median_ms"]:.2f} | '
                     f'{o["median_ms"]:.2f} | '
                     f'{ratio:.2f} | {speedup:.2f}x | '
                     f'{k["p90_ms"]:.2f} | {o["p90_ms"]:.2f} | {k["peak_rss_mb"]:.1f} | '
                     f'{o["peak_rss_mb"]:.1f} | {k["load_ms"]:.1f} | {o["load_ms"]:.1f} | '
                     f'{k["min_ms"]:.2f} | {o["min_ms"]:.2f} | {k["first_run_ms"]:.1f} | '
                     f'{o["first_run_ms"]:.1f} |')
    if raw:
        # Kiln's engines (variants, ISA levels) start the same process: one baseline for all.
        base = {e: median([x['result']['rss_before_load_mb'] for x in raw
                           if x['engine'].split(':')[0].split('@')[0] == e])
                for e in ('kiln', 'ort')}
        lines += ['', f'Resident set before loading a model (inputs read): '
                      f'kiln {base["kiln"]:.1f} MB, ort {base["ort"]:.1f} MB (Node.js itself); '
                      f'peak RSS includes it.']
    table = '\n'.join(lines) + '\n'
    print(table, end='')
    if a.out:
        with open(a.out, 'w') as f:
            f.write(table)
    if a.raw:
        with open(a.raw, 'w') as f:
            json.dump(raw, f, indent=1)


def subprocess_json(cmd, what, env):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    except FileNotFoundError:
        fail(f'{what}: cannot start {cmd[0]}')
    except subprocess.TimeoutExpired:
        fail(f'{what} took longer than 30 minutes: {" ".join(cmd)}')
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ['(no message)'])[-1]
        fail(f'{what} failed (exit {p.returncode}): {err}; command: {" ".join(cmd)}')
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        fail(f'{what} did not print JSON: {p.stdout[:200]!r}')


if __name__ == '__main__':
    main()
