"""Rendered-text data sets for the OCR accuracy check: strings, images, ground truth, and
PaddleOCR's pre-processing for PP-OCRv4 det/rec and the mobile v2.0 direction classifier.

Lines come in three scripts, as PP-OCRv4 rec (a Chinese+English recognizer) meets them:
  zh     2-8 common Chinese characters (the GB2312 level-1 characters of ppocr_keys_v1.txt, 3,755
         of its 6,623 keys), sometimes with a digit group or Chinese punctuation (，。、：)
  latin  words, numbers and punctuation (our word list below)
  mixed  Chinese and Latin segments without spaces between them ("使用USB接口", "价格12.50")
in Noto CJK SC (Debian fonts-noto-cjk; Sans and Serif, regular and bold) and, for Latin lines,
also DejaVu. Degradations: Gaussian blur, Gaussian noise, contrast, and textured backgrounds
(low-frequency blotches, gradients, ruled lines). Pages (det) mix lines of all three scripts, so
every page with two or more lines has both scripts.

Every sample is made from a seeded numpy Generator, so a seed gives the same set on any machine
with the same PIL and fonts. The calibration and evaluation sets use different seeds and disjoint
halves of the word list (see `make_sets`); Chinese characters come from the same pool for both.

Needs numpy and PIL (Debian python3-pil), the DejaVu fonts (fonts-dejavu-core) and Noto CJK
(fonts-noto-cjk).
"""
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = '/usr/share/fonts/truetype/dejavu'
FONT_FILES = [
    'DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSans-Oblique.ttf', 'DejaVuSansCondensed.ttf',
    'DejaVuSerif.ttf', 'DejaVuSerif-Bold.ttf', 'DejaVuSerif-Italic.ttf', 'DejaVuSerifCondensed.ttf',
    'DejaVuSansMono.ttf', 'DejaVuSansMono-Bold.ttf',
]

# Our own word list: common English words, some names and units. Split in two halves (even and
# odd positions) between the calibration and evaluation sets.
WORDS = """
about above account action address after again agent almost alpha amount animal answer apple
april area around artist august autumn balance basket battery beach before begin below berry
better bicycle black border bottle bridge bright brother budget butter button cabin camera
candle capital carbon careful carpet castle center chapter charge cheese circle citizen clever
climate clock closed cloud coffee colour common copper corner cotton country course cousin
credit crystal culture custom danger debug decade delta desert design detail device diesel
dinner doctor dollar double dragon driver early eastern editor effort eleven engine enough
estate evening except factor family farmer father figure filter finger finish flower folder
forest formal friday frozen garden gentle giant ginger global golden ground guitar hammer
harbor health height hidden honey hotel hunger island jacket jungle kernel kettle kitchen
ladder laptop leader lemon letter liquid little lunch magnet market marble matter meadow
memory metal middle minute mirror modern monday mother motion museum number object office
orange output oxygen packet paper parcel pepper pencil people pillow planet pocket police
powder public puzzle quartz rabbit random record report result ribbon river rocket rubber
saddle salmon school second signal silver simple sister socket spring square stable street
sugar summer sunday supply system table target tennis theory ticket timber tomato tunnel
update valley vector velvet violet volume wallet window winter wooden yellow zebra London
Paris Berlin Tokyo Oslo Quebec Zurich Madrid Vienna Dublin Kiln OCR USB GPU CPU API HTTP PDF
""".split()

PUNCT = list(',.;:!?-\'"()/%&#@+*=')

CJK_FONT_DIR = '/usr/share/fonts/opentype/noto'
# (file, face index of Noto ... CJK SC in the collection)
CJK_FONT_FILES = [('NotoSansCJK-Regular.ttc', 2), ('NotoSansCJK-Bold.ttc', 2),
                  ('NotoSerifCJK-Regular.ttc', 2), ('NotoSerifCJK-Bold.ttc', 2)]
ZH_PUNCT = ['，', '。', '、', '：']
SCRIPTS = ('zh', 'latin', 'mixed')


def common_hanzi(keys):
    """The key list's common Chinese characters: those in GB2312 level 1 (rows 16-55, the 3,755
    most frequent characters), in key-list order."""
    out = []
    for k in keys:
        if len(k) != 1 or not 0x4E00 <= ord(k) <= 0x9FFF:
            continue
        try:
            b = k.encode('gb2312')
        except UnicodeEncodeError:
            continue
        if 0xB0 <= b[0] <= 0xD7:
            out.append(k)
    return out


