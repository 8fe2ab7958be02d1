"""Pluggable person detectors for the demo: each maps RGB frames to boxes ``[x1, y1, x2, y2, score]`` in pixels.

Detectors:
- ``blazepose`` (the demo's default): BlazePose's detector and landmark model, shipped in
  ``assets/blazepose/``, searching tiles and verifying every proposal (`utils.video.people`); here it
  gives boxes only, the demo also keeps each person's keypoints and follows people with them.
- ``hog``: OpenCV's HOG + linear SVM people detector. It ships inside opencv-python, needs no
  download and runs anywhere. Frames are resized so the longer side is ``work_size`` pixels (small images
  are enlarged, because the detector window is 64x128), detected over an image pyramid, and the boxes
  are tightened to the person inside the window and merged by non-maximum suppression. It is weak on
  small, occluded or unusual poses; the tracker fills short gaps (see `utils.video.tracking`).
- ``yolo``/``yolov8``: ultralytics YOLO, when the user has installed ultralytics: a weights file on disk
  (``--detector_weights``, default ``data/pretrained_model/yolov8n.pt``), or, when that file is missing,
  the weights of that name, which ultralytics fetches itself where the machine is online.
- boxes from a file: `load_anno_file` reads the original's ``--anno_file`` tracklet JSON.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DETECTORS = ('blazepose', 'hog', 'yolo', 'yolov8')
UNAVAILABLE_DETECTORS = {
    'yolov3': 'the original YOLOv3 tracker (multi_person_tracker) is not used here; use --detector yolo '
              '(ultralytics) or the default blazepose',
    'maskrcnn': 'maskrcnn was never implemented in the original either; use --detector blazepose, hog or yolo',
}


def nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (K, 5) ``[x1, y1, x2, y2, score]`` in pixels.
        iou_threshold: boxes overlapping a kept higher-scored box by more than this IoU are dropped.

    Returns:
        (K', 5) kept boxes, highest score first.
    """
    if len(boxes) == 0:
        return boxes.reshape(0, 5)
    order = np.argsort(-boxes[:, 4])
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[:, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[:, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[:, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / np.maximum(area[i] + area - inter, 1e-9)
        # A box mostly inside a kept one (a limb or half a person) is also dropped.
        inside = inter / np.maximum(area, 1e-9)
        suppressed |= (iou > iou_threshold) | (inside > 0.8)
    return boxes[keep]


class HogDetector:
    """OpenCV HOG people detector (offline, no weights to download).

    Args:
        work_size: the longer image side, in pixels, at which detection runs.
        score_threshold: minimum SVM score of a kept box.
        scale_step: image pyramid step (smaller finds more sizes, slower).
        win_stride: sliding-window stride in pixels at ``work_size``.
        nms_iou: IoU threshold of the non-maximum suppression.
    """

    # The 64x128 window holds a person about 40 px wide and 100 px tall: fractions cut from each side.
    SHRINK_X = 12.0 / 64.0
    SHRINK_Y = 12.0 / 128.0

    def __init__(self, work_size: int = 640, score_threshold: float = 0.3, scale_step: float = 1.05,
                 win_stride: int = 8, nms_iou: float = 0.4) -> None:
        import cv2

        self.work_size = int(work_size)
        self.score_threshold = float(score_threshold)
        self.scale_step = float(scale_step)
        self.win_stride = int(win_stride)
        self.nms_iou = float(nms_iou)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Detect people in one (H, W, 3) uint8 RGB frame; returns (K, 5) ``[x1, y1, x2, y2, score]`` px."""
        import cv2

        height, width = frame_rgb.shape[:2]
        factor = self.work_size / max(height, width)
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        small = cv2.resize(frame_rgb, None, fx=factor, fy=factor, interpolation=interp)
        gray_pad = 16
        rects, weights = self._hog.detectMultiScale(
            small, winStride=(self.win_stride, self.win_stride), padding=(gray_pad, gray_pad),
            scale=self.scale_step, hitThreshold=0.0)
        if len(rects) == 0:
            return np.zeros((0, 5), dtype=np.float32)
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(weights, dtype=np.float32).reshape(-1)
        x, y, w, h = rects.T
        boxes = np.stack([x + w * self.SHRINK_X, y + h * self.SHRINK_Y,
                          x + w * (1 - self.SHRINK_X), y + h * (1 - self.SHRINK_Y)], axis=1) / factor
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        dets = np.concatenate([boxes, scores[:, None]], axis=1)
        dets = dets[dets[:, 4] >= self.score_threshold]
        return nms(dets, self.nms_iou).astype(np.float32)

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detect people in a batch of frames; one (K, 5) array per frame."""
        return [self.detect(f) for f in frames_rgb]


class YoloDetector:
    """Person detection with ultralytics YOLO (a local weights file, else ultralytics fetches the named one).

    Args:
        weights: path to a YOLO ``.pt`` file (e.g. yolov8n.pt); when missing, its name is fetched by ultralytics.
        score_threshold: minimum confidence.
        device: torch device string for ultralytics ('cpu', 'cuda', ...).
        img_size: inference size in pixels.

    Raises:
        ImportError: ultralytics is not installed.
        FileNotFoundError: the weights file does not exist and ultralytics could not fetch it.
    """

    def __init__(self, weights: str | os.PathLike, score_threshold: float = 0.3, device: str = 'cpu',
                 img_size: int = 640) -> None:
        weights = Path(weights)
        try:
            from ultralytics import YOLO
        except ImportError as err:
            raise ImportError('--detector yolo needs ultralytics: pip install ultralytics '
                              '(or use the default --detector blazepose, which is offline)') from err
        # A missing file is asked for by name: ultralytics then fetches its released weights, where online.
        source = str(weights) if weights.is_file() else weights.name
        try:
            self.model = YOLO(source)
        except Exception as err:  # ultralytics raises a variety of errors for a failed download
            raise FileNotFoundError(
                f'YOLO weights {weights} are not on disk and ultralytics could not fetch {weights.name} '
                f'({type(err).__name__}); download it on a connected machine and pass --detector_weights PATH, '
                f'or use the default --detector blazepose') from err
        self.score_threshold = float(score_threshold)
        self.device = device
        self.img_size = int(img_size)

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detect people (COCO class 0) in a batch of RGB frames; one (K, 5) array per frame."""
        frames_bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames_rgb]
        results = self.model.predict(frames_bgr, conf=self.score_threshold, classes=[0], device=self.device,
                                     imgsz=self.img_size, verbose=False)
        out = []
        for res in results:
            xyxy = res.boxes.xyxy.cpu().numpy().reshape(-1, 4)
            conf = res.boxes.conf.cpu().numpy().reshape(-1, 1)
            out.append(np.concatenate([xyxy, conf], axis=1).astype(np.float32))
        return out


class BlazePoseBoxes:
    """Boxes of the people `utils.video.people.PeopleFinder` finds (each frame searched on its own).

    Args:
        score_threshold: the landmark model's pose score that makes a person (default 0.5).
    """

    def __init__(self, score_threshold: float | None = None) -> None:
        from utils.video.people import build_finder

        self.finder = build_finder(proposals=HogDetector().detect)
        if score_threshold is not None:
            self.finder.presence_threshold = float(score_threshold)

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One (K, 5) ``[x1, y1, x2, y2, score]`` array per frame."""
        out = []
        for frame in frames_rgb:
            people = self.finder.find(frame)
            out.append(np.array([np.append(p.box(), p.score) for p in people], dtype=np.float32).reshape(-1, 5))
        return out


def build_detector(name: str, weights: str | os.PathLike | None = None, device: str = 'cpu',
                   score_threshold: float | None = None):
    """Make a detector by name ('blazepose', 'hog', 'yolo' or 'yolov8'); see the module docstring.

    Raises:
        ValueError: unknown or unavailable detector name.
    """
    name = name.lower()
    if name in UNAVAILABLE_DETECTORS:
        raise ValueError(f'--detector {name}: {UNAVAILABLE_DETECTORS[name]}')
    if name == 'blazepose':
        return BlazePoseBoxes(score_threshold)
    if name == 'hog':
        return HogDetector() if score_threshold is None else HogDetector(score_threshold=score_threshold)
    if name in ('yolo', 'yolov8'):
        if weights is None:
            raise ValueError(f'--detector {name} needs its weights file (--detector_weights; the demo\'s default is '
                             'data/pretrained_model/yolov8n.pt, core.path_config.YOLO_WEIGHTS)')
        return YoloDetector(weights, device=device,
                            **({} if score_threshold is None else {'score_threshold': score_threshold}))
    raise ValueError(f'unknown detector {name!r}; choose one of {DETECTORS}')


def full_image_box(width: int, height: int) -> np.ndarray:
    """The original image demo's crop: the whole image as a square box ``[cx, cy, s, s]`` with s=max(W, H)."""
    size = float(max(width, height))
    return np.array([width // 2, height // 2, size, size], dtype=np.float32)


def load_anno_file(path: str | os.PathLike, width: int, height: int) -> dict[int, dict[str, np.ndarray]]:
    """Read tracks from the original's ``--anno_file`` JSON.

    The file is a list of tracklets ``{"idx": id, "frames": [{"frame_id": f, "rect": {"tl": {"x", "y"},
    "br": {"x", "y"}}}, ...]}`` with coordinates normalised to [0, 1] by the image width and height.

    Args:
        path: JSON file.
        width, height: image size in pixels.

    Returns:
        {person_id: {'frames': (N,) int, 'bbox': (N, 4) square ``[cx, cy, s, s]`` px, s = max(w, h)}}.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the JSON does not have the expected structure.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'annotation file not found: {path}')
    try:
        data = json.loads(path.read_text())
        tracks = {}
        for tracklet in data:
            frames, boxes = [], []
            for item in tracklet['frames']:
                rect = item['rect']
                x1, y1 = float(rect['tl']['x']) * width, float(rect['tl']['y']) * height
                x2, y2 = float(rect['br']['x']) * width, float(rect['br']['y']) * height
                size = max(x2 - x1, y2 - y1)
                frames.append(int(item['frame_id']))
                boxes.append([(x1 + x2) / 2, (y1 + y2) / 2, size, size])
            if frames:
                order = np.argsort(frames)
                tracks[int(tracklet['idx'])] = {'frames': np.asarray(frames, dtype=np.int64)[order],
                                                'bbox': np.asarray(boxes, dtype=np.float32)[order]}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f'{path} is not an anno file of tracklets {{idx, frames: [{{frame_id, rect: {{tl, br}}}}]}}: '
                         f'{err!r}') from err
    return tracks
