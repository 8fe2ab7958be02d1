"""Finding and following people with BlazePose: proposals from many windows, verified by the landmark model.

BlazePose's detector sees a square window at 224x224 and finds people whose face and torso are large in
it, so on a whole photo it misses small people and people far from the centre. `PeopleFinder` searches the
whole image and overlapping square tiles at several sizes, adds optional proposals from another detector
(boxes, e.g. OpenCV's HOG), and hands every proposal to the landmark model, best first. A proposal
becomes a person when:
1. the landmark model says a pose is present (its ROI is then re-centred on the person's own landmarks
   with one more landmark pass);
2. the pose is nobody already found: its landmarks do not coincide with an accepted person's, and its
   person mask does not lie mostly on theirs (the landmark model also answers for a part of a person
   when its window shows only that part);
3. it is not tiny (person-like clutter);
4. the detector agrees: shown a window with the whole person, it finds a body with the same mid-hip and
   scale.
This keeps people side by side, overlapping, cut by the frame edge or facing away, as long as one
proposal lands near them.

`PeopleTracker` follows people through a video: each person's next ROI comes from its landmarks in the
previous frame (no detection needed while the landmark model keeps its score), and a full search runs on
the first frame, every ``search_every`` frames and whenever someone was lost, to pick up newcomers. A new
person found near where a track was lost within ``max_gap`` frames resumes that track's id.

This module imports only numpy, OpenCV, `utils.video.blazepose` and `utils.video.tracking`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from utils.video.blazepose import LANDMARK_SIZE, PoseDetector, PoseLandmarker, PoseLandmarks, roi_affine
from utils.video.tracking import iou_matrix

logger = logging.getLogger(__name__)

PRESENCE_THRESHOLD = 0.5
# Two poses are one person when their landmarks lie this close, as a share of the person's size.
DUPLICATE_DISTANCE = 0.12


def search_windows(height: int, width: int, fractions: Sequence[float] = (1.0, 0.5),
                   min_size: float = 96.0) -> list[np.ndarray]:
    """Square windows ``[cx, cy, size]`` that the detector searches: the whole image letterboxed, then
    tiles of side ``fraction * min(H, W)`` overlapping by half, each row and column spread evenly from
    border to border."""
    windows = [np.array([width / 2.0, height / 2.0, float(max(height, width))])]
    for fraction in fractions:
        size = min(height, width) * float(fraction)
        if size < min_size:
            continue
        step = size / 2
        nx = max(1, int(np.ceil((width - size) / step)) + 1)
        ny = max(1, int(np.ceil((height - size) / step)) + 1)
        for cy in np.linspace(size / 2, height - size / 2, ny):
            for cx in np.linspace(size / 2, width - size / 2, nx):
                windows.append(np.array([cx, cy, size]))
    return windows


def box_roi(box: np.ndarray, scale: float = 1.2) -> np.ndarray:
    """Upright ROI ``[cx, cy, size, 0]`` around a person box ``[x1, y1, x2, y2]``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return np.array([cx, cy, scale * max(box[2] - box[0], box[3] - box[1]), 0.0])


def same_place(roi: np.ndarray, reference: np.ndarray) -> bool:
    """True when two ROIs ``[cx, cy, size, ...]`` have their centres within a tenth of the reference's size
    and sizes within a third of each other."""
    size = max(float(reference[2]), 1e-6)
    return bool(np.hypot(*(roi[:2] - reference[:2])) < 0.1 * size and 0.75 < roi[2] / size < 1.33)


def pose_distance(a: PoseLandmarks, b: PoseLandmarks) -> float:
    """How far apart two poses are: the mean distance of their landmarks, weighted by how visible each
    landmark is in both (points hallucinated outside the image or behind the body count little), as a
    share of the larger pose's size (its visible landmarks' extent)."""
    weight = np.minimum(a.visibility, b.visibility) + 1e-3
    size = max(_visible_extent(a), _visible_extent(b), 1.0)
    d = np.linalg.norm(a.image[:, :2] - b.image[:, :2], axis=1)
    return float((d * weight).sum() / weight.sum() / size)


def _visible_extent(pose: PoseLandmarks) -> float:
    """Longer side, pixels, of the box of a pose's visible landmarks (0 with fewer than two)."""
    points = pose.image[pose.visibility > 0.5, :2]
    return float(np.ptp(points, axis=0).max()) if len(points) > 1 else 0.0


