"""Finding and following people with BlazePose: proposals from many windows, verified by the landmark model.

BlazePose's detector sees a square window at 224x224 and finds people whose face and torso are large in
it, so on a whole photo it misses small people and people far from the centre. `PeopleFinder` searches the
whole image and overlapping square tiles at several sizes, adds optional proposals from another detector
(boxes, e.g. OpenCV's HOG), and hands every proposal to the landmark model, best first. A proposal
becomes a person when:
1. the landmark model says a pose is present (its ROI is then re-centred on the person's own landmarks
   with one more landmark pass);
2. the pose is nobody already found: its landmarks do not coincide with an accepted person's, nor its
   torso, and its person mask does not lie mostly on theirs (the landmark model also answers for a part
   of a person when its window shows only that part);
3. it is not tiny (person-like clutter);
4. the detector agrees: shown a window with the whole person, it finds a body with the same mid-hip and
   scale.
This keeps people side by side, overlapping or facing away, as long as one proposal lands near them.
For photos (``find(..., thorough=True)``) three more steps, each some landmark passes per person:
- in a crowd the landmark pass for a detected person may lock onto a neighbour; the detector's own
  mid-shoulder then lies elsewhere, and the person's landmarks become the median over ROI variants
  (scales, turns, mirrored) that keep the torso where the detector put it (`PeopleFinder.anchored`);
- people cut by the left or right border, whose face the detector cannot see, are looked for with ROIs
  centred on the border line; the plain and the mirrored pass must both be sure and agree
  (`PeopleFinder.find_at_edges`);
- everyone's landmarks become the median over the ROI variants that keep the torso in place
  (`PeopleFinder.consensus`): the landmark model's answer changes with the crop, and one crop's mistake
  is outvoted; people who overlap others are also read with the others painted out
  (`PeopleFinder.consensus_all`), so that fewer neighbours' limbs are there to take;
- people of whom only an arm reaches into the picture from the left or right border are found by their
  hand (`PeopleFinder.find_by_hands`): the palm detector searches along both borders; a hand near a border
  that belongs to nobody found, confirmed by the hand landmark model, leads to landmark passes on ROIs
  reaching beyond that border, on the image with everyone found painted out (otherwise the landmark model answers
  for the nearest person found); the person is kept when several passes put a visible wrist on the hand
  and the body beyond the border.

`PeopleTracker` follows people through a video: each person's next ROI comes from its landmarks in the
previous frame (no detection needed while the landmark model keeps its score). A full search runs on the
first frame and whenever someone was lost; every ``search_every`` frames a search for newcomers looks only
where the picture changed away from the people followed (`ChangeGate`), plus one window in turn. A new
person found near where a track was lost within ``max_gap`` frames resumes that track's id.

This module imports only numpy, OpenCV, `utils.video.blazepose` and `utils.video.tracking`.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from utils.video.blazepose import (
    HAND_SCORE,
    LANDMARK_SIZE,
    ROI_SCALE,
    HandLandmarker,
    PalmDetection,
    PalmDetector,
    PoseDetection,
    PoseDetector,
    PoseLandmarker,
    PoseLandmarks,
    roi_affine,
)
from utils.video.tracking import iou_matrix

logger = logging.getLogger(__name__)

PRESENCE_THRESHOLD = 0.5
# Two poses are one person when their landmarks lie this close, as a share of the person's size.
DUPLICATE_DISTANCE = 0.12
# Longer side, pixels, of the grid on which person masks are compared.
MASK_SIDE = 480
# Variants of a person's ROI whose landmarks `PeopleFinder.consensus` combines: (factor on the side, turn in
# radians, mirrored left to right).
CONSENSUS_VARIANTS = tuple((scale, turn, mirror) for scale in (0.9, 1.1, 1.3) for turn in (-0.15, 0.0, 0.15)
                           for mirror in (False, True))
# A person's box side in palm sides (palm box sides of the palm detector): an adult's height is about 18
# palm widths, and a box is 1.2 times the height.
HAND_BODY_PALMS = 21.6
# ROIs that `PeopleFinder.find_by_hands` tries for a person of whom only an arm reaches into the picture:
# (side in palm sides, share of the side between the wrist and the centre, towards the border, share of
# the side by which the centre lies below the wrist); the centre lies on the border or beyond it. The body
# is beyond the border, the hand inside the ROI, and the hips about level with a hanging hand.
HAND_ROI_VARIANTS = tuple((side, out, down) for side in (14.0, 17.0, 20.0, 24.0) for out in (0.3, 0.4)
                          for down in (0.0, 0.15))


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


def torso(pose: PoseLandmarks) -> tuple[np.ndarray, np.ndarray]:
    """A pose's mid-hip and mid-shoulder, (2,) pixels each."""
    return pose.image[[23, 24], :2].mean(axis=0), pose.image[[11, 12], :2].mean(axis=0)