def make_zh(rng, hanzi, max_chars=8):
    """2..max_chars Chinese characters, sometimes with digits or one Chinese punctuation mark."""
    n = int(rng.integers(2, max_chars + 1))
    chars = [hanzi[int(rng.integers(0, len(hanzi)))] for _ in range(n)]
    r = rng.random()
    if r < 0.15 and n >= 3:
        chars.insert(int(rng.integers(1, n)), ZH_PUNCT[int(rng.integers(0, len(ZH_PUNCT)))])
    elif r < 0.3:
        chars.insert(int(rng.integers(0, n + 1)), str(int(rng.integers(1, 1000))))
    return ''.join(chars)


def make_line(rng, words, hanzi, max_tokens=3, script=None):
    """(text, script): a zh, latin or mixed line (script drawn 40/30/30 % unless given)."""
    if script is None:
        r = rng.random()
        script = 'zh' if r < 0.4 else ('latin' if r < 0.7 else 'mixed')
    if script == 'zh':
        return make_zh(rng, hanzi), script
    if script == 'latin':
        return make_string(rng, words, max_tokens), script
    latin = make_string(rng, words, 1)
    zh = make_zh(rng, hanzi, 5)
    r = rng.random()
    if r < 0.4:
        text = zh + latin
    elif r < 0.8:
        text = latin + zh
    else:
        text = zh + latin + make_zh(rng, hanzi, 3)
    return text, script


def load_keys(path):
    """The character list of PaddleOCR's ppocr_keys_v1.txt, one character per line in file order."""
    with open(path, encoding='utf-8') as f:
        keys = f.read().split('\n')
    while keys and keys[-1] == '':
        keys.pop()
    return keys


def word_halves(seed=12345):
    """The word list shuffled with a fixed seed and split in two disjoint halves."""
    order = np.random.default_rng(seed).permutation(len(WORDS))
    words = [WORDS[i] for i in order]
    return words[0::2], words[1::2]


def _case(rng, word):
    r = rng.random()
    if r < 0.2:
        return word.upper()
    if r < 0.45:
        return word.capitalize()
    return word


def _number(rng):
    kind = rng.integers(0, 7)
    if kind == 0:
        return str(int(rng.integers(0, 10000)))
    if kind == 1:
        return f'{rng.uniform(0, 1000):.2f}'
    if kind == 2:
        return f'${rng.integers(1, 999)}.{rng.integers(0, 100):02d}'
    if kind == 3:
        return f'{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(1990, 2031)}'
    if kind == 4:
        return f'{rng.integers(0, 101)}%'
    if kind == 5:
        return f'({rng.integers(100, 1000)}) {rng.integers(100, 1000)}-{rng.integers(0, 10000):04d}'
    return f'#{rng.integers(1, 500)}'


def make_string(rng, words, max_tokens=3):
    """A short line of words, numbers and punctuation with mixed case."""
    tokens = []
    for _ in range(int(rng.integers(1, max_tokens + 1))):
        r = rng.random()
        if r < 0.25:
            tokens.append(_number(rng))
        else:
            w = _case(rng, words[int(rng.integers(0, len(words)))])
            p = rng.random()
            if p < 0.15:
                w += PUNCT[int(rng.integers(0, 8))]  # , . ; : ! ? - '
            elif p < 0.22:
                w = '(' + w + ')'
            elif p < 0.28:
                w = '"' + w + '"'
            elif p < 0.32:
                w = w + PUNCT[int(rng.integers(8, len(PUNCT)))] + _case(
                    rng, words[int(rng.integers(0, len(words)))])
            tokens.append(w)
    return ' '.join(tokens)


_font_cache = {}


def font(name, size):
    """name: a DejaVu file name or a (Noto CJK file, face index) pair."""
    key = (name, size)
    if key not in _font_cache:
        # Basic layout: no ligatures (e.g. 'ffi' as one glyph, which is not in the key list).
        if isinstance(name, tuple):
            _font_cache[key] = ImageFont.truetype(os.path.join(CJK_FONT_DIR, name[0]), size,
                                                  index=name[1],
                                                  layout_engine=ImageFont.Layout.BASIC)
        else:
            _font_cache[key] = ImageFont.truetype(os.path.join(FONT_DIR, name), size,
                                                  layout_engine=ImageFont.Layout.BASIC)
    return _font_cache[key]


def pick_font(rng, script):
    """Latin lines: DejaVu or Noto CJK (its Latin glyphs); zh and mixed lines: Noto CJK."""
    if script == 'latin' and rng.random() < 0.7:
        return FONT_FILES[int(rng.integers(0, len(FONT_FILES)))]
    return CJK_FONT_FILES[int(rng.integers(0, len(CJK_FONT_FILES)))]


