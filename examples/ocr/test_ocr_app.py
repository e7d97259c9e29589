"""The OCR example's test: kiln_ocr reads the bundled sample page exactly (every line, compared
with the rendered ground truth), and reads other rendered pages of mixed Chinese/Latin text
(render_pages.py --pages) with at least --min-exact % of their lines exact.

  test_ocr_app.py KILN_OCR SAMPLE.png [--pages N] [--seed S] [--min-exact PCT] [--work DIR]
                  [--app-args '--no-odc ...']

A ground-truth line is matched to the read line whose axis-aligned box overlaps it most (IoU of
at least 0.3). The sample must be read strictly exact (texts equal after trimming and collapsing
runs of spaces). Pages are scored as PaddleOCR's own recognition metric does (RecMetric,
ignore_space=True: spaces removed) and with full-width forms folded to ASCII (NFKC: '，' = ',',
'（' = '('), since Noto CJK draws ASCII punctuation next to Chinese characters much like the
full-width forms; the strict figure is printed next to it.
The app runs once on all pages (one process), with its packages in a fresh folder and ODC off
(so the test reads with the float models; the ODC path is tested by tests/api), unless extra
options say otherwise. Exit status 1 on a failure, with the lines that differ.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))


def norm(text):
    return re.sub(r'\s+', ' ', text).strip()


def loose(text):
    return re.sub(r'\s+', '', unicodedata.normalize('NFKC', text))


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0


def score(result, truth, key=norm):
    """(exact lines, lines, [(truth, read)] of the misses), texts compared after key()."""
    read = []
    for line in result['lines']:
        xs = [p[0] for p in line['box']]
        ys = [p[1] for p in line['box']]
        read.append(([min(xs), min(ys), max(xs), max(ys)], line['text']))
    exact, misses = 0, []
    for t in truth['lines']:
        best = max(read, key=lambda r: iou(r[0], t['box']), default=None)
        got = best[1] if best and iou(best[0], t['box']) >= 0.3 else '(not found)'
        if key(got) == key(t['text']):
            exact += 1
        else:
            misses.append((t['text'], got))
    return exact, len(truth['lines']), misses


def run_app(app, images, packages, extra):
    cmd = [app, '--json', '--packages', packages] + extra + images
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f'FAIL: {" ".join(cmd)} exited {p.returncode}: {p.stderr}')
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith('{')]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('app')
    ap.add_argument('sample')
    ap.add_argument('--pages', type=int, default=24)
    ap.add_argument('--seed', type=int, default=5)
    ap.add_argument('--min-exact', type=float, default=80.0)
    ap.add_argument('--work')
    ap.add_argument('--app-args', default='--no-odc', help='options passed to kiln_ocr')
    a = ap.parse_args()
    extra = a.app_args.split()
    work = a.work or tempfile.mkdtemp(prefix='kiln_ocr_test_')
    pages_dir = os.path.join(work, 'pages')
    subprocess.run([sys.executable, os.path.join(HERE, 'render_pages.py'), '--pages',
                    str(a.pages), '--seed', str(a.seed), pages_dir], check=True)
    pages = sorted((f for f in os.listdir(pages_dir) if not f.endswith('.json')),
                   key=lambda f: int(re.findall(r'\d+', f)[0]))
    images = [a.sample] + [os.path.join(pages_dir, f) for f in pages]
    results = run_app(a.app, images, os.path.join(work, 'packages'), extra)
    if len(results) != len(images):
        sys.exit(f'FAIL: {len(results)} results for {len(images)} images')
    failed = False
    with open(os.path.splitext(a.sample)[0] + '.json', encoding='utf-8') as f:
        exact, n, misses = score(results[0], json.load(f))
    print(f'sample: {exact}/{n} lines exact')
    for t, g in misses:
        print(f'  truth {t!r}, read {g!r}')
    if exact != n or len(results[0]['lines']) != n:
        print(f'FAIL: the sample must be read exactly ({len(results[0]["lines"])} lines read)')
        failed = True
    total_exact = total = strict_exact = 0
    for path, r in zip(images[1:], results[1:]):
        with open(os.path.splitext(path)[0] + '.json', encoding='utf-8') as f:
            truth = json.load(f)
        e, n, misses = score(r, truth, loose)
        strict_exact += score(r, truth, norm)[0]
        total_exact += e
        total += n
        print(f'{os.path.basename(path)}: {e}/{n} exact')
        for t, g in misses:
            print(f'  truth {t!r}, read {g!r}')
    pct = 100.0 * total_exact / max(1, total)
    strict = 100.0 * strict_exact / max(1, total)
    print(f'pages: {total_exact}/{total} lines exact ({pct:.1f} %, needed {a.min_exact} %; '
          f'strictly, with spaces and character widths: {strict_exact}/{total}, {strict:.1f} %)')
    if pct < a.min_exact:
        print('FAIL: too few lines exact')
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