def same_torso(a: PoseLandmarks, b: PoseLandmarks, share: float = 0.1) -> bool:
    """True when two poses' mid-hips and mid-shoulders both lie within ``share`` of the larger one's size
    (ROI side / `ROI_SCALE`) of each other."""
    size = max(float(a.roi[2]), float(b.roi[2])) / ROI_SCALE
    (hip_a, shoulders_a), (hip_b, shoulders_b) = torso(a), torso(b)
    return bool(np.linalg.norm(hip_a - hip_b) < share * size
                and np.linalg.norm(shoulders_a - shoulders_b) < share * size)


def median_pose(poses: Sequence[PoseLandmarks], base: PoseLandmarks) -> PoseLandmarks:
    """The landmark-wise median of several answers for one person (score, image and world landmarks,
    visibility, presence, next ROI); the ROI and the mask are ``base``'s."""
    def median(values):
        return np.median(np.stack(values), axis=0).astype(np.float32)

    return PoseLandmarks(score=float(np.median([p.score for p in poses])), image=median([p.image for p in poses]),
                         visibility=median([p.visibility for p in poses]), presence=median([p.presence for p in poses]),
                         world=median([p.world for p in poses]), roi=base.roi,
                         next_roi=median([p.next_roi for p in poses]), mask=base.mask)


