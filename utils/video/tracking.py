"""Multi-person tracking by detection (SORT-style): a constant-velocity Kalman filter per person plus IoU
matching with the Hungarian algorithm (scipy), then per-track gap filling and box smoothing.

Matching runs in two rounds: detections against the Kalman-predicted boxes (IoU), then the leftovers
against each remaining track's last detected box (intersection over the smaller box; this recovers a
track after one bad box has spoiled its velocity, as OC-SORT does). Identities: each track gets an id
(1, 2, ... in order of creation) and keeps it while it is matched; a track that is not matched for more
than ``max_age`` frames ends, and a later detection starts a new id.

Boxes in the result (the format the demo's crop dataset expects, as in the original):
``{person_id: {'frames': (N,) int, 'bbox': (N, 4) [cx, cy, s, s]}}`` with s = max(w, h) in pixels.
Post-processing of each track, in this order:
1. gaps of at most ``max_age`` frames between detections are filled by linear interpolation of the box
   (the frames a weak detector misses get a box; longer gaps are not bridged);
2. centre and size are smoothed over time with a Gaussian of ``smooth_sigma`` frames (0 turns it off);
   the boxes of an unsmoothed track are the detector's boxes made square.
Tracks with fewer than ``min_track_len`` detected frames are dropped.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray, over_min: bool = False) -> np.ndarray:
    """IoU between (A, 4) and (B, 4) ``[x1, y1, x2, y2]`` boxes; returns (A, B).

    With ``over_min`` the intersection is divided by the smaller of the two areas instead of the union
    (1 when one box lies inside the other)."""
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.zeros((len(boxes_a), len(boxes_b)))
    a, b = boxes_a[:, None, :4], boxes_b[None, :, :4]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    if over_min:
        return inter / np.maximum(np.minimum(area_a, area_b), 1e-9)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


class BoxKalman:
    """Constant-velocity Kalman filter on a box ``[cx, cy, w, h]`` (state: those plus their velocities)."""

    def __init__(self, box_xyxy: np.ndarray) -> None:
        self.x = np.zeros(8)
        self.x[:4] = self._to_cxcywh(box_xyxy)
        size = max(self.x[2], self.x[3], 1.0)
        self.P = np.diag([0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 0.5, 0.5]) * size ** 2
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)

    @staticmethod
    def _to_cxcywh(box: np.ndarray) -> np.ndarray:
        return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]])

    def _noise(self) -> tuple[np.ndarray, np.ndarray]:
        size = max(self.x[2], self.x[3], 1.0)
        q = np.diag([0.05, 0.05, 0.05, 0.05, 0.01, 0.01, 0.005, 0.005]) * size ** 2 * 0.1
        r = np.diag([0.05, 0.05, 0.1, 0.1]) * size ** 2 * 0.1
        return q, r

    def predict(self) -> np.ndarray:
        """Advance one frame; returns the predicted box ``[x1, y1, x2, y2]``."""
        q, _ = self._noise()
        self.x = self.F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = self.F @ self.P @ self.F.T + q
        return self.box()

    def update(self, box_xyxy: np.ndarray) -> None:
        """Correct the state with a detected box ``[x1, y1, x2, y2]``."""
        _, r = self._noise()
        z = self._to_cxcywh(box_xyxy)
        s = self.H @ self.P @ self.H.T + r
        gain = self.P @ self.H.T @ np.linalg.inv(s)
        self.x = self.x + gain @ (z - self.H @ self.x)
        self.P = (np.eye(8) - gain @ self.H) @ self.P

    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class _Track:
    def __init__(self, track_id: int, box: np.ndarray, frame: int) -> None:
        self.id = track_id
        self.kf = BoxKalman(box[:4])
        self.frames = [frame]
        self.boxes = [box[:4].copy()]
        self.misses = 0


class SortTracker:
    """Online SORT-style tracker.

    Args:
        iou_threshold: minimum IoU between a predicted track box and a detection to match them.
        max_age: frames a track survives without a match (also the longest gap that is filled).
        recover_overlap: second round: minimum intersection over the smaller box between a track's last
            detected box and a leftover detection.
    """

    def __init__(self, iou_threshold: float = 0.2, max_age: int = 15, recover_overlap: float = 0.5) -> None:
        self.iou_threshold = float(iou_threshold)
        self.recover_overlap = float(recover_overlap)
        self.max_age = int(max_age)
        self.active: list[_Track] = []
        self.finished: list[_Track] = []
        self._next_id = 1

    def update(self, frame: int, dets: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed the detections of one frame.

        Args:
            frame: frame index (increasing).
            dets: (K, 5) or (K, 4) ``[x1, y1, x2, y2(, score)]`` boxes in pixels.

        Returns:
            ``[(person_id, box_xyxy (4,)), ...]`` for the detections matched or started in this frame.
        """
        dets = np.asarray(dets, dtype=np.float64)
        dets = dets.reshape(-1, dets.shape[-1]) if dets.size else np.zeros((0, 5))
        predicted = np.array([t.kf.predict() for t in self.active]).reshape(-1, 4)
        last_seen = np.array([t.boxes[-1] for t in self.active]).reshape(-1, 4)
        matched_t, matched_d = set(), set()
        out = []
        # First against the Kalman predictions, then the leftovers against each track's last detected box
        # (recovers tracks whose velocity estimate was thrown off by one bad box, as in OC-SORT).
        for track_boxes, over_min, threshold in ((predicted, False, self.iou_threshold),
                                                 (last_seen, True, self.recover_overlap)):
            free_t = [i for i in range(len(self.active)) if i not in matched_t]
            free_d = [j for j in range(len(dets)) if j not in matched_d]
            iou = iou_matrix(track_boxes[free_t], dets[free_d, :4], over_min)
            if not iou.size:
                continue
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= threshold:
                    track, det = self.active[free_t[r]], dets[free_d[c]]
                    track.kf.update(det[:4])
                    track.frames.append(frame)
                    track.boxes.append(det[:4].copy())
                    track.misses = 0
                    matched_t.add(free_t[r])
                    matched_d.add(free_d[c])
                    out.append((track.id, det[:4]))
        still_active = []
        for i, track in enumerate(self.active):
            if i not in matched_t:
                track.misses += 1
            (still_active if track.misses <= self.max_age else self.finished).append(track)
        self.active = still_active
        for c in range(len(dets)):
            if c not in matched_d:
                track = _Track(self._next_id, dets[c], frame)
                self._next_id += 1
                self.active.append(track)
                out.append((track.id, dets[c, :4]))
        return out

    def tracks(self, min_track_len: int = 1, smooth_sigma: float = 2.0) -> dict[int, dict[str, np.ndarray]]:
        """All tracks so far, post-processed (see the module docstring).

        Returns:
            {person_id: {'frames': (N,) int64, 'bbox': (N, 4) float32 [cx, cy, s, s] px}}.
        """
        result = {}
        for track in sorted(self.finished + self.active, key=lambda t: t.id):
            if len(track.frames) < max(1, min_track_len):
                continue
            frames, boxes = settle_boxes(track.frames, track.boxes, self.max_age, smooth_sigma, xyxy_to_square)
            result[track.id] = {'frames': frames, 'bbox': boxes}
        return result