def image_mask(pose: PoseLandmarks, shape: tuple[int, int]) -> np.ndarray:
    """The pose's person mask (from its ROI crop) in image pixels, (H, W) bool."""
    import cv2

    if pose.mask is None:
        raise ValueError('the landmark model was built without keep_mask; PeopleFinder needs the person masks')
    to_image = roi_affine(pose.roi, LANDMARK_SIZE)
    warped = cv2.warpAffine(pose.mask.astype(np.float32), to_image, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped > 0.5


@dataclass
class PeopleFinder:
    """Finds every person in an image (see the module docstring).

    Args:
        detector: BlazePose's detector.
        landmarker: BlazePose's landmark model.
        proposals: optional extra proposer: RGB image -> (K, >=4) boxes ``[x1, y1, x2, y2, ...]`` px.
        fractions: tile sizes searched, as shares of the shorter image side (the whole image always is).
        presence_threshold: the landmark model's pose score that makes a proposal a person.
        max_shared: a pose whose person mask lies more than this share on people already found is a part
            of one of them, not a new person.
        min_size: people whose landmark box is smaller than this share of the image's shorter side are
            ignored (too small for a mesh; the detector also fires on person-like clutter at that size).
    """

    detector: PoseDetector
    landmarker: PoseLandmarker
    proposals: Callable[[np.ndarray], np.ndarray] | None = None
    fractions: Sequence[float] = (1.0, 0.5)
    presence_threshold: float = PRESENCE_THRESHOLD
    max_shared: float = 0.85
    min_size: float = 0.08
    stats: dict = field(default_factory=lambda: {'windows': 0, 'proposals': 0, 'landmark_runs': 0})

    def proposal_rois(self, image: np.ndarray) -> list[tuple[float, np.ndarray, float]]:
        """Every ROI worth a landmark pass, as (priority, roi, side of the window it was found in), best
        first; the detector's ROIs come first (their score), then the extra proposer's (window side 0)."""
        rois = []
        for window in search_windows(*image.shape[:2], fractions=self.fractions):
            self.stats['windows'] += 1
            rois += [(det.score, det.roi, float(window[2])) for det in self.detector.detect_window(image, window)]
        if self.proposals is not None:
            for box in np.asarray(self.proposals(image), dtype=np.float64):
                rois.append((0.0, box_roi(box[:4]), 0.0))
        self.stats['proposals'] += len(rois)
        return sorted(rois, key=lambda r: -r[0])

    def settle(self, image: np.ndarray, roi: np.ndarray) -> PoseLandmarks | None:
        """Landmarks for a proposal, re-centred once on the person's own landmarks; None when no pose."""
        first = self.landmarker(image, roi)
        self.stats['landmark_runs'] += 1
        if first.score < self.presence_threshold:
            return None
        second = self.landmarker(image, first.next_roi)
        self.stats['landmark_runs'] += 1
        return second if second.score >= first.score or second.score >= self.presence_threshold else first

    @staticmethod
    def agrees(roi: np.ndarray, window: float, pose: PoseLandmarks) -> bool:
        """True when a detector ROI, found in a window that showed the whole person, puts the mid-hip and
        the body scale where the pose has them."""
        return window >= 0.8 * float(pose.next_roi[2]) and same_place(roi, pose.next_roi)

    def confirmed(self, image: np.ndarray, pose: PoseLandmarks,
                  detections: Sequence[tuple[np.ndarray, float]]) -> bool:
        """True when some detection agrees with the pose: one of ``detections`` (detector ROIs and their
        window sides, found while proposing), else one in a window around the pose. The landmark model
        alone also answers for parts of a person, or for person-like clutter, when its input shows only
        that; the detector, shown the whole person, does not."""
        if any(self.agrees(roi, window, pose) for roi, window in detections):
            return True
        for scale in (1.0, 1.5):
            window = np.array([pose.next_roi[0], pose.next_roi[1], scale * pose.next_roi[2]])
            self.stats['windows'] += 1
            if any(self.agrees(det.roi, window[2], pose) for det in self.detector.detect_window(image, window)):
                return True
        return False

    def too_small(self, pose: PoseLandmarks, shape: tuple[int, int]) -> bool:
        """True when the pose's box is below ``min_size`` of the image's shorter side."""
        x1, y1, x2, y2 = pose.box()
        return max(x2 - x1, y2 - y1) < self.min_size * min(shape)

    def is_new(self, pose: PoseLandmarks, people: Sequence[PoseLandmarks]) -> bool:
        """True when ``pose`` is nobody already in ``people``."""
        return all(pose_distance(pose, other) > DUPLICATE_DISTANCE for other in people)

    def covered(self, roi: np.ndarray, people: Sequence[PoseLandmarks]) -> bool:
        """True when a proposal's ROI is essentially the ROI of someone already found (skip its pass)."""
        return any(same_place(roi, other.roi) for other in people)

    def find(self, image: np.ndarray, known: Sequence[PoseLandmarks] = ()) -> list[PoseLandmarks]:
        """Everyone in an (H, W, 3) uint8 RGB image who is not among ``known``; best score first."""
        people: list[PoseLandmarks] = list(known)
        taken = np.zeros(image.shape[:2], dtype=bool)
        for pose in known:
            taken |= image_mask(pose, image.shape[:2])
        found = []
        proposals = self.proposal_rois(image)
        detections = [(roi, window) for _, roi, window in proposals if window > 0]
        for _, roi, _ in proposals:
            if self.covered(roi, people):
                continue
            pose = self.settle(image, roi)
            if pose is None or not self.is_new(pose, people) or self.too_small(pose, image.shape[:2]):
                continue
            mask = image_mask(pose, image.shape[:2])
            if (mask & taken).sum() > self.max_shared * max(mask.sum(), 1):
                continue
            if self.confirmed(image, pose, detections):
                people.append(pose)
                found.append(pose)
                taken |= mask
        return sorted(found, key=lambda p: -p.score)


def build_finder(proposals: Callable[[np.ndarray], np.ndarray] | None = None, num_threads: int = 1,
                 fractions: Sequence[float] = (1.0, 0.5)) -> PeopleFinder:
    """A `PeopleFinder` on the shipped BlazePose models (raises `utils.video.blazepose.ModelFileError`)."""
    return PeopleFinder(PoseDetector(num_threads=num_threads), PoseLandmarker(num_threads=num_threads, keep_mask=True),
                        proposals=proposals, fractions=fractions)


@dataclass
class Track:
    """One person followed over frames: id, the frames seen and the landmarks in each."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    poses: list[PoseLandmarks] = field(default_factory=list)

    @property
    def last(self) -> PoseLandmarks:
        return self.poses[-1]


class PeopleTracker:
    """Follows people through frames with the landmark model, searching for newcomers now and then.

    Args:
        finder: the `PeopleFinder` used for full searches.
        search_every: frames between full searches (a search also runs when someone was lost).
        max_gap: frames within which a person found again where a track was lost resumes its id.
    """

    def __init__(self, finder: PeopleFinder, search_every: int = 10, max_gap: int = 15) -> None:
        self.finder = finder
        self.search_every = max(1, int(search_every))
        self.max_gap = int(max_gap)
        self.active: list[Track] = []
        self.ended: list[Track] = []
        self._next_id = 1
        self._last_search = None

    def update(self, frame: int, image: np.ndarray) -> list[tuple[int, PoseLandmarks]]:
        """Process one frame; returns the (track id, landmarks) of everyone seen in it."""
        kept, lost = [], False
        for track in self.active:
            pose = self.finder.landmarker(image, track.last.next_roi)
            self.finder.stats['landmark_runs'] += 1
            if pose.score >= self.finder.presence_threshold and self.finder.is_new(pose, [t.last for t in kept]):
                track.frames.append(frame)
                track.poses.append(pose)
                kept.append(track)
            else:
                lost = True
                self.ended.append(track)
        self.active = kept
        due = self._last_search is None or frame - self._last_search >= self.search_every
        if due or lost:
            self._last_search = frame
            for pose in self.finder.find(image, known=[t.last for t in self.active]):
                track = self._resume(frame, pose) or Track(self._new_id())
                track.frames.append(frame)
                track.poses.append(pose)
                self.active.append(track)
        return [(t.track_id, t.last) for t in self.active if t.frames[-1] == frame]

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _resume(self, frame: int, pose: PoseLandmarks) -> Track | None:
        """A recently ended track whose last box overlaps the new pose's box, taken off the ended list."""
        best, best_iou = None, 0.3
        for track in self.ended:
            if frame - track.frames[-1] > self.max_gap:
                continue
            iou = float(iou_matrix(pose.box()[None], track.last.box()[None])[0, 0])
            if iou > best_iou:
                best, best_iou = track, iou
        if best is not None:
            self.ended.remove(best)
        return best

    def tracks(self, min_len: int = 1) -> list[Track]:
        """All tracks with at least ``min_len`` frames, by id."""
        return sorted([t for t in self.active + self.ended if len(t.frames) >= min_len], key=lambda t: t.track_id)