def image_mask(pose: PoseLandmarks, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """The pose's person mask (from its ROI crop) on the image's pixel grid shrunk by ``scale``: an
    (round(H * scale), round(W * scale)) bool array for an image of ``shape`` (H, W)."""
    import cv2

    if pose.mask is None:
        raise ValueError('the landmark model was built without keep_mask; PeopleFinder needs the person masks')
    to_grid = roi_affine(pose.roi, LANDMARK_SIZE) * scale
    size = (max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale)))
    warped = cv2.warpAffine(pose.mask.astype(np.float32), to_grid, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped > 0.5


def mask_scale(shape: tuple[int, int]) -> float:
    """Scale of the grid on which `PeopleFinder` compares person masks: its longer side is at most
    `MASK_SIDE` pixels (shares of overlap need no finer grid, and warping masks to 1080p costs ~15 ms each)."""
    return min(1.0, MASK_SIDE / max(shape))


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
        variants: ROI variants ``(factor on the side, turn in radians, mirrored)`` whose landmarks
            `consensus` combines for everyone found (``find(..., thorough=True)``).
        agree: a variant counts when its mid-hip and mid-shoulder lie within this share of the person's
            size (the ROI side / `ROI_SCALE`) of the person's.
        edge_fractions: sides of the ROIs that `find_at_edges` centres on the left and right borders, as
            shares of the image's shorter side.
        edge_score: the landmark model's score that both the plain and the mirrored pass must reach for a
            person found at a border (the detector cannot confirm them).
        edge_agree: the most the plain and the mirrored pass of such a person may differ (`pose_distance`).
        crowd_share: `consensus_all` also reads a person with the others painted out when their masks cover
            at least this share of the person's own mask.
        palms: the palm detector for `find_by_hands` (None: no search by hands).
        hands: the hand landmark model, which confirms that a palm detection is a hand (the palm detector
            also fires on shoes and round spots) and places its wrist (None: no search by hands).
        hand_score: the hand landmark model's presence score that confirms a hand.
        hand_window: side of the palm detector's windows along the left and right borders, as a share of
            the image's shorter side.
        hand_reach: a hand leads the search when its palm's centre lies within this many palm sides of the
            left or right border (about an arm's length: the person's shoulder is beyond the border).
        hand_votes: landmark passes (of ``len(HAND_ROI_VARIANTS)`` ROIs, plain and mirrored) that must put
            a visible wrist on the hand and the body beyond the border.
    """

    detector: PoseDetector
    landmarker: PoseLandmarker
    proposals: Callable[[np.ndarray], np.ndarray] | None = None
    fractions: Sequence[float] = (1.0, 0.75, 0.5)
    presence_threshold: float = PRESENCE_THRESHOLD
    max_shared: float = 0.85
    min_size: float = 0.08
    variants: Sequence[tuple[float, float, bool]] = CONSENSUS_VARIANTS
    agree: float = 0.1
    edge_fractions: Sequence[float] = (0.5, 0.65, 0.8)
    edge_score: float = 0.9
    edge_agree: float = 0.06
    crowd_share: float = 0.1
    palms: PalmDetector | None = None
    hands: HandLandmarker | None = None
    hand_score: float = HAND_SCORE
    hand_window: float = 0.35
    hand_reach: float = 6.0
    hand_votes: int = 3
    stats: dict = field(default_factory=lambda: {'windows': 0, 'proposals': 0, 'landmark_runs': 0})

    def proposal_rois(self, image: np.ndarray, windows: Sequence[np.ndarray] | None = None,
                      proposal_region: np.ndarray | None = None,
                      ) -> list[tuple[float, np.ndarray, float, PoseDetection | None]]:
        """Every ROI worth a landmark pass, as (priority, roi, side of the window it was found in, the
        detection or None), best first; the detector's ROIs come first (their score), then the extra
        proposer's (window side 0, no detection).

        Args:
            image: (H, W, 3) uint8 RGB.
            windows: the detector's windows ``[cx, cy, size]`` (default: all `search_windows`).
            proposal_region: (h, w) bool on the image's grid at any scale: the extra proposer runs only
                when some of it is True and keeps the boxes that hold a part of it (default: everywhere).
        """
        if windows is None:
            windows = search_windows(*image.shape[:2], fractions=self.fractions)
        rois = []
        for window in windows:
            self.stats['windows'] += 1
            rois += [(det.score, det.roi, float(window[2]), det) for det in self.detector.detect_window(image, window)]
        if self.proposals is not None and (proposal_region is None or proposal_region.any()):
            for box in np.asarray(self.proposals(image), dtype=np.float64):
                if proposal_region is None or holds_region(box[:4], proposal_region, image.shape[:2]):
                    rois.append((0.0, box_roi(box[:4]), 0.0, None))
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
        """True when ``pose`` is nobody already in ``people``: its landmarks do not coincide with theirs, nor
        its torso (two answers whose limbs differ but whose mid-hip and mid-shoulder coincide are two guesses
        at one person's limbs)."""
        return all(pose_distance(pose, other) > DUPLICATE_DISTANCE and not same_torso(pose, other)
                   for other in people)

    def covered(self, roi: np.ndarray, people: Sequence[PoseLandmarks]) -> bool:
        """True when a proposal's ROI is essentially the ROI of someone already found, the one their
        landmarks were computed in or the one they give for the next frame (skip its pass)."""
        return any(same_place(roi, other.roi) or same_place(roi, other.next_roi) for other in people)

    def consensus(self, image: np.ndarray, pose: PoseLandmarks, painted: np.ndarray | None = None) -> PoseLandmarks:
        """A person's landmarks as the median over the answers for ROI variants (`variants`) that keep the
        person's torso in place (the landmark model's answer changes with the crop; in a crowd some crops
        lock onto a neighbour, and those are left out). With ``painted``, the image with the people around
        painted out (`paint_out`), the variants are read on it as well and all agreeing answers count."""
        hip, shoulders = torso(pose)
        agreeing = [pose, *self.agreeing(image, pose.roi, hip, shoulders)]
        if painted is not None:
            agreeing += self.agreeing(painted, pose.roi, hip, shoulders)
        return median_pose(agreeing, pose)

    def consensus_all(self, image: np.ndarray, found: Sequence[PoseLandmarks],
                      known: Sequence[PoseLandmarks] = ()) -> list[PoseLandmarks]:
        """`consensus` for each of ``found``; where other people's masks (of ``found`` and ``known``) cover
        at least ``crowd_share`` of a person's own mask (people overlapping in a crowd, where the landmark
        model takes a neighbour's limbs), the variants are also read with the others painted out, except
        where the person's own mask is."""
        everyone = [*found, *known]
        if len(everyone) < 2:
            return [self.consensus(image, pose) for pose in found]
        shape = image.shape[:2]
        masks = [image_mask(pose, shape) for pose in everyone]
        out = []
        for i, pose in enumerate(found):
            others = [mask for j, mask in enumerate(masks) if j != i]
            painted = paint_out(image, others, keep=masks[i]) if crowded(masks[i], others, self.crowd_share) else None
            out.append(self.consensus(image, pose, painted))
        return out

    def agreeing(self, image: np.ndarray, roi: np.ndarray, hip: np.ndarray,
                 shoulders: np.ndarray) -> list[PoseLandmarks]:
        """The answers for the variants (`variants`) of a person's ``roi`` whose mid-hip and mid-shoulder lie
        within `agree` of the person's size (the ROI side / `ROI_SCALE`) of ``hip`` and ``shoulders`` (2,)."""
        tolerance = self.agree * float(roi[2]) / ROI_SCALE
        agreeing = []
        for scale, turn, mirror in self.variants:
            variant = roi.astype(np.float64) * (1.0, 1.0, scale, 1.0) + (0.0, 0.0, 0.0, turn)
            answer = self.landmarker(image, variant, mirror=mirror)
            self.stats['landmark_runs'] += 1
            answer_hip, answer_shoulders = torso(answer)
            if (answer.score >= self.presence_threshold and np.linalg.norm(answer_hip - hip) < tolerance
                    and np.linalg.norm(answer_shoulders - shoulders) < tolerance):
                agreeing.append(answer)
        return agreeing

    def someone_else(self, detection: PoseDetection, pose: PoseLandmarks) -> bool:
        """True when a detection's mid-shoulder (the detector places it well: its boxes are anchored on the
        face) lies farther than `agree` of the person's size from the pose's: the pose answers for another
        person than the one detected."""
        size = float(detection.roi[2]) / ROI_SCALE
        return bool(np.linalg.norm(torso(pose)[1] - detection.keypoints[2]) > self.agree * size)

    def anchored(self, image: np.ndarray, detection: PoseDetection, min_agreeing: int = 2) -> PoseLandmarks | None:
        """The detected person's landmarks when the plain landmark pass locks onto someone else (in a crowd):
        the median over the ROI variants (`variants`) whose mid-hip and mid-shoulder lie where the detector
        put them (within `agree` of the person's size); None when fewer than ``min_agreeing`` do."""
        agreeing = self.agreeing(image, detection.roi, detection.keypoints[0], detection.keypoints[2])
        if len(agreeing) < min_agreeing:
            return None
        return median_pose(agreeing, max(agreeing, key=lambda a: a.score))

    def find(self, image: np.ndarray, known: Sequence[PoseLandmarks] = (), windows: Sequence[np.ndarray] | None = None,
             proposal_region: np.ndarray | None = None, thorough: bool = True) -> list[PoseLandmarks]:
        """Everyone in an (H, W, 3) uint8 RGB image who is not among ``known``; best score first.

        ``windows`` and ``proposal_region`` narrow the search (see `proposal_rois`; default: the whole
        image, as for a photo); the tracker narrows it to where a newcomer may be. ``thorough`` (photos):
        re-read a detected person whose landmark pass locked onto someone else (`anchored`), look for
        people cut by the left and right borders (`find_at_edges`: 2 landmark passes for each of 18 ROIs on a
        16:9 frame), and take each person's landmarks as the `consensus` of ROI variants (``len(variants)``
        passes per person), and look for people of whom only an arm is in the picture (`find_by_hands`); the
        tracker's searches are not thorough (it follows people over frames instead).
        """
        shape = image.shape[:2]
        scale = mask_scale(shape)
        people: list[PoseLandmarks] = list(known)
        taken = np.zeros((max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))), dtype=bool)
        for pose in known:
            taken |= image_mask(pose, shape, scale)
        found = []
        proposals = self.proposal_rois(image, windows, proposal_region)
        detections = [(roi, window) for _, roi, window, _ in proposals if window > 0]
        for _, roi, _, detection in proposals:
            if self.covered(roi, people):
                continue
            pose = self.settle(image, roi)
            if thorough and detection is not None and (pose is None or not self.is_new(pose, people)) and (
                    pose is None or self.someone_else(detection, pose)):
                pose = self.anchored(image, detection)
            if pose is None or not self.is_new(pose, people) or self.too_small(pose, shape):
                continue
            mask = image_mask(pose, shape, scale)
            if (mask & taken).sum() > self.max_shared * max(mask.sum(), 1):
                continue
            if self.confirmed(image, pose, detections):
                people.append(pose)
                found.append(pose)
                taken |= mask
        if thorough:
            found += self.find_at_edges(image, people, taken)
            refined: list[PoseLandmarks] = []
            for pose in sorted(self.consensus_all(image, found, known), key=lambda p: -p.score):
                if self.is_new(pose, [*known, *refined]):   # two guesses that the consensus brought together
                    refined.append(pose)
            found = self.drop_covered(refined, known, shape, scale)
            found += self.find_by_hands(image, [*known, *found])
        return sorted(found, key=lambda p: -p.score)

    def drop_covered(self, found: list[PoseLandmarks], known: Sequence[PoseLandmarks], shape: tuple[int, int],
                     scale: float) -> list[PoseLandmarks]:
        """The mask rule of `find` (no more than ``max_shared`` of a person's mask on others'), applied again
        to the final people whatever the order they were found in: the least sure person whose mask lies
        mostly on the others' goes first (in a crowd, a pose blended from two neighbours), then the rest are
        checked again."""
        masks = [image_mask(pose, shape, scale) for pose in found]
        known_mask = np.zeros_like(masks[0]) if masks else None
        for pose in known:
            known_mask |= image_mask(pose, shape, scale)
        keep = list(range(len(found)))
        while True:
            covered = []
            for i in keep:
                others = known_mask.copy()
                for j in keep:
                    if j != i:
                        others |= masks[j]
                if (masks[i] & others).sum() > self.max_shared * max(masks[i].sum(), 1):
                    covered.append(i)
            if not covered:
                return [found[i] for i in keep]
            keep.remove(min(covered, key=lambda i: found[i].score))

    def find_at_edges(self, image: np.ndarray, people: list[PoseLandmarks], taken: np.ndarray) -> list[PoseLandmarks]:
        """People cut by the left or right border whom the detector misses (face outside the picture or
        turned away): ROIs centred on the border line (`edge_rois`) go to the landmark model, plain and
        mirrored; a pose becomes a person when, re-centred on its own landmarks, both passes are sure of it
        and agree (`edge_score`, `edge_agree`), some of its landmarks lie beyond that border, and it is
        nobody already in ``people`` (nor mostly on their masks, ``taken``, on the `mask_scale` grid).
        ``people`` and ``taken`` are updated in place."""
        shape = image.shape[:2]
        scale = taken.shape[1] / shape[1]
        found = []
        for roi, side in edge_rois(*shape, self.edge_fractions):
            if self.covered(roi, people):
                continue
            answers = [self.landmarker(image, roi, mirror=mirror) for mirror in (False, True)]
            self.stats['landmark_runs'] += 2
            best = max(answers, key=lambda a: a.score)
            if best.score < self.presence_threshold:
                continue
            pose = self.landmarker(image, best.next_roi)
            mirrored = self.landmarker(image, best.next_roi, mirror=True)
            self.stats['landmark_runs'] += 2
            if min(pose.score, mirrored.score) < self.edge_score or pose_distance(pose, mirrored) > self.edge_agree:
                continue
            beyond = pose.image[:, 0] < 0 if side == 'left' else pose.image[:, 0] > shape[1]
            if not beyond.any() or not self.is_new(pose, people) or self.too_small(pose, shape):
                continue
            mask = image_mask(pose, shape, scale)
            if (mask & taken).sum() > self.max_shared * max(mask.sum(), 1):
                continue
            people.append(pose)
            found.append(pose)
            taken |= mask
        return found

    def border_hands(self, image: np.ndarray) -> list[PalmDetection]:
        """Hands near the left and right borders: the palm detector on `border_windows`, one detection per
        hand (the windows overlap), best first."""
        hands: list[PalmDetection] = []
        for window in border_windows(*image.shape[:2], self.hand_window):
            self.stats['windows'] += 1
            hands += self.palms.detect_window(image, window)
        kept: list[PalmDetection] = []
        for hand in sorted(hands, key=lambda h: -h.score):
            if all(np.linalg.norm(hand.center - other.center) > 0.5 * other.side for other in kept):
                kept.append(hand)
        return kept

    def find_by_hands(self, image: np.ndarray, people: Sequence[PoseLandmarks]) -> list[PoseLandmarks]:
        """People of whom only an arm reaches into the picture from the left or right border, found by their
        hand (see the module docstring); ``people`` are everyone found so far. A hand leads the search when
        its palm lies within ``hand_reach`` palm sides of a border and on nobody in ``people`` (their person
        masks, and within a palm side of their hand landmarks) and the hand landmark model confirms it
        (``hand_score``) and places its wrist. The landmark model then reads the `HAND_ROI_VARIANTS` ROIs
        (the hand inside, the centre on the border or beyond it), plain and mirrored, on the image with
        ``people`` painted out; a pass votes when it is sure of a pose, one of its wrists is visible and within 1.5
        palm sides of the hand's wrist, and its shoulders or hips lie beyond the border. With at least
        ``hand_votes`` votes for the same wrist, the person's landmarks are the median of those passes."""
        if self.palms is None or self.hands is None:
            return []
        shape = image.shape[:2]
        people = list(people)
        painted = None
        found = []
        for hand in self.border_hands(image):
            left = hand.center[0] < shape[1] / 2
            if min(hand.center[0], shape[1] - hand.center[0]) > self.hand_reach * hand.side:
                continue
            if any(owns_hand(pose, hand, shape) for pose in people):
                continue
            landmarks = self.hands(image, hand)
            self.stats['landmark_runs'] += 1
            if landmarks.score < self.hand_score:
                continue
            wrist = landmarks.image[0, :2]
            if painted is None:
                painted = paint_out(image, [image_mask(pose, shape) for pose in people], grow=0.01)
            votes: dict[int, list[PoseLandmarks]] = {15: [], 16: []}
            for side, out, down in HAND_ROI_VARIANTS:
                size = side * hand.side
                center = min(wrist[0] - out * size, 0.0) if left else max(wrist[0] + out * size, float(shape[1]))
                roi = np.array([center, wrist[1] + down * size, size, 0.0])
                for mirror in (False, True):
                    pose = self.landmarker(painted, roi, mirror=mirror)
                    self.stats['landmark_runs'] += 1
                    if pose.score < self.presence_threshold:
                        continue
                    body_x = pose.image[[11, 12, 23, 24], 0]
                    if not ((body_x < 0).any() if left else (body_x > shape[1]).any()):
                        continue
                    for index in votes:
                        if (pose.visibility[index] >= 0.5
                                and np.linalg.norm(pose.image[index, :2] - wrist) < 1.5 * hand.side):
                            votes[index].append(pose)
            passes = max(votes.values(), key=len)
            if len(passes) < self.hand_votes:
                continue
            pose = hand_person(median_pose(passes, max(passes, key=lambda p: p.score)), wrist, hand.side, shape)
            if self.is_new(pose, people):
                people.append(pose)
                found.append(pose)
        return found


