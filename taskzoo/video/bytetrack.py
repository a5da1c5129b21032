"""ByteTrack (Zhang et al., ECCV 2022) for `taskzoo.video`: a Kalman filter per track in
(cx, cy, aspect, h), high-score boxes matched first, low-score boxes only to tracks seen in the
previous frame."""

from __future__ import annotations

import numpy as np

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # constant velocity in (cx, cy, aspect, h)
_H = np.eye(4, 8)
_WP, _WV = 1 / 20, 1 / 160  # the reference's noise weights, relative to the box height


def _xyah(b: np.ndarray) -> np.ndarray:
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2, b[1] + h / 2, w / max(h, 1e-6), h], np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], 1), np.prod(b[:, 2:] - b[:, :2], 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def _var(h: float, pos: float, vel: float) -> np.ndarray:
    return np.diag(np.array([pos * h, pos * h, 1e-2, pos * h, vel * h, vel * h, 1e-5, vel * h]) ** 2)


class _Track:
    def __init__(self, box: np.ndarray, label: int, frame: int):
        self.mean = np.r_[_xyah(box), np.zeros(4)]
        self.cov = _var(box[3] - box[1], 2 * _WP, 10 * _WV)  # unsure of the velocity at birth
        self.label, self.last, self.id = label, frame, 0  # id 0: tentative (not yet confirmed)

    def predict(self) -> None:
        self.mean, self.cov = _F @ self.mean, _F @ self.cov @ _F.T + _var(self.mean[3], _WP, _WV)

    def update(self, box: np.ndarray, frame: int) -> None:
        h = self.mean[3]
        s = _H @ self.cov @ _H.T + np.diag(np.array([_WP * h, _WP * h, 1e-1, _WP * h]) ** 2)
        gain = np.linalg.solve(s, _H @ self.cov).T  # cov H' S^-1 (both symmetric)
        self.mean = self.mean + gain @ (_xyah(box) - _H @ self.mean)
        self.cov, self.last = self.cov - gain @ s @ gain.T, frame

    def xyxy(self) -> np.ndarray:
        cx, cy, a, h = self.mean[:4]
        return np.array([cx - a * h / 2, cy - h / 2, cx + a * h / 2, cy + h / 2])


class ByteTrack:
    """ByteTrack over one video: `update` takes one frame's detections and returns
    (detection index, track id) for each detection that belongs to a confirmed track, so the
    caller keeps its boxes, scores and class names. Association is class-aware (a person box
    never continues a car track). Ids count 1, 2, ... in order of confirmation.

    >>> bt = ByteTrack(fps=10)
    >>> bt.update(np.array([[0, 0, 10, 10.]]), np.array([.9]), np.array([0]))
    [(0, 1)]
    """

    def __init__(self, fps: float, high: float = 0.25, low: float = 0.1, lost_seconds: float = 1.0):
        self.high, self.low = high, min(low, high)
        self.max_lost = max(1, round(fps * lost_seconds))  # the reference: 30 frames at 30 fps
        self.tracks: list[_Track] = []
        self.frame, self.next_id = 0, 1

    def _match(self, tracks, dets, boxes, labels, scores, thresh):
        if not tracks or not len(dets):
            return [], tracks, dets
        sim = _iou(np.array([t.xyxy() for t in tracks]), boxes[dets])
        sim *= np.array([t.label for t in tracks])[:, None] == labels[dets][None, :]
        cost = 1 - (sim * scores[dets][None, :] if scores is not None else sim)  # fuse_score
        cost[cost > thresh] = thresh + 1e-4  # as the reference: pairs above thresh stay apart
        from scipy.optimize import linear_sum_assignment
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] <= thresh
        rows, cols = rows[ok], cols[ok]
        used = set(rows.tolist())
        left = [t for i, t in enumerate(tracks) if i not in used]
        return [(tracks[r], dets[c]) for r, c in zip(rows, cols)], left, np.delete(dets, cols)

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
        self.frame += 1
        for t in self.tracks:
            t.predict()
        high = np.flatnonzero(scores >= self.high)
        low = np.flatnonzero((scores >= self.low) & (scores < self.high))
        confirmed = [t for t in self.tracks if t.id]
        tentative = [t for t in self.tracks if not t.id]
        # 1) confirmed tracks (tracked and lost) vs confident boxes, IoU weighted by score
        m1, rest, high = self._match(confirmed, high, boxes, labels, scores, 0.8)
        # 2) tracks seen last frame vs weak boxes: ByteTrack's idea (occluded, blurred objects)
        rest = [t for t in rest if t.last == self.frame - 1]
        m2, _, _ = self._match(rest, low, boxes, labels, None, 0.5)
        # 3) tentative tracks (seen once) vs the confident boxes left; unmatched ones die
        m3, dead, high = self._match(tentative, high, boxes, labels, scores, 0.7)
        out = []
        for t, d in m1 + m2 + m3:
            t.update(boxes[d], self.frame)
            if not t.id:
                t.id, self.next_id = self.next_id, self.next_id + 1
            out.append((int(d), t.id))
        gone = {id(t) for t in dead}
        self.tracks = [t for t in self.tracks if id(t) not in gone and self.frame - t.last <= self.max_lost]
        for d in high:  # new tentative tracks; on the first frame they are confirmed at once
            t = _Track(boxes[d], int(labels[d]), self.frame)
            self.tracks.append(t)
            if self.frame == 1:
                t.id, self.next_id = self.next_id, self.next_id + 1
                out.append((int(d), t.id))
        return sorted(out)
