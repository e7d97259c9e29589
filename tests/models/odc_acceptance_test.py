#!/usr/bin/python3
"""On-device compilation end to end, through the command line (issue 10's acceptance).

For PP-OCRv4 det (rendered pages with Chinese and Latin text) and rec (rendered lines: Chinese,
Latin and mixed): a package with OnDeviceCompilation = 1, OdcTrigger = records, OdcRecords = 32,
OdcMode = quantize is run 40 times, in 40 `kiln run` processes, on 40 distinct inputs. Then:

  - the package holds a quantized model and a compiled int8 plan, its MANIFEST lists both with
    their hashes, and its ODC history has the accepted job with its measurements (the job's own
    side-by-side timing says the int8 plan is faster than the float model: the job never
    accepts a slower one);
  - the next `kiln run` serves the int8 plan (what it prints), and neither it nor the runs after
    the job recorded anything more;
  - on held-out inputs of a separate draw, the package (int8 plan) and the float model are scored
    on the task (det: box recall and precision against the rendered boxes; rec: exact lines and
    1-NED, per script) and against each other; the int8 plan must stay within the gate
    (OdcMaxAccuracyLoss, measured as the job measures it) and within a task bar of the float
    model (a small held-out set here: see --max-drop).

  /usr/bin/python3 tests/models/odc_acceptance_test.py --kiln build/kiln [--models det,rec]
      [--runs 40] [--records 32] [--heldout 24] [--keep DIR]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'bench', 'ocr'))
import ocr_data  # noqa: E402
import ocr_metrics  # noqa: E402

ASSETS = os.path.join(REPO, '.deps', 'npm', 'node_modules', '@gutenye', 'ocr-models', 'assets')
MODELS = {'det': 'ch_PP-OCRv4_det_infer.onnx', 'rec': 'ch_PP-OCRv4_rec_infer.onnx'}
SEED_RUNS, SEED_HELDOUT = 101, 202  # the served inputs and the held-out ones: separate draws


def fail(msg):
    print(f'FAIL: {msg}', file=sys.stderr)
    sys.exit(1)


def kiln(args, *cmd, check=True):
    p = subprocess.run([args.kiln, *cmd], capture_output=True, text=True)
    if check and p.returncode != 0:
        fail(f'kiln {" ".join(cmd)} exited {p.returncode}: {(p.stderr or p.stdout)[-600:]}')
    return p


def make_inputs(model, n, seed, keys):
    """n distinct samples of a fresh draw (det: pages in both orientations, both scripts; rec:
    lines cycling through zh, latin, mixed)."""
    cal_words, eval_words = ocr_data.word_halves()
    words = cal_words if seed == SEED_RUNS else eval_words
    hanzi = ocr_data.common_hanzi(keys)
    rng = np.random.default_rng(seed)
    if model == 'det':
        return ocr_data.det_set(rng, words, hanzi, n)
    out, seen = [], set()
    while len(out) < n:
        script = ocr_data.SCRIPTS[len(out) % len(ocr_data.SCRIPTS)]
        text, script = ocr_data.make_line(rng, words, hanzi, script=script)
        if text in seen:
            continue
        img = ocr_data.render_line(rng, text, max_ratio=320 / 48, script=script)
        if img is None:
            continue
        seen.add(text)
        out.append({'x': ocr_data.rec_input(img), 'text': text, 'script': script})
    return out


def run_one(args, target, x, work, tag):
    f = os.path.join(work, f'{tag}.npy')
    np.save(f, x)
    out = os.path.join(work, f'{tag}_out')
    p = kiln(args, 'run', target, '-i', f'x={f}', '-o', out)
    files = [n for n in os.listdir(out) if n.endswith('.npy')]
    y = np.load(os.path.join(out, files[0]))
    shutil.rmtree(out)
    os.remove(f)
    return y, p.stdout


def rel_l2(a, b):
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-12))


def is_distribution(y):
    rows = y.reshape(-1, y.shape[-1])
    return y.min() >= -1e-6 and y.max() <= 1 + 1e-6 and np.all(np.abs(rows.sum(-1) - 1) < 0.01)


def loss(cands, refs):
    """(loss, default tolerance) as the compile job measures OdcMaxAccuracyLoss
    (odc/compile_job.h OutputLoss), pooled over samples: a distribution over classes, the mean
    change of the float model's chosen class probability; otherwise relative L2."""
    if all(is_distribution(r) for r in refs):
        ch = []
        for c, r in zip(cands, refs):
            c2, r2 = c.reshape(-1, c.shape[-1]), r.reshape(-1, r.shape[-1])
            k = r2.argmax(-1)
            ch.append(np.abs(c2[np.arange(len(k)), k] - r2[np.arange(len(k)), k]))
        return float(np.mean(np.concatenate(ch))), 0.015
    num = sum(float(np.sum((c.astype(np.float64) - r) ** 2)) for c, r in zip(cands, refs))
    den = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in refs)
    return float(np.sqrt(num / max(den, 1e-30))), 0.3


