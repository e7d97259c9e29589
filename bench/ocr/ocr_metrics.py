"""Post-processing and metrics for the OCR accuracy check: CTC greedy decoding (rec), DB box
extraction (det), box matching by IoU, edit distance, and comparisons between two runs.

Only numpy: connected components are found on runs of set pixels (a union-find over runs that
touch in adjacent rows, 8-connectivity), which is fast enough in Python for 640x640 maps.
"""
import numpy as np


# --- rec ---------------------------------------------------------------------------------------

def ctc_classes(keys):
    """Class index -> character for PP-OCR rec: 0 is the CTC blank, then the keys in file order,
    then a space as the last class."""
    return [''] + list(keys) + [' ']


def ctc_greedy(probs, classes):
    """Greedy CTC decoding of one T x C probability matrix: argmax per step, merge repeats, drop
    blanks."""
    if probs.shape[-1] != len(classes):
        raise ValueError(f'rec output has {probs.shape[-1]} classes, the key list gives '
                         f'{len(classes)} (blank + keys + space)')
    best = np.argmax(probs, axis=-1)
    chars = []
    prev = -1
    for c in best:
        if c != prev and c != 0:
            chars.append(classes[c])
        prev = c
    return ''.join(chars)


def edit_distance(a, b):
    """Levenshtein distance (insert, delete, substitute: cost 1 each)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def rec_metrics(preds, labels):
    """Exact-line accuracy and character accuracy 1 - sum(edit distance) / sum(label length)."""
    exact = sum(p == t for p, t in zip(preds, labels))
    dist = sum(edit_distance(p, t) for p, t in zip(preds, labels))
    total = sum(len(t) for t in labels)
    return {'exact': exact / len(labels), 'char': max(0.0, 1 - dist / total)}


# --- det ---------------------------------------------------------------------------------------

def _runs(bitmap):
    """Horizontal runs of True: arrays row, start, end (exclusive)."""
    h, w = bitmap.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = bitmap
    d = np.diff(padded, axis=1)
    rs, starts = np.nonzero(d == 1)
    re_, ends = np.nonzero(d == -1)
    # np.nonzero walks rows in order, and within a row starts and ends alternate.
    assert np.array_equal(rs, re_)
    return rs, starts, ends


def components(bitmap):
    """8-connected components of a boolean map as boxes [y0, x0, y1, x1] (exclusive ends)."""
    rows, starts, ends = _runs(bitmap)
    n = len(rows)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Index of the first run of each row.
    row_first = np.searchsorted(rows, np.arange(bitmap.shape[0] + 1))
    for r in range(bitmap.shape[0] - 1):
        a, a_end = row_first[r], row_first[r + 1]
        b, b_end = row_first[r + 1], row_first[r + 2]
        i, j = a, b
        while i < a_end and j < b_end:
            # 8-connectivity: runs touch if they overlap or meet at a corner.
            if starts[i] <= ends[j] and starts[j] <= ends[i]:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[ri] = rj
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    boxes = {}
    for k in range(n):
        root = find(k)
        y, x0, x1 = int(rows[k]), int(starts[k]), int(ends[k])
        b = boxes.get(root)
        if b is None:
            boxes[root] = [y, x0, y + 1, x1]
        else:
            b[0], b[1], b[2], b[3] = min(b[0], y), min(b[1], x0), max(b[2], y + 1), max(b[3], x1)
    return list(boxes.values())


def db_boxes(prob, scale, thresh=0.3, box_thresh=0.6, unclip_ratio=1.5, min_size=3):
    """DB post-processing on one H x W probability map: threshold, connected components, box from
    each component's extent, keep it if the mean probability inside is >= box_thresh, expand it by
    area * unclip_ratio / perimeter on every side, map to page pixels with scale (sx, sy).
    Returns an N x 4 array [x0, y0, x1, y1]."""
    h, w = prob.shape
    out = []
    for y0, x0, y1, x1 in components(prob > thresh):
        bw, bh = x1 - x0, y1 - y0
        if min(bw, bh) < min_size:
            continue
        if float(prob[y0:y1, x0:x1].mean()) < box_thresh:
            continue
        d = bw * bh * unclip_ratio / (2 * (bw + bh))
        ex0, ey0 = max(0.0, x0 - d), max(0.0, y0 - d)
        ex1, ey1 = min(float(w), x1 + d), min(float(h), y1 + d)
        out.append([ex0 * scale[0], ey0 * scale[1], ex1 * scale[0], ey1 * scale[1]])
    return np.array(out, np.float32).reshape(-1, 4)


def iou(a, b):
    """IoU matrix of N x 4 and M x 4 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def match_count(pred, truth, min_iou=0.5):
    """One-to-one matches with IoU >= min_iou, greedily from the highest IoU."""
    m = iou(pred, truth)
    count = 0
    while m.size and m.max() >= min_iou:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        count += 1
        m[i, :] = -1
        m[:, j] = -1
    return count


def det_metrics(preds, truths, min_iou=0.5):
    """Recall and precision over all pages (boxes pooled)."""
    matched = sum(match_count(p, t, min_iou) for p, t in zip(preds, truths))
    n_pred = sum(len(p) for p in preds)
    n_true = sum(len(t) for t in truths)
    return {'recall': matched / max(1, n_true), 'precision': matched / max(1, n_pred)}


def det_agreement(preds, refs, min_iou=0.5):
    """Boxes matched between two runs over all boxes: 2 * matched / (n_a + n_b) (F1 of one run
    against the other)."""
    matched = sum(match_count(p, r, min_iou) for p, r in zip(preds, refs))
    total = sum(len(p) + len(r) for p, r in zip(preds, refs))
    return 1.0 if total == 0 else 2 * matched / total


# --- raw outputs -------------------------------------------------------------------------------

def rel_l2(a, b):
    """||a - b|| / ||b|| in float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a))