def hand_person(pose: PoseLandmarks, wrist: np.ndarray, palm_side: float, shape: tuple[int, int],
                body_palms: float = HAND_BODY_PALMS, guess_weight: float = 0.2) -> PoseLandmarks:
    """A person found by the hand, as the demo uses them. The landmark model, seeing only an arm, answers
    with a body too small for it; the landmarks outside the image (guesses) are scaled about the hand's
    ``wrist`` (2,) pixels to a body of ``body_palms`` palm sides (the box of a person whose palm is as
    wide), their visibility is multiplied by ``guess_weight`` and their presence set to 0; the person's box
    (``extent``) is the square of that side centred on the scaled guess of the torso."""
    outside = (pose.image[:, 0] < 0) | (pose.image[:, 0] > shape[1]) | (pose.image[:, 1] < 0) | (
        pose.image[:, 1] > shape[0])
    side = body_palms * palm_side
    factor = (side / 1.2) / max(float(np.ptp(pose.image[:, :2], axis=0).max()), 1.0)
    image = pose.image.copy()
    image[outside, :2] = wrist + (image[outside, :2] - wrist) * factor
    image[outside, 2] *= factor
    visibility, presence = pose.visibility.copy(), pose.presence.copy()
    visibility[outside] *= guess_weight
    presence[outside] = 0.0
    center = wrist + (pose.image[[11, 12, 23, 24], :2].mean(axis=0) - wrist) * factor
    return dataclasses.replace(pose, image=image, visibility=visibility, presence=presence,
                               extent=np.concatenate([center - side / 2, center + side / 2]))