def score(model, ys, samples, classes):
    if model == 'det':
        preds = [ocr_metrics.db_boxes(y[0, 0], s['scale']) for y, s in zip(ys, samples)]
        m = ocr_metrics.det_metrics(preds, [s['boxes'] for s in samples])
        return preds, {'recall': m['recall'], 'precision': m['precision']}
    preds = [' '.join(ocr_metrics.ctc_greedy(y[0], classes).split()) for y in ys]
    m = ocr_metrics.rec_metrics(preds, [s['text'] for s in samples])
    out = {'exact': m['exact'], 'char': m['char']}
    for script in ocr_data.SCRIPTS:
        idx = [i for i, s in enumerate(samples) if s['script'] == script]
        if idx:
            sm = ocr_metrics.rec_metrics([preds[i] for i in idx], [samples[i]['text'] for i in idx])
            out['exact_' + script] = sm['exact']
    return preds, out


def check_model(args, model, keys, classes, root):
    work = os.path.join(root, model)
    os.makedirs(work)
    onnx_file = os.path.join(ASSETS, MODELS[model])
    pkg = os.path.join(work, f'{model}.kiln')
    kiln(args, 'pack', onnx_file, '-o', pkg, '--config', 'OnDeviceCompilation=1',
         '--config', 'OdcTrigger=records', '--config', f'OdcRecords={args.records}',
         '--config', 'OdcMode=quantize')
    with open(os.path.join(pkg, 'metadata', 'MANIFEST')) as f:
        original = json.load(f)
    orig_model = original['original_model']
    orig_hash = original['files'][orig_model]['sha256']

    served = make_inputs(model, args.runs, SEED_RUNS, keys)
    job_seen = None
    for i, s in enumerate(served):
        _, out = run_one(args, pkg, s['x'], work, f'run{i}')
        int8 = re.search(r'^serving: compiled plan \S+ \(int8', out, re.M) is not None
        print(f'  {model} process {i + 1:2d}: {"int8 plan" if int8 else "float model"}'
              + ('; ' + m.group(0) if (m := re.search(r'ODC job: .*', out)) else ''), flush=True)
        if int8 and job_seen is None:
            job_seen = i
    if job_seen is None:
        fail(f'{model}: no run after the {args.records}th was served by an int8 plan')
    if job_seen != args.records:
        fail(f'{model}: the int8 plan served first in process {job_seen + 1}, expected '
             f'{args.records + 1} (the job runs when the {args.records}th run is recorded)')

    with open(os.path.join(pkg, 'metadata', 'MANIFEST')) as f:
        man = json.load(f)
    plans = [p for p in man.get('plans', []) if p.get('precision') == 'int8']
    if not plans:
        fail(f'{model}: the MANIFEST lists no int8 plan: {json.dumps(man.get("plans"))[:400]}')
    plan = plans[0]
    for rel in (plan['path'], plan.get('source_model', '')):
        if rel not in man['files']:
            fail(f'{model}: {rel} is not in the MANIFEST files')
        if not os.path.isfile(os.path.join(pkg, rel)):
            fail(f'{model}: {rel} is listed but missing')
    if not plan.get('source_model', '').endswith('.onnx') or plan['source_model'] == orig_model:
        fail(f'{model}: the int8 plan is not built from a quantized model: {plan}')
    if man['files'][orig_model]['sha256'] != orig_hash:
        fail(f'{model}: the original model changed')
    accepted = [h for h in man.get('odc_history', [])
                if h.get('outcome') in ('accepted', 'accepted-after-retry')]
    if not accepted:
        fail(f'{model}: no accepted job in the history: {json.dumps(man.get("odc_history"))[:600]}')
    job = accepted[-1]
    if job.get('precision') != 'int8' or not job.get('speedup', 0) > 1.0:
        fail(f'{model}: accepted job is not an int8 plan faster than float: {job}')
    state = json.load(open(os.path.join(pkg, 'odc', 'state.json')))
    if state['records'] != args.records:
        fail(f'{model}: {state["records"]} runs recorded, expected exactly {args.records} '
             f'(runs served by the compiled plan record nothing)')

    # Held-out inputs: the package (its int8 plan) against the float model.
    held = make_inputs(model, args.heldout, SEED_HELDOUT, keys)
    ys_pkg, ys_float = [], []
    for i, s in enumerate(held):
        y, out = run_one(args, pkg, s['x'], work, f'held{i}')
        if not re.search(r'^serving: compiled plan \S+ \(int8', out, re.M):
            fail(f'{model}: held-out run {i} not served by the int8 plan:\n{out[:400]}')
        yf, _ = run_one(args, onnx_file, s['x'], work, f'heldf{i}')
        ys_pkg.append(y)
        ys_float.append(yf)
    worst, default_tol = loss(ys_pkg, ys_float)
    cfg = open(os.path.join(pkg, 'metadata', 'config.cfg')).read()
    mg = re.search(r'^\s*OdcMaxAccuracyLoss\s*=\s*([0-9.eE+-]+)\s*$', cfg, re.M)
    gate = float(mg.group(1)) if mg else default_tol  # auto: the measure's default
    _, m_pkg = score(model, ys_pkg, held, classes)
    _, m_float = score(model, ys_float, held, classes)
    print(f'  {model}: job {job.get("job_sec", 0):.1f} s, {job.get("job_peak_mb", 0):.0f} MB peak, '
          f'int8 {job.get("candidate_ms", 0):.2f} ms vs float {job.get("float_ms", 0):.2f} ms '
          f'(x{job.get("speedup", 0):.2f}), outcome {job.get("outcome")}, layers kept float: '
          f'{[t.get("kept_float_layers") for t in job.get("attempts", []) if t.get("accepted")]}')
    print(f'  {model}: held-out ({len(held)}): worst loss {worst:.4g} (gate {gate:g}); '
          f'float {json.dumps({k: round(v * 100, 1) for k, v in m_float.items()})}; '
          f'int8 {json.dumps({k: round(v * 100, 1) for k, v in m_pkg.items()})}')
    bar = args.gate_slack * gate
    if worst > bar:
        fail(f'{model}: held-out loss {worst:.4g} over {bar:.4g} ({args.gate_slack} x the gate)')
    for k in (('recall',) if model == 'det' else ('exact', 'char')):
        if m_pkg[k] < m_float[k] - args.max_drop / 100:
            fail(f'{model}: {k} {m_pkg[k] * 100:.1f} % vs float {m_float[k] * 100:.1f} %: '
                 f'more than {args.max_drop} points lost')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--kiln', default=os.path.join(REPO, 'build', 'kiln'))
    ap.add_argument('--models', default='det,rec')
    ap.add_argument('--runs', type=int, default=40)
    ap.add_argument('--records', type=int, default=32)
    ap.add_argument('--heldout', type=int, default=24)
    ap.add_argument('--max-drop', type=float, default=5.0,
                    help='task points the int8 plan may lose on the held-out set (small set: '
                         'one rec line of 24 is 4 points)')
    ap.add_argument('--gate-slack', type=float, default=2.0,
                    help='held-out loss bar as a multiple of OdcMaxAccuracyLoss (the gate saw '
                         'other samples)')
    ap.add_argument('--keep', help='work folder to keep (default: temporary, removed)')
    args = ap.parse_args()
    keys = ocr_data.load_keys(os.path.join(ASSETS, 'ppocr_keys_v1.txt'))
    classes = ocr_metrics.ctc_classes(keys)
    root = args.keep or tempfile.mkdtemp(prefix='kiln_odc_')
    if args.keep:
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
    try:
        for model in args.models.split(','):
            print(f'{model}: {args.runs} processes, OdcRecords = {args.records}', flush=True)
            check_model(args, model, keys, classes, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print('odc acceptance: ok')


if __name__ == '__main__':
    main()
