#!/usr/bin/python3
"""Cold start, side by side: a process's first result from a compiled Kiln package vs ONNX
Runtime's session create + first run, on the same model, input and thread count.

For each model: `kiln pack` + `kiln compile --mode compile` (a float plan for the input's
signature); with --int8 DIR also the QDQ file of DIR packed and compiled (an int8 plan). Then,
over --rounds interleaved rounds, fresh processes of:
  kiln bench PKG        load = open the package, verify and map the plan, create the session
                        (no import, no passes); first = the first run (its per-signature plan:
                        shapes, partitions, XNNPACK weight packing, memory plan, then the run)
  kiln bench MODEL.onnx the same from the bare ONNX file (import + passes), for reference
  node ort_bench.js     ONNX Runtime session create + first run
Each cell is the median over rounds of the per-process value. Also reports recording's cost
per run (OnDeviceCompilation = 1, fresh processes of `kiln run`): the time the run itself pays
(copying its inputs for the recorder thread) and the recorder thread's write, as a share of
the run.

  /usr/bin/python3 bench/cold_start.py [--models det,rec,cls] [--threads 1] [--rounds 7]
      [--int8 DIR] [--out table.md]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import side_by_side as sbs  # noqa: E402


def run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        sbs.fail(f'{what} failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-300:]}')
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', default='det,rec,cls')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--record-runs', type=int, default=7, help='processes for the recording cost')
    ap.add_argument('--int8', help='folder of QDQ files (det/rec/cls in their names), e.g. from '
                                   'bench/ocr/accuracy.py --make-int8')
    ap.add_argument('--kiln', default=os.path.join(sbs.REPO, 'build', 'kiln'))
    ap.add_argument('--node', default='node')
    ap.add_argument('--npm-dir', default=os.path.join(sbs.REPO, '.deps', 'npm'))
    ap.add_argument('--out', help='also write the markdown table here')
    a = ap.parse_args()
    ort_bench = os.path.join(BENCH, 'ort_bench.js')
    env = dict(os.environ, KILN_NPM_DIR=a.npm_dir)
    rows, rec_rows = [], []
    with tempfile.TemporaryDirectory(prefix='kiln_cold_') as tmp:
        for m in a.models.split(','):
            rel, make_inputs = sbs.MODELS[m]
            onnx_file = os.path.join(a.npm_dir, rel)
            inputs = make_inputs(np.random.default_rng(0))
            (name, arr), = inputs.items()
            x = os.path.join(tmp, f'{m}.npy')
            np.save(x, arr)
            shape = ','.join(str(d) for d in arr.shape)
            common = ['-i', f'{name}={x}', '--threads', str(a.threads), '--warmup', '0',
                      '--iters', '3']
            cmds = {'ort': [a.node, ort_bench, onnx_file] + common,
                    'kiln onnx': [a.kiln, 'bench', onnx_file] + common + ['--json', '-']}
            variants = [('fp32', onnx_file)]
            if a.int8:
                found = [f for f in sorted(os.listdir(a.int8)) if f.endswith('.onnx') and m in f]
                if found:
                    variants.append(('int8', os.path.join(a.int8, found[0])))
            for v, src in variants:
                pkg = os.path.join(tmp, f'{m}_{v}.kiln')
                run([a.kiln, 'pack', src, '-o', pkg, '--config', f'Threads={a.threads}'], 'pack')
                run([a.kiln, 'compile', pkg, '--mode', 'compile', '--shape', f'{name}={shape}',
                     '--threads', str(a.threads)], 'compile')
                cmds[f'kiln {v} plan'] = [a.kiln, 'bench', pkg] + common + ['--json', '-']
            got = {e: [] for e in cmds}
            for r in range(a.rounds):
                order = list(cmds) if r % 2 == 0 else list(reversed(list(cmds)))
                for e in order:
                    res = sbs.subprocess_json(cmds[e], f'{e} on {m}', env)
                    if e != 'ort' and 'plan' in e and 'compiled plan' not in res.get('served_by', ''):
                        sbs.fail(f'{e} on {m}: not served by its plan: {res.get("served_by")}')
                    got[e].append(res)
            med = {e: {k: statistics.median(g[k] for g in got[e])
                       for k in ('load_ms', 'first_run_ms', 'median_ms')} for e in got}
            ort_total = statistics.median(g['load_ms'] + g['first_run_ms'] for g in got['ort'])
            for e in got:
                total = statistics.median(g['load_ms'] + g['first_run_ms'] for g in got[e])
                rows.append((m, e, med[e]['load_ms'], med[e]['first_run_ms'], total,
                             total / ort_total, med[e]['median_ms']))
                print(f'{m} {e}: load {med[e]["load_ms"]:.1f} ms, first {med[e]["first_run_ms"]:.1f} '
                      f'ms, total {total:.1f} ms ({total / ort_total:.2f}x ORT)', file=sys.stderr)
            # Recording cost: a package with ODC on that never reaches its job.
            pkg = os.path.join(tmp, f'{m}_rec.kiln')
            run([a.kiln, 'pack', onnx_file, '-o', pkg, '--config', 'OnDeviceCompilation=1',
                 '--config', 'OdcRecords=100000', '--config', f'Threads={a.threads}'], 'pack')
            fg, bg, runs = [], [], []
            for r in range(a.record_runs):
                out = run([a.kiln, 'run', pkg, '-i', f'{name}={x}', '--repeat', '3',
                           '--threads', str(a.threads)], 'run')
                mm = re.search(r'recording ([0-9.]+) ms, writing ([0-9.]+) ms', out)
                mr = re.search(r'median ([0-9.]+) ms', out)
                if not mm or not mr:
                    sbs.fail(f'kiln run on {m}: no recording cost printed:\n{out[-400:]}')
                fg.append(float(mm.group(1)))
                bg.append(float(mm.group(2)))
                runs.append(float(mr.group(1)))
            rec_rows.append((m, statistics.median(runs), statistics.median(fg),
                             statistics.median(bg), arr.nbytes / 1e6))
    lines = [f'Cold start, {sbs.machine()}; {a.threads} thread(s); median of {a.rounds} '
             f'interleaved rounds of fresh processes; `bench/cold_start.py`.', '',
             '| model | engine | load ms | first run ms | load + first ms | vs ORT | steady ms |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for m, e, lo, fi, to, ratio, st in rows:
        lines.append(f'| {m} | {e} | {lo:.1f} | {fi:.1f} | {to:.1f} | {ratio:.2f}x | {st:.2f} |')
    lines += ['', 'Recording (OnDeviceCompilation = 1, one sample kept per run): cost to the run '
              '(copy of the inputs), and the recorder thread\'s write, vs the steady-state run.', '',
              '| model | sample MB | run ms | recording, paid by the run ms | share | '
              'recorder write ms |', '| --- | --- | --- | --- | --- | --- |']
    for m, run_ms, f, b, mb in rec_rows:
        lines.append(f'| {m} | {mb:.2f} | {run_ms:.2f} | {f:.2f} | {100 * f / run_ms:.1f} % | '
                     f'{b:.2f} |')
    text = '\n'.join(lines) + '\n'
    print(text)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