def owns_hand(pose: PoseLandmarks, hand: PalmDetection, shape: tuple[int, int]) -> bool:
    """True when a found person has the hand: the palm's centre lies on their person mask, or within a palm
    side of one of their wrist and finger landmarks."""
    if np.linalg.norm(pose.image[15:23, :2] - hand.center, axis=1).min() < hand.side:
        return True
    scale = mask_scale(shape)
    mask = image_mask(pose, shape, scale)
    row, col = (int(np.clip(v * scale, 0, n - 1)) for v, n in zip(hand.center[::-1], mask.shape))
    return bool(mask[row, col])


def crowded(own: np.ndarray, others: Sequence[np.ndarray], share: float) -> bool:
    """True when the masks ``others`` ((H, W) bool each) cover at least ``share`` of the person's ``own``
    mask: the person overlaps others, as in a crowd."""
    covered = np.zeros_like(own)
    for mask in others:
        covered |= mask
    return bool((covered & own).sum() >= share * max(int(own.sum()), 1))


def paint_out(image: np.ndarray, masks: Sequence[np.ndarray], keep: np.ndarray | None = None,
              grow: float = 0.0) -> np.ndarray:
    """A copy of an (H, W, 3) image with the person masks ``masks`` ((H, W) bool each), grown by ``grow`` of
    the shorter side, filled with the image's median colour (so that the landmark model cannot answer for
    those people), except where ``keep`` ((H, W) bool: someone's own mask) is True."""
    import cv2

    shape = image.shape[:2]
    covered = np.zeros(shape, dtype=bool)
    for mask in masks:
        covered |= mask
    if grow > 0:
        radius = max(1, round(grow * min(shape)))
        covered = cv2.dilate(covered.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    if keep is not None:
        covered &= ~keep
    painted = image.copy()
    painted[covered] = np.median(image.reshape(-1, image.shape[2]), axis=0).astype(image.dtype)
    return painted


def border_windows(height: int, width: int, fraction: float) -> list[np.ndarray]:
    """Square windows ``[cx, cy, size]`` of side ``fraction * min(H, W)`` inside the image, touching its left
    or its right border, overlapping by half along it and spread evenly from top to bottom."""
    size = min(height, width) * float(fraction)
    count = max(1, int(np.ceil((height - size) / (size / 2))) + 1)
    return [np.array([cx, cy, size]) for cy in np.linspace(size / 2, height - size / 2, count)
            for cx in (size / 2, width - size / 2)]


def edge_rois(height: int, width: int, fractions: Sequence[float]) -> list[tuple[np.ndarray, str]]:
    """Upright ROIs ``[cx, cy, size, 0]`` centred on the left and right border lines (half of each outside
    the image), of side ``fraction * min(H, W)``, a third of the side apart along the border; each with its
    border, 'left' or 'right'."""
    rois = []
    for fraction in fractions:
        size = min(height, width) * float(fraction)
        count = max(1, int(np.ceil((height - size) / (size / 3))) + 1)
        for cy in np.linspace(size / 2, height - size / 2, count):
            rois += [(np.array([0.0, cy, size, 0.0]), 'left'), (np.array([float(width), cy, size, 0.0]), 'right')]
    return rois


def holds_region(box: np.ndarray, region: np.ndarray, shape: tuple[int, int], min_share: float = 0.02) -> bool:
    """True when at least ``min_share`` of a box ``[x1, y1, x2, y2]`` (pixels of an image of ``shape``) lies
    on True cells of ``region``, a bool grid over the same image at any scale (and at least one cell)."""
    sy, sx = region.shape[0] / shape[0], region.shape[1] / shape[1]
    x1, x2 = (int(np.clip(np.floor(v * sx), 0, region.shape[1])) for v in (box[0], box[2]))
    y1, y2 = (int(np.clip(np.floor(v * sy), 0, region.shape[0])) for v in (box[1], box[3]))
    cells = region[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    hits = int(cells.sum())
    return hits >= 1 and hits >= min_share * max(cells.size, 1)


def build_finder(proposals: Callable[[np.ndarray], np.ndarray] | None = None, num_threads: int = 1,
                 fractions: Sequence[float] = (1.0, 0.75, 0.5)) -> PeopleFinder:
    """A `PeopleFinder` on the shipped BlazePose models, palm detector and hand landmark model (raises
    `utils.video.blazepose.ModelFileError`)."""
    return PeopleFinder(PoseDetector(num_threads=num_threads), PoseLandmarker(num_threads=num_threads, keep_mask=True),
                        proposals=proposals, fractions=fractions, palms=PalmDetector(num_threads=num_threads),
                        hands=HandLandmarker(num_threads=num_threads))


@dataclass
class Track:
    """One person followed over frames: id, the frames seen and the landmarks in each."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    poses: list[PoseLandmarks] = field(default_factory=list)

    @property
    def last(self) -> PoseLandmarks:
        return self.poses[-1]


@dataclass
class ChangeGate:
    """Where a video's picture changed since each search window was last searched, away from the people
    being followed: only there can a newcomer be (whoever stood still since was in the window when it was
    searched).

    Frames are compared as blurred grey images whose longer side is about ``side`` cells (blocks of whole
    pixels); a cell changed when its grey level moved by more than ``threshold``. Cells in the box of
    someone followed, now or at the window's last search, do not count: the landmarks' box grown by
    ``margin`` of its longer side (loose clothes, hair, blur) and by ``below`` of it under the feet (shadows
    and reflections on the floor). A window is due when at least ``min_cells`` of its cells changed (about
    half the smallest person the finder keeps, 8 % of the shorter side tall, in a 16:9 frame).
    """

    side: int = 256
    threshold: float = 20.0
    margin: float = 0.15
    below: float = 0.5
    min_cells: int = 20
    _refs: dict = field(default_factory=dict, repr=False)

    def factor(self, shape: tuple[int, int]) -> int:
        """Image pixels per cell, a whole number (so that shrinking is a plain average of pixel blocks)."""
        return max(1, int(np.ceil(max(shape) / self.side)))

    def snapshot(self, image: np.ndarray, people: Sequence[PoseLandmarks]) -> tuple[np.ndarray, np.ndarray]:
        """The frame as the gate compares it: grey (h, w) float32 and the followed people's boxes (h, w) bool."""
        import cv2

        k = self.factor(image.shape[:2])
        height, width = (image.shape[0] // k) * k, (image.shape[1] // k) * k
        small = cv2.resize(image[:height, :width], (width // k, height // k), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (5, 5), 0).astype(np.float32)
        followed = np.zeros(grey.shape, dtype=bool)
        self.add_people(followed, people, 1.0 / k)
        return grey, followed

    def add_people(self, followed: np.ndarray, people: Sequence[PoseLandmarks], scale: float) -> None:
        """Mark the grown boxes of ``people`` in a snapshot's ``followed`` grid (``scale``: grid / image)."""
        for pose in people:
            x1, y1, x2, y2 = pose.box()
            side = max(x2 - x1, y2 - y1)
            pad = self.margin * side
            c1, r1 = (max(0, int(np.floor((v - pad) * scale))) for v in (x1, y1))
            c2 = max(0, int(np.ceil((x2 + pad) * scale)))
            r2 = max(0, int(np.ceil((y2 + pad + self.below * side) * scale)))
            followed[r1:r2, c1:c2] = True

    def changed(self, snapshot: tuple[np.ndarray, np.ndarray], index: int, window: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:
        """(h, w) bool: the cells of window ``index`` ``[cx, cy, size]`` that changed since it was last
        searched (all of it when it never was), away from the people followed."""
        grey, followed = snapshot
        scale = 1.0 / self.factor(shape)
        inside = np.zeros(grey.shape, dtype=bool)
        half = window[2] / 2
        c1, r1 = (max(0, int(np.floor((v - half) * scale))) for v in window[:2])
        c2, r2 = (max(0, int(np.ceil((v + half) * scale))) for v in window[:2])
        inside[r1:r2, c1:c2] = True
        reference = self._refs.get(index)
        if reference is None:
            return inside
        ref_grey, ref_followed = reference
        return inside & (np.abs(grey - ref_grey) > self.threshold) & ~followed & ~ref_followed

    def due(self, snapshot: tuple[np.ndarray, np.ndarray], windows: Sequence[np.ndarray],
            shape: tuple[int, int]) -> tuple[list[int], np.ndarray]:
        """Indices of the windows due for a search, and the union of their changed cells (h, w) bool."""
        region = np.zeros(snapshot[0].shape, dtype=bool)
        due = []
        for index, window in enumerate(windows):
            changed = self.changed(snapshot, index, window, shape)
            if changed.sum() >= self.min_cells:
                due.append(index)
                region |= changed
        return due, region

    def searched(self, snapshot: tuple[np.ndarray, np.ndarray], indices: Sequence[int]) -> None:
        """Remember ``snapshot`` as what windows ``indices`` showed when they were searched."""
        for index in indices:
            self._refs[index] = snapshot


class PeopleTracker:
    """Follows people through frames with the landmark model, searching for newcomers now and then.

    The first frame and every frame after someone was lost get a full search (`PeopleFinder.find` on the
    whole frame). The searches every ``search_every`` frames in between look only for newcomers: only the
    windows whose picture changed away from the people followed (`ChangeGate`), the extra proposer only
    when some window did and only its boxes on the change, plus one window in turn whatever changed (so
    that, over ``len(windows) * search_every`` frames, everything is searched again).

    Args:
        finder: the `PeopleFinder` used for searches.
        search_every: frames between searches for newcomers (a full search also runs when someone was lost).
        max_gap: frames within which a person found again where a track was lost resumes its id.
        gate: where the picture changed (default: a `ChangeGate` with its defaults).
        keep_history: keep every frame's landmarks in each `Track` (for `tracks`); without, a track keeps
            only its last landmarks and tracks that can no longer resume are let go, so that a long video
            does not pile up landmarks and person masks (about 0.3 MB a person-frame); the demo's pipeline
            takes the landmarks from `update` as they come.
    """

    def __init__(self, finder: PeopleFinder, search_every: int = 10, max_gap: int = 15,
                 gate: ChangeGate | None = None, keep_history: bool = True) -> None:
        self.finder = finder
        self.keep_history = keep_history
        self.search_every = max(1, int(search_every))
        self.max_gap = int(max_gap)
        self.gate = gate or ChangeGate()
        self.active: list[Track] = []
        self.ended: list[Track] = []
        self._next_id = 1
        self._last_search = None
        self._turn = 0

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
        first = self._last_search is None
        if first or lost or frame - self._last_search >= self.search_every:
            self._last_search = frame
            for pose in self.search(image, full=first or lost):
                track = self._resume(frame, pose) or Track(self._new_id())
                track.frames.append(frame)
                track.poses.append(pose)
                self.active.append(track)
        if not self.keep_history:
            for track in self.active:
                del track.poses[:-1]
                del track.frames[:-1]
            self.ended = [t for t in self.ended if frame - t.frames[-1] <= self.max_gap]
        return [(t.track_id, t.last) for t in self.active if t.frames[-1] == frame]

    def search(self, image: np.ndarray, full: bool) -> list[PoseLandmarks]:
        """People in ``image`` who are not followed yet: a full search, or one for newcomers (see above)."""
        shape = image.shape[:2]
        known = [t.last for t in self.active]
        windows = search_windows(*shape, fractions=self.finder.fractions)
        snapshot = self.gate.snapshot(image, known)
        if full:
            chosen, region = list(range(len(windows))), None
        else:
            chosen, region = self.gate.due(snapshot, windows, shape)
            turn = self._turn % len(windows)
            self._turn += 1
            chosen += [] if turn in chosen else [turn]
        found = self.finder.find(image, known, windows=[windows[i] for i in chosen], proposal_region=region,
                                 thorough=False)
        self.gate.add_people(snapshot[1], found, 1.0 / self.gate.factor(shape))
        self.gate.searched(snapshot, chosen)
        return found

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
