#!/usr/bin/python3
"""Serving latency while an on-device compile job works in the background (OdcTrigger =
background), against the same session idle.

A package of the model with OnDeviceCompilation = 1, OdcTrigger = background, OdcMode = quantize
and OdcRecords = --records is opened once (the Python module, i.e. the C API, as an app would)
and run on rendered inputs in a loop: --idle runs first on a session of the same package with
recording off (idle), then the recorded runs until the job starts, the runs served while it
works (p50/p99), and the runs after it switched. Prints a markdown table.

  PYTHONPATH=build/python /usr/bin/python3 bench/odc_background.py [--model rec|det]
      [--records 16] [--idle 60] [--threads 1]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(BENCH, 'ocr'))
sys.path.insert(0, BENCH)
import ocr_data  # noqa: E402
import side_by_side as sbs  # noqa: E402

import kiln  # noqa: E402  (build/python)

ASSETS = os.path.join(REPO, '.deps', 'npm', 'node_modules', '@gutenye', 'ocr-models', 'assets')
FILES = {'rec': 'ch_PP-OCRv4_rec_infer.onnx', 'det': 'ch_PP-OCRv4_det_infer.onnx'}


def pct(v, p):
    return float(np.percentile(np.array(v), p)) if v else float('nan')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='rec', choices=list(FILES))
    ap.add_argument('--records', type=int, default=16)
    ap.add_argument('--idle', type=int, default=60)
    ap.add_argument('--after', type=int, default=30, help='runs after the switch')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--kiln', default=os.path.join(REPO, 'build', 'kiln'))
    a = ap.parse_args()
    keys = ocr_data.load_keys(os.path.join(ASSETS, 'ppocr_keys_v1.txt'))
    words, _ = ocr_data.word_halves()
    hanzi = ocr_data.common_hanzi(keys)
    rng = np.random.default_rng(7)
    if a.model == 'rec':
        samples = [s['x'] for s in ocr_data.rec_set(rng, words, hanzi, 48)]
    else:
        samples = [s['x'] for s in ocr_data.det_set(rng, words, hanzi, 24)
                   if s['x'].shape == (1, 3, 480, 640)]
    tmp = tempfile.mkdtemp(prefix='kiln_bg_')
    try:
        pkg = os.path.join(tmp, a.model + '.kiln')
        subprocess.run([a.kiln, 'pack', os.path.join(ASSETS, FILES[a.model]), '-o', pkg,
                        '--config', 'OnDeviceCompilation=1', '--config', 'OdcTrigger=background',
                        '--config', 'OdcMode=quantize', '--config', f'OdcRecords={a.records}',
                        '--config', f'Threads={a.threads}'], check=True, capture_output=True)
        idle_s = kiln.Session(pkg, threads=a.threads)
        idle_s.set_recording(False)
        idle = []
        for i in range(a.idle):
            t = time.perf_counter()
            idle_s.run({'x': samples[i % len(samples)]})
            idle.append((time.perf_counter() - t) * 1e3)
        del idle_s
        s = kiln.Session(pkg, threads=a.threads)
        recorded, during, after = [], [], []
        job_start = job_end = None
        i = 0
        while True:
            x = samples[i % len(samples)]
            i += 1
            running = bool(s.odc_status().get('job_running', False))
            t = time.perf_counter()
            s.run({'x': x})
            ms = (time.perf_counter() - t) * 1e3
            if running:
                if job_start is None:
                    job_start = time.perf_counter()
                during.append(ms)
            elif job_start is None:
                recorded.append(ms)
            else:
                if job_end is None:
                    job_end = time.perf_counter()
                after.append(ms)
                if len(after) >= a.after:
                    break
            if i > 100000:
                sbs.fail('the job never finished')
        served = s.served_by
        hist = s.odc_history()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    last = hist[-1] if hist else {}
    print(f'{a.model}, {sbs.machine()}, {a.threads} thread(s); job: {last.get("outcome")} '
          f'({last.get("precision")}), {job_end - job_start:.1f} s while serving; afterwards '
          f'served by: {served}\n')
    print('| phase | runs | p50 ms | p99 ms |')
    print('| --- | --- | --- | --- |')
    for name, v in (('idle (recording off)', idle), ('recording, before the job', recorded),
                    ('while the job runs', during), ('after the switch', after)):
        print(f'| {name} | {len(v)} | {pct(v, 50):.2f} | {pct(v, 99):.2f} |')


if __name__ == '__main__':
    main()