def xyxy_to_square(boxes_xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) ``[x1, y1, x2, y2]`` -> (N, 4) ``[cx, cy, s, s]`` with s = max(w, h)."""
    boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    size = np.maximum(boxes_xyxy[:, 2] - boxes_xyxy[:, 0], boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    return np.stack([(boxes_xyxy[:, 0] + boxes_xyxy[:, 2]) / 2, (boxes_xyxy[:, 1] + boxes_xyxy[:, 3]) / 2,
                     size, size], axis=1)


def fill_gaps(frames: np.ndarray, boxes: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate boxes over missing frames when the gap is at most ``max_gap`` frames.

    Args:
        frames: (N,) increasing frame indices with a box.
        boxes: (N, 4) boxes (any 4-number representation that interpolates linearly).
        max_gap: longest run of missing frames that is filled.

    Returns:
        ``(frames (M,) int64, boxes (M, 4))`` with M >= N.
    """
    frames = np.asarray(frames, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(frames) < 2:
        return frames, boxes
    out_f, out_b = [frames[:1]], [boxes[:1]]
    for k in range(1, len(frames)):
        gap = frames[k] - frames[k - 1] - 1
        if 0 < gap <= max_gap:
            t = np.arange(1, gap + 1) / (gap + 1)
            out_f.append(frames[k - 1] + np.arange(1, gap + 1))
            out_b.append(boxes[k - 1] + t[:, None] * (boxes[k] - boxes[k - 1]))
        out_f.append(frames[k:k + 1])
        out_b.append(boxes[k:k + 1])
    return np.concatenate(out_f), np.concatenate(out_b)


def smooth_boxes(boxes_sq: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time of square boxes ``[cx, cy, s, s]``; returns (N, 4) float32."""
    boxes_sq = np.asarray(boxes_sq, dtype=np.float64).reshape(-1, 4)
    if sigma > 0 and len(boxes_sq) > 1:
        boxes_sq = gaussian_filter1d(boxes_sq, sigma, axis=0, mode='nearest')
        boxes_sq[:, 3] = boxes_sq[:, 2]
    return boxes_sq.astype(np.float32)


def smoothing_radius(sigma: float) -> int:
    """Frames on each side that `smooth_boxes` reads (its Gaussian is cut at 4 sigma)."""
    return int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0


def settle_boxes(frames, boxes, max_gap: int, smooth_sigma: float,
                 to_square: Callable[[np.ndarray], np.ndarray] | None = None,
                 first: int | None = None, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One track's post-processing (see the module docstring): gaps filled, boxes made square, smoothed.

    Args:
        frames: (N,) increasing frame indices where the track was seen (no gap longer than ``max_gap``).
        boxes: (N, 4) its boxes in those frames.
        max_gap: longest gap that is filled (`fill_gaps`).
        smooth_sigma: Gaussian sigma, frames (`smooth_boxes`).
        to_square: turns filled boxes into ``[cx, cy, s, s]`` (None: they already are).
        first, last: return only the frames in [first, last]; only the detections these frames depend on
            are read, and the result equals the same frames of the whole track's post-processing.

    Returns:
        ``(frames (M,) int64, boxes (M, 4) float32 [cx, cy, s, s])``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if first is not None or last is not None:
        margin = smoothing_radius(smooth_sigma) + max_gap + 1
        lo = -np.inf if first is None else first - margin
        hi = np.inf if last is None else last + margin
        near = (frames >= lo) & (frames <= hi)
        frames, boxes = frames[near], boxes[near]
    frames, boxes = fill_gaps(frames, boxes, max_gap)
    boxes = smooth_boxes(to_square(boxes) if to_square is not None else boxes, smooth_sigma)
    keep = np.ones(len(frames), dtype=bool)
    if first is not None:
        keep &= frames >= first
    if last is not None:
        keep &= frames <= last
    return frames[keep], boxes[keep]


class SettledTracks:
    """Streams `settle_boxes`: takes a tracker's people frame by frame and gives each frame's final boxes
    as soon as no later frame can change them, equal to post-processing the whole clip at the end.

    A frame is final when every track that could still change it has settled: a track still open (it may
    be seen again: within ``horizon`` frames of its last sighting) holds back the frames whose smoothing
    reads past its last sighting (``smoothing_radius`` frames), and, while it has fewer than
    ``min_track_len`` sightings (it may yet be dropped), every frame from its first.

    Args:
        max_gap, smooth_sigma, to_square: as in `settle_boxes`.
        horizon: frames after a track's last sighting within which the tracker may still extend it.
        min_track_len: tracks with fewer sightings are dropped.
    """

    def __init__(self, max_gap: int, smooth_sigma: float, horizon: int, min_track_len: int = 1,
                 to_square: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.max_gap, self.smooth_sigma, self.horizon = int(max_gap), float(smooth_sigma), int(horizon)
        self.min_track_len = max(1, int(min_track_len))
        self.to_square = to_square
        self.radius = smoothing_radius(smooth_sigma)
        self.seen: dict[int, tuple[list[int], list[np.ndarray]]] = {}   # recent sightings per track
        self.count: dict[int, int] = {}                                    # all sightings per track
        self.latest = -1          # the last frame observed
        self.emitted = -1         # the last frame given out

    def observe(self, frame: int, people: Iterable[tuple[int, np.ndarray]]) -> None:
        """The tracker's ``(person id, box)`` pairs of ``frame`` (frames in increasing order)."""
        for pid, box in people:
            frames, boxes = self.seen.setdefault(int(pid), ([], []))
            frames.append(int(frame))
            boxes.append(np.asarray(box, dtype=np.float64))
            self.count[int(pid)] = self.count.get(int(pid), 0) + 1
        self.latest = max(self.latest, int(frame))

    def final_until(self) -> int:
        """The last frame whose boxes can no longer change."""
        bound = self.latest
        for pid, (frames, _) in self.seen.items():
            if self.latest >= frames[-1] + self.horizon:
                continue
            if self.count[pid] < self.min_track_len:
                bound = min(bound, frames[0] - 1)
            bound = min(bound, frames[-1] - self.radius)
        return bound

    def take(self, everything: bool = False) -> dict[int, dict[int, np.ndarray]]:
        """Boxes of the frames that became final since the last call (all remaining ones when
        ``everything``, at the end of the clip): ``{frame: {person id: [cx, cy, s, s]}}``; frames
        without anybody are left out."""
        until = self.latest if everything else self.final_until()
        out: dict[int, dict[int, np.ndarray]] = {}
        if until <= self.emitted:
            return out
        for pid, (frames, boxes) in self.seen.items():
            if frames[-1] <= self.emitted or self.count[pid] < self.min_track_len and (
                    everything or self.latest >= frames[-1] + self.horizon):
                continue
            settled_frames, settled = settle_boxes(frames, boxes, self.max_gap, self.smooth_sigma, self.to_square,
                                                   first=self.emitted + 1, last=until)
            for f, box in zip(settled_frames, settled):
                out.setdefault(int(f), {})[pid] = box
        self.emitted = until
        self._forget()
        return out

    def _forget(self) -> None:
        """Drop sightings no frame still to come reads (long clips stay cheap); tracks ended long ago go."""
        keep_from = self.emitted + 1 - (self.radius + self.max_gap + 1)
        for pid in list(self.seen):
            frames, boxes = self.seen[pid]
            if frames[-1] < keep_from - self.horizon:
                del self.seen[pid]
                continue
            cut = next((k for k, f in enumerate(frames) if f >= keep_from), len(frames))
            cut = min(cut, len(frames) - 1)   # the last sighting says whether the track is still open
            del frames[:cut], boxes[:cut]


def track_detections(dets_per_frame: list[np.ndarray], frame_ids: list[int] | None = None,
                     iou_threshold: float = 0.2, max_age: int = 15, min_track_len: int = 1,
                     smooth_sigma: float = 2.0) -> dict[int, dict[str, np.ndarray]]:
    """Track a whole sequence of detections offline (see `SortTracker` and the module docstring).

    Args:
        dets_per_frame: per frame a (K, 5) array ``[x1, y1, x2, y2, score]`` px (K may be 0).
        frame_ids: frame index of each entry (default 0..T-1).

    Returns:
        {person_id: {'frames': (N,), 'bbox': (N, 4) [cx, cy, s, s]}}; empty if nobody was detected.
    """
    tracker = SortTracker(iou_threshold, max_age)
    frame_ids = range(len(dets_per_frame)) if frame_ids is None else frame_ids
    for frame, dets in zip(frame_ids, dets_per_frame):
        tracker.update(int(frame), np.asarray(dets, dtype=np.float64).reshape(-1, 5))
    return tracker.tracks(min_track_len, smooth_sigma)
