"""Rendered pages for the OCR example (examples/ocr) and its test, with their ground truth.

  render_pages.py --sample OUT.png          the bundled sample: fixed Chinese, Latin and mixed
                                            lines (OUT.png and OUT.json)
  render_pages.py --pages N --seed S DIR    N pages of random lines (bench/ocr/ocr_data.py's
                                            strings and fonts), DIR/page_K.png or .jpg (every
                                            other page as JPEG) and DIR/page_K.json

The JSON holds {"image": file name, "lines": [{"text", "box": [x0, y0, x1, y1], "script"}]}.
Every character is checked against ppocr_keys_v1.txt. Needs numpy and PIL (Debian python3-pil)
and Noto CJK (fonts-noto-cjk), as bench/ocr.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'bench', 'ocr'))
import ocr_data  # noqa: E402

KEYS = os.path.join(HERE, '..', '..', '.deps', 'npm', 'node_modules', '@gutenye', 'ocr-models',
                    'assets', 'ppocr_keys_v1.txt')

SAMPLE_LINES = [
    ('在设备上编译和运行模型', 'zh'),
    ('Kiln reads this page on the device', 'latin'),
    ('识别中文和English混合文本', 'mixed'),
    ('价格12.50元，数量3件', 'zh'),
    ('Invoice #2048 Total $96.40', 'latin'),
    ('北京时间2026年12月3日', 'zh'),
    ('使用USB接口连接电脑', 'mixed'),
]


def check_chars(lines, keys):
    keyset = set(keys) | {' '}
    for text in lines:
        missing = sorted(set(c for c in text if c not in keyset))
        if missing:
            sys.exit(f'render_pages: {text!r} has characters not in the key list: {missing}')


def draw_lines(rng, size, lines, fonts, clean):
    """A page of `size` with `lines` [(text, script)] top to bottom; returns (image, truth)."""
    w, h = size
    bg, _ = ocr_data._colors(rng)
    if clean:
        bg = (245, 243, 238)
    img = ocr_data._background(rng, w, h, bg, texture_p=0.3 if clean else 0.6)
    draw = ImageDraw.Draw(img)
    truth = []
    y = int(rng.integers(20, 40))
    for (text, script), f in zip(lines, fonts):
        left, _, right, _ = f.getbbox(text)
        _, top, _, bottom = f.getbbox('Hg' if script == 'latin' else 'Hg国')
        tw, th = right - left, bottom - top
        if y + th + 10 > h or tw + 40 > w:
            break
        x = int(rng.integers(20, max(21, w - tw - 20)))
        ink = (25, 25, 30) if clean else tuple(int(c) for c in rng.uniform(0, 90, size=1).repeat(3))
        draw.text((x - left, y - top), text, font=f, fill=ink)
        truth.append({'text': text, 'box': [x, y, x + tw, y + th], 'script': script})
        y += th + int(rng.integers(max(16, th // 2), th + 24))
    a = ocr_data._degrade(rng, img, max_blur=0.5 if clean else 0.8, max_noise=3.0 if clean else 6.0)
    return Image.fromarray(a), truth


def write(img, truth, path):
    if path.endswith('.jpg'):
        img.save(path, quality=95)
    else:
        img.save(path)
    with open(os.path.splitext(path)[0] + '.json', 'w', encoding='utf-8') as f:
        json.dump({'image': os.path.basename(path), 'lines': truth}, f, ensure_ascii=False,
                  indent=1)


def sample(path, keys):
    check_chars([t for t, _ in SAMPLE_LINES], keys)
    rng = np.random.default_rng(7)
    fonts = [ocr_data.font(ocr_data.CJK_FONT_FILES[i % 2], 34) for i in range(len(SAMPLE_LINES))]
    img, truth = draw_lines(rng, (800, 600), SAMPLE_LINES, fonts, clean=True)
    assert len(truth) == len(SAMPLE_LINES), 'the sample lines must all fit the page'
    write(img, truth, path)


def pages(n, seed, out, keys):
    os.makedirs(out, exist_ok=True)
    _, words = ocr_data.word_halves()
    hanzi = ocr_data.common_hanzi(keys)
    rng = np.random.default_rng(seed)
    for k in range(n):
        lines, fonts = [], []
        turn = int(rng.integers(0, 3))
        for _ in range(10):
            script = ocr_data.SCRIPTS[turn % 3]
            turn += 1
            text, _ = ocr_data.make_line(rng, words, hanzi, max_tokens=3, script=script)
            lines.append((text, script))
            fonts.append(ocr_data.font(ocr_data.pick_font(rng, script), int(rng.integers(24, 40))))
        check_chars([t for t, _ in lines], keys)
        size = ocr_data.PAGE_SIZES[k % 2]
        img, truth = draw_lines(rng, size, lines, fonts, clean=False)
        write(img, truth, os.path.join(out, f'page_{k}.' + ('jpg' if k % 2 else 'png')))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--sample', help='write the bundled sample page to this .png')
    ap.add_argument('--pages', type=int, help='number of random pages')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('out', nargs='?', help='folder for --pages')
    ap.add_argument('--keys', default=KEYS)
    a = ap.parse_args()
    keys = ocr_data.load_keys(a.keys)
    if a.sample:
        os.makedirs(os.path.dirname(os.path.abspath(a.sample)), exist_ok=True)
        sample(a.sample, keys)
    if a.pages:
        if not a.out:
            sys.exit('render_pages: --pages needs an output folder')
        pages(a.pages, a.seed, a.out, keys)


if __name__ == '__main__':
    main()