def _background(rng, w, h, bg, texture_p=0.5):
    """An RGB uint8 w x h background of colour bg; with probability texture_p textured: soft
    blotches (smoothed noise), a gradient, and sometimes faint ruled lines (all within +-30 grey
    levels, so the ink contrast of _colors stays above ~40)."""
    a = np.empty((h, w, 3), np.float32)
    a[:] = np.asarray(bg, np.float32)
    if rng.random() < texture_p:
        gh, gw = max(2, h // 12), max(2, w // 12)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        blot = np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC), np.float32)
        a += rng.uniform(4, 14) * blot[..., None]
        if rng.random() < 0.5:
            horizontal = rng.random() < 0.5
            ramp = np.linspace(-1, 1, w if horizontal else h, dtype=np.float32)
            ramp = ramp[None, :] if horizontal else ramp[:, None]
            a += rng.uniform(-15, 15) * ramp[..., None]
        if rng.random() < 0.3:
            step = int(rng.integers(6, 16))
            a[int(rng.integers(0, step))::step] -= rng.uniform(8, 20)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _colors(rng):
    """Background and ink grey levels with varying contrast, and a slight per-channel tint."""
    bg = rng.uniform(150, 255)
    ink = rng.uniform(0, min(110, bg - 70))
    tint = rng.uniform(-12, 12, size=3)
    return (tuple(int(np.clip(bg + t, 0, 255)) for t in tint),
            tuple(int(np.clip(ink + t, 0, 255)) for t in tint))


def _degrade(rng, img, max_blur=1.0, max_noise=8.0):
    """Slight blur and Gaussian noise."""
    radius = rng.uniform(0, max_blur)
    if radius > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    a = np.asarray(img).astype(np.float32)
    a += np.float32(rng.uniform(0, max_noise)) * rng.standard_normal(a.shape, np.float32)
    return np.clip(a, 0, 255).astype(np.uint8)


def render_line(rng, text, max_ratio, max_blur=1.2, max_noise=10.0, script='latin'):
    """An RGB uint8 image of one line of text with a small margin, or None if its width/height
    ratio exceeds max_ratio (the caller then draws another string)."""
    f = font(pick_font(rng, script), int(rng.integers(22, 44)))
    left, top, right, bottom = f.getbbox(text)
    mx, my = int(rng.integers(3, 12)), int(rng.integers(3, 10))
    w, h = right - left + 2 * mx, bottom - top + 2 * my
    if w / h > max_ratio:
        return None
    bg, ink = _colors(rng)
    img = _background(rng, w, h, bg)
    ImageDraw.Draw(img).text((mx - left, my - top), text, font=f, fill=ink)
    return _degrade(rng, img, max_blur, max_noise)


def render_page(rng, words, hanzi, size):
    """A page (RGB uint8, size = (width, height)) with several lines at random places (scripts in
    turn zh, latin, mixed from a random start), and the ground-truth boxes [x0, y0, x1, y1] (ink
    extents, exclusive end) in page pixels."""
    w, h = size
    bg, _ = _colors(rng)
    img = _background(rng, w, h, bg, texture_p=0.6)
    draw = ImageDraw.Draw(img)
    boxes = []
    y = int(rng.integers(10, 40))
    turn = int(rng.integers(0, 3))
    while True:
        script = SCRIPTS[turn % 3]
        turn += 1
        f = font(pick_font(rng, script), int(rng.integers(20, 44)))
        text, _ = make_line(rng, words, hanzi, max_tokens=4, script=script)
        # The box: the ink's horizontal extent, and vertically from the top of a capital (or a
        # Chinese character) to the bottom of a descender (a line box as annotated, whatever
        # letters the line has).
        left, _, right, _ = f.getbbox(text)
        _, top, _, bottom = f.getbbox('Hg' if script == 'latin' else 'Hg国')
        tw, th = right - left, bottom - top
        if y + th + 10 > h:
            break
        if tw + 20 > w:
            continue
        x = int(rng.integers(10, w - tw - 10 + 1))
        ink = tuple(int(c) for c in rng.uniform(0, 90, size=1).repeat(3))
        draw.text((x - left, y - top), text, font=f, fill=ink)
        boxes.append([x, y, x + tw, y + th])
        y += th + int(rng.integers(max(14, th // 2), th * 2 + 20))
    return _degrade(rng, img, max_blur=0.8, max_noise=6.0), np.array(boxes, np.float32)


# --- PaddleOCR pre-processing ------------------------------------------------------------------

def _resize(img, w, h):
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR), np.float32)


def rec_input(img, height=48, max_width=320):
    """PP-OCRv4 rec: height 48 keeping aspect (width at most 320), (x/255 - 0.5)/0.5, CHW, zero
    padding on the right to width 320. Returns 1x3x48x320 float32."""
    h, w = img.shape[:2]
    rw = min(max_width, int(math.ceil(height * w / h)))
    a = _resize(img, rw, height) / 255.0
    a = (a - 0.5) / 0.5
    out = np.zeros((3, height, max_width), np.float32)
    out[:, :, :rw] = a.transpose(2, 0, 1)
    return out[None]


def cls_input(img):
    """Direction classifier: as rec_input with shape 3x48x192."""
    return rec_input(img, 48, 192)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def det_input(img, limit_side=640):
    """PP-OCRv4 det: scale so the longer side is at most limit_side, round both sides to
    multiples of 32, ImageNet mean/std on RGB/255, CHW. Returns (1x3xHxW float32, (sx, sy)) where
    s maps model pixels back to page pixels."""
    h, w = img.shape[:2]
    ratio = min(1.0, limit_side / max(h, w))
    rh = max(32, int(round(h * ratio / 32)) * 32)
    rw = max(32, int(round(w * ratio / 32)) * 32)
    a = _resize(img, rw, rh) / 255.0
    a = (a - IMAGENET_MEAN) / IMAGENET_STD
    return a.transpose(2, 0, 1)[None].astype(np.float32), (w / rw, h / rh)


# --- data sets ---------------------------------------------------------------------------------

def rec_set(rng, words, hanzi, n, taken=frozenset()):
    """n recognition samples: {'x': input, 'text': label, 'script': zh|latin|mixed}; texts in
    `taken` are skipped."""
    out = []
    while len(out) < n:
        text, script = make_line(rng, words, hanzi)
        if text in taken:
            continue
        img = render_line(rng, text, max_ratio=320 / 48, script=script)
        if img is None:
            continue
        out.append({'x': rec_input(img), 'text': text, 'script': script})
    return out


def cls_set(rng, words, hanzi, n):
    """n direction samples: {'x': input, 'label': 0 (upright) or 1 (rotated 180 degrees)}.
    Lines of at least three characters; up to 1.5 times wider than the input (squeezed)."""
    out = []
    while len(out) < n:
        text, script = make_line(rng, words, hanzi, max_tokens=4)
        if len(text) < 3:
            continue
        img = render_line(rng, text, max_ratio=192 / 48 * 1.5, max_blur=1.5, script=script)
        if img is None:
            continue
        label = int(rng.random() < 0.5)
        if label:
            img = img[::-1, ::-1].copy()
        out.append({'x': cls_input(img), 'label': label, 'text': text})
    return out


PAGE_SIZES = [(800, 600), (600, 800)]


def det_set(rng, words, hanzi, n):
    """n pages: {'x': input, 'boxes': ground truth in page pixels, 'scale': (sx, sy)}."""
    out = []
    for i in range(n):
        img, boxes = render_page(rng, words, hanzi, PAGE_SIZES[i % len(PAGE_SIZES)])
        x, scale = det_input(img)
        out.append({'x': x, 'boxes': boxes, 'scale': scale})
    return out


CALIBRATION_SEED = 1
EVALUATION_SEED = 2
CALIBRATION_MAX = 64  # samples per model in a calibration set


def make_sets(kind, n_lines, n_pages, keys):
    """{'rec': [...], 'cls': [...] (n_lines each), 'det': [...] (n_pages)} for kind 'calibration'
    or 'evaluation'; `keys` is the rec key list (load_keys), the source of the Chinese
    characters. The two kinds use different seeds and disjoint word halves; evaluation lines
    never equal a line of the largest calibration set (CALIBRATION_MAX lines)."""
    cal_words, eval_words = word_halves()
    hanzi = common_hanzi(keys)
    if kind == 'calibration':
        seed, words, taken = CALIBRATION_SEED, cal_words, frozenset()
    else:
        cal_texts = {s['text'] for s in rec_set(_streams(CALIBRATION_SEED)[0], cal_words, hanzi,
                                                CALIBRATION_MAX)}
        seed, words, taken = EVALUATION_SEED, eval_words, cal_texts
    rec_rng, det_rng, cls_rng = _streams(seed)
    return {'rec': rec_set(rec_rng, words, hanzi, n_lines, taken),
            'det': det_set(det_rng, words, hanzi, n_pages),
            'cls': cls_set(cls_rng, words, hanzi, n_lines)}


def _streams(seed):
    """Separate random streams for rec, det and cls, so that one set's size leaves the others
    as they are."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def check_charset(keys):
    """Characters our generator can emit that the model's key list lacks (should be none)."""
    chars = set(''.join(WORDS)) | set(PUNCT) | set('0123456789$%#()/-.') | set(ZH_PUNCT)
    return sorted(c for c in chars if c not in set(keys))
