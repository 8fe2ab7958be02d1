"""Inference API of the demo, separate from the command line: model loading and batched regression from
image + boxes to SMPL parameters, meshes and cameras. The result files are written by
`utils.export.results`.

Cameras (see docs/demo.md):
- ``pred_cam`` (N, 3) ``[s, tx, ty]``: the network's weak-perspective camera of the 224x224 crop; a body
  point X (metres) lands at ``s * (X_xy + [tx, ty])`` in crop coordinates normalised to [-1, 1].
- ``orig_cam`` (N, 4) ``[sx, sy, tx, ty]``: the same camera expressed for the full image (the original
  demo's `convert_crop_cam_to_orig_img`): normalised full-image coordinates are
  ``[sx * (X + tx), sy * (Y + ty)]``.
- ``cam_t`` (N, 3): translation in metres of the body in the full-image pinhole camera with focal
  length 5000 px and principal point at the image centre (OpenCV axes: x right, y down, z forward);
  ``verts + cam_t`` projected with that camera overlays the frame.

Typical use::

    predictor = PyMAFPredictor.from_checkpoint('data/pretrained_model/PyMAF_model_checkpoint.pt')
    people = predictor.predict_image(frame_rgb, boxes_cxcywh)                 # one image
    results = predictor.predict_video(frames, boxes_by_frame, stages=[...])   # a clip, crops batched

Per-frame stages (`FrameStage`) run on each frame's people right after regression, before the results are
stacked per person, saved and rendered: a stage that refines or adds fields (keypoints, a fit of the body
model) is a function added to the ``stages`` list, in the video pipeline and in live mode alike.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from core.constants import FOCAL_LENGTH, IMG_RES
from datasets.inference import crop_person
from utils.saver import CheckpointError, load_checkpoint, read_checkpoint

logger = logging.getLogger(__name__)

# A checkpoint that does not hold PyMAF weights for this model (the one loader's error type).
CheckpointMismatchError = CheckpointError

# A per-frame step after regression: ``stage(frame_rgb, frame_index, people) -> people``. ``frame_rgb`` is the
# (H, W, 3) uint8 frame; ``people`` holds that frame's N people as `PyMAFPredictor.predict_image` returns them
# (every field N rows). A stage returns the people with fields changed or added (N rows each).
FrameStage = Callable[[np.ndarray, int, dict], dict]


def find_checkpoint(checkpoint: str | os.PathLike | None, default: str | os.PathLike,
                    demo_weights_dir: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The weights to load and a description of where they come from.

    Order: ``checkpoint`` when given; else ``default`` (the released checkpoint's place) when it exists; else
    the first ``*.pt`` in ``demo_weights_dir``; else None (untrained weights, described as such).

    Raises:
        FileNotFoundError: ``checkpoint`` was given but does not exist.
    """
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f'checkpoint not found: {path}')
        return path, f'checkpoint {path}'
    default = Path(default)
    if default.is_file():
        return default, f'checkpoint {default}'
    demo_dir = Path(demo_weights_dir) if demo_weights_dir is not None else None
    demo = sorted(demo_dir.glob('*.pt')) if demo_dir is not None and demo_dir.is_dir() else []
    if demo:
        return demo[0], f'demo weights {demo[0]} (not the released PyMAF model)'
    return None, (f'UNTRAINED weights (no checkpoint at {default}; get PyMAF_model_checkpoint.pt from the '
                  f'original release and put it there, or pass --checkpoint): meshes are not meaningful')


def weights_note(checkpoint_data: dict | None, weights_desc: str) -> str:
    """One line saying which weights and which body model a predictor built from ``checkpoint_data`` uses."""
    from models.build import checkpoint_body_model

    body = checkpoint_body_model(checkpoint_data)
    if checkpoint_data is not None and checkpoint_data.get('description'):
        return f'NOTE: {weights_desc}: {checkpoint_data["description"]}'
    if body is None:
        return f'weights and body model: {weights_desc}'
    if body.is_standin:
        return ('NOTE: using the stand-in body model (no SMPL files found under data/smpl) with '
                f'{weights_desc}; see the README for the licensed SMPL files and the released checkpoint.')
    if checkpoint_data is None:
        return f'NOTE: using {weights_desc}.'
    return f'weights: {weights_desc}'


def resolve_device(name: str | None) -> torch.device:
    """'auto'/None -> cuda when available else cpu; otherwise the named device (checked to exist)."""
    if name in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {name}: CUDA is not available on this machine; use --device cpu')
    return device


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a checkpoint into ``model`` strictly, as the original (its SMPL arrays replace the model's).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointMismatchError: not a checkpoint, or its keys/shapes differ (all differences listed).
    """
    load_checkpoint(model, path, strict=True)


def crop_to_image_px(points_crop: np.ndarray, bboxes: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Map points from normalised [-1, 1] crop coordinates to full-image pixels.

    Args:
        points_crop: (N, K, 2) points in the crop.
        bboxes: (N, 4) ``[cx, cy, w, h]`` px boxes the crops were made from.
        scale: the bbox scale of the crops.

    Returns:
        (N, K, 2) pixel coordinates.
    """
    side = np.maximum(bboxes[:, 2], bboxes[:, 3]) * scale
    return bboxes[:, None, :2] + points_crop * (side[:, None, None] / 2.0)


def full_image_cameras(pred_cam: np.ndarray, bboxes: np.ndarray, img_width: int, img_height: int,
                       scale: float = 1.0, focal_length: float = FOCAL_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Full-image cameras from crop cameras.

    Args:
        pred_cam: (N, 3) crop cameras ``[s, tx, ty]``.
        bboxes: (N, 4) ``[cx, cy, w, h]`` px boxes.
        img_width, img_height: frame size in pixels.
        scale: the bbox scale used for the crops (the window side is max(w, h) * scale).
        focal_length: focal length in pixels of the full-image camera.

    Returns:
        ``(orig_cam (N, 4) [sx, sy, tx, ty], cam_t (N, 3) metres)``.
    """
    from utils.geometry import convert_crop_cam_to_orig_img, crop_cam_to_full_cam_t

    side = np.maximum(bboxes[:, 2], bboxes[:, 3]) * scale
    window = np.stack([bboxes[:, 0], bboxes[:, 1], side, side], axis=1)
    cam = torch.as_tensor(pred_cam, dtype=torch.float32)
    orig_cam = convert_crop_cam_to_orig_img(cam, torch.as_tensor(window, dtype=torch.float32), img_width, img_height)
    cam_t = crop_cam_to_full_cam_t(cam, torch.as_tensor(window[:, :2], dtype=torch.float32),
                                   torch.as_tensor(side, dtype=torch.float32), img_width, img_height,
                                   focal_length)
    return np.asarray(orig_cam, dtype=np.float32), np.asarray(cam_t, dtype=np.float32)


class PyMAFPredictor:
    """Batched PyMAF regression on person crops.

    Args:
        model: a PyMAF network (see `models.pymaf_net`); it is put in eval mode on ``device``.
        device: torch device.
        batch_size: crops per forward pass.
        bbox_scale: window side = box size * bbox_scale (the original demo uses 1.0).
        backend, precision: the inference engine (`core.inference.backends.make_backend`): 'torch' or 'onnx'
            (or 'auto'), 'fp32' or 'bf16' (or 'auto'); see docs/speed.md.
        checkpoint: the file the weights came from (where the ONNX backend caches its export).
        background: build the backend in a background thread (`core.inference.backends.make_backend_async`):
            the constructor returns at once and the first regression waits for it, so a first ONNX export
            overlaps the caller's other work. The options are still checked at once.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = 'cpu', batch_size: int = 8,
                 bbox_scale: float = 1.0, backend: str = 'torch', precision: str = 'fp32',
                 checkpoint: str | os.PathLike | None = None, background: bool = False) -> None:
        from core.inference.backends import make_backend, make_backend_async

        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.bbox_scale = float(bbox_scale)
        build = make_backend_async if background else make_backend
        self._backend = build(self.model, self.device, backend, precision, checkpoint=checkpoint)

    @property
    def backend(self):
        """The inference backend (`core.inference.backends`); waits for a background build to finish."""
        if isinstance(self._backend, concurrent.futures.Future):
            self._backend = self._backend.result()
        return self._backend

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | None, device: str | torch.device = 'cpu',
                        checkpoint_data: dict | None = None, cfg_file: str | None = None,
                        misc: list[str] | None = None, **kwargs) -> PyMAFPredictor:
        """Build the network ``checkpoint`` was trained as and load it (None keeps untrained weights).

        See `models.build.build_from_checkpoint`: the released checkpoint needs no SMPL files, train.py's
        checkpoints carry their config, compact weights name their body model. ``checkpoint_data`` is the
        file already read with `utils.saver.read_checkpoint` (read once). ``kwargs`` go to the constructor.
        """
        from models.build import build_from_checkpoint

        if checkpoint is not None and checkpoint_data is None:
            checkpoint_data = read_checkpoint(checkpoint)
        model = build_from_checkpoint(checkpoint_data, checkpoint, cfg_file=cfg_file, misc=misc)
        return cls(model, device, checkpoint=checkpoint, **kwargs)

    @property
    def body_model(self) -> torch.nn.Module | None:
        """The SMPL layer of the network's regressor (None for networks without PyMAF's regressor)."""
        regressor = getattr(self.model, 'regressor', None)
        return regressor[0].smpl if regressor is not None else None

    def predict_crops(self, norm_imgs: torch.Tensor) -> dict[str, np.ndarray]:
        """Regress normalised crops with the predictor's backend (`core.inference.backends`).

        Args:
            norm_imgs: (B, 3, 224, 224) ImageNet-normalised RGB crops.

        Returns:
            Numpy arrays of the final iteration: ``pred_cam`` (B, 3), ``betas`` (B, 10), ``pose`` (B, 72)
            axis-angle radians (global orientation first), ``verts`` (B, 6890, 3) metres,
            ``joints3d`` (B, 49, 3) metres, ``kp_2d`` (B, 49, 2) in [-1, 1] crop coordinates.
        """
        outputs = []
        for start in range(0, len(norm_imgs), self.batch_size):
            final = self.backend(norm_imgs[start:start + self.batch_size])
            theta = final['theta']
            outputs.append({
                'pred_cam': theta[:, :3], 'betas': theta[:, 3:13], 'pose': theta[:, 13:85],
                'verts': final['verts'], 'joints3d': final['kp_3d'], 'kp_2d': final['kp_2d'],
            })
        if not outputs:
            return {k: np.zeros((0,) + s, np.float32) for k, s in (
                ('pred_cam', (3,)), ('betas', (10,)), ('pose', (72,)), ('verts', (6890, 3)),
                ('joints3d', (49, 3)), ('kp_2d', (49, 2)))}
        return {k: torch.cat([o[k] for o in outputs]).float().cpu().numpy() for k in outputs[0]}

    def predict_image(self, frame_rgb: np.ndarray, bboxes: np.ndarray) -> dict[str, np.ndarray]:
        """Reconstruct every boxed person in one image.

        Args:
            frame_rgb: (H, W, 3) uint8 RGB image.
            bboxes: (N, 4) ``[cx, cy, w, h]`` boxes in pixels (e.g. from `utils.video.tracking.xyxy_to_square`).

        Returns:
            `predict_crops`'s fields plus ``bboxes`` (N, 4), ``orig_cam`` (N, 4), ``cam_t`` (N, 3) and
            ``kp2d_px`` (N, 49, 2) keypoints in image pixels.
        """
        bboxes = np.asarray(bboxes).reshape(-1, 4)  # cropped at the given precision; returned as float32
        crops = [crop_person(frame_rgb, box, self.bbox_scale)[0] for box in bboxes]
        norm = torch.stack(crops) if crops else torch.zeros(0, 3, IMG_RES, IMG_RES)
        result = self.predict_crops(norm)
        return self.add_image_cameras(result, bboxes, frame_rgb.shape[1], frame_rgb.shape[0])

    def predict_video(self, frames: Iterable[tuple[int, np.ndarray]],
                      boxes_by_frame: dict[int, Sequence[tuple[int, np.ndarray]]],
                      stages: Sequence[FrameStage] = (), progress: Callable[[int], None] | None = None
                      ) -> dict[int, dict[str, np.ndarray | None]]:
        """Reconstruct tracked people over a clip, streaming its frames once.

        Crops of consecutive frames share forward passes of ``batch_size`` crops. As soon as all people
        of a frame are regressed, ``stages`` run on them in order (see `FrameStage`).

        Args:
            frames: ``(frame_index, frame_rgb)`` pairs in order; frame_rgb (H, W, 3) uint8.
            boxes_by_frame: ``{frame_index: [(person_id, box [cx, cy, w, h] px), ...]}``; frames without
                an entry have nobody to reconstruct.
            stages: per-frame steps after regression.
            progress: called with the number of crops after each forward pass.

        Returns:
            ``{person_id: entry}`` as in output.pkl (`person_results`), people without frames left out.
        """
        rows: dict[int, list[dict]] = {}
        batcher = CropBatcher(self, progress)

        def keep(done: list[FrameResult]) -> None:
            for index, frame, ids, people in done:
                if not ids:
                    continue
                for stage in stages:
                    people = stage(frame, index, people)
                add_rows(rows, index, ids, people)

        for index, frame in frames:
            if boxes_by_frame.get(index):
                keep(batcher.add(index, frame, boxes_by_frame[index]))
        keep(batcher.flush())
        return person_results(rows)

    @torch.no_grad()
    def repose_rows(self, rows: dict[str, np.ndarray], image_sizes: np.ndarray,
                    body_model: torch.nn.Module | None = None) -> None:
        """Recompute ``verts``, ``joints3d`` and the image cameras (``orig_cam``, ``cam_t``, ``kp2d_px``) of N
        rows of any people and frames from their ``pose`` (N, 72), ``betas`` and ``pred_cam`` after these
        were changed (keypoint fitting, smoothing), in place.

        Args:
            rows: the rows (`predict_image`'s fields, N rows each).
            image_sizes: (N, 2) ``(width, height)`` px of each row's image.
            body_model: the SMPL layer to pose (default: the network's `body_model`).
        """
        from utils.geometry import projection

        if not len(rows['pose']):
            return
        smpl = body_model if body_model is not None else self.body_model
        pose = torch.as_tensor(rows['pose'], device=self.device)
        out = smpl(betas=torch.as_tensor(rows['betas'], device=self.device), body_pose=pose[:, 3:],
                   global_orient=pose[:, :3], pose2rot=True)
        rows['verts'] = out.vertices.float().cpu().numpy()
        rows['joints3d'] = out.joints.float().cpu().numpy()
        kp_2d = projection(out.joints.float(), torch.as_tensor(rows['pred_cam'], device=self.device)).cpu().numpy()
        for size in np.unique(image_sizes, axis=0):
            same = (image_sizes == size).all(axis=1)
            part = {'pred_cam': rows['pred_cam'][same], 'kp_2d': kp_2d[same]}
            self.add_image_cameras(part, rows['bboxes'][same], int(size[0]), int(size[1]))
            for key in ('orig_cam', 'cam_t', 'kp2d_px'):
                rows[key][same] = part[key]

    def add_image_cameras(self, result: dict[str, np.ndarray], bboxes: np.ndarray, img_width: int,
                          img_height: int) -> dict[str, np.ndarray]:
        """Add ``bboxes``, ``orig_cam``, ``cam_t`` and ``kp2d_px`` to a `predict_crops` result (in place)."""
        result['bboxes'] = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        if len(result['bboxes']):
            result['orig_cam'], result['cam_t'] = full_image_cameras(
                result['pred_cam'], result['bboxes'], img_width, img_height, self.bbox_scale)
        else:
            result['orig_cam'], result['cam_t'] = np.zeros((0, 4), np.float32), np.zeros((0, 3), np.float32)
        result['kp2d_px'] = crop_to_image_px(result['kp_2d'], result['bboxes'], self.bbox_scale).astype(np.float32)
        return result


def find_body_model(model: torch.nn.Module) -> torch.nn.Module:
    """The SMPL module inside ``model`` (for re-posing fitted or smoothed parameters).

    Raises:
        ValueError: the model holds no SMPL module.
    """
    for module in model.modules():
        if type(module).__name__ == 'SMPL':
            return module
    raise ValueError('the model holds no SMPL module to pose (needed by --smooth and --refine)')


# One frame's regressed people: (frame index, (H, W, 3) uint8 frame, person ids, `PyMAFPredictor.predict_image`'s
# fields with one row per id).
FrameResult = tuple[int, np.ndarray, list[int], dict[str, np.ndarray]]


class CropBatcher:
    """Regression of a clip's people fed frame by frame: crops of consecutive frames share forward passes of
    the predictor's ``batch_size``; each frame comes back, in order, once all its people are regressed.

    Args:
        predictor: the predictor whose backend, crop window and batch size are used.
        progress: called with the number of crops after each forward pass.
    """

    def __init__(self, predictor: PyMAFPredictor, progress: Callable[[int], None] | None = None) -> None:
        self.predictor, self.progress = predictor, progress
        self.crops: list[torch.Tensor] = []
        self.waiting: list[dict] = []      # frames in order: index, frame, ids, boxes, rows regressed so far

    def add(self, index: int, frame: np.ndarray, people: Sequence[tuple[int, np.ndarray]]) -> list[FrameResult]:
        """Queue one frame's ``(person id, box [cx, cy, w, h] px)`` people (possibly none); returns the frames
        finished by the forward passes this made."""
        boxes = np.asarray([box for _, box in people], np.float32).reshape(-1, 4)
        self.waiting.append({'index': index, 'frame': frame, 'ids': [pid for pid, _ in people], 'boxes': boxes,
                             'rows': []})
        done = []
        for box in boxes:
            self.crops.append(crop_person(frame, box, self.predictor.bbox_scale)[0])
            if len(self.crops) >= self.predictor.batch_size:
                done += self._run()
        return done + self._finished()

    def flush(self) -> list[FrameResult]:
        """Regress what is queued; returns every frame still waiting."""
        return self._run() + self._finished()

    def _run(self) -> list[FrameResult]:
        if not self.crops:
            return []
        out = self.predictor.predict_crops(torch.stack(self.crops))
        k = 0
        for state in self.waiting:
            while len(state['rows']) < len(state['ids']) and k < len(self.crops):
                state['rows'].append({key: val[k:k + 1] for key, val in out.items()})
                k += 1
        if self.progress is not None:
            self.progress(len(self.crops))
        self.crops = []
        return self._finished()

    def _finished(self) -> list[FrameResult]:
        done = []
        while self.waiting and len(self.waiting[0]['rows']) == len(self.waiting[0]['ids']):
            state = self.waiting.pop(0)
            if state['rows']:
                people = {key: np.concatenate([r[key] for r in state['rows']]) for key in state['rows'][0]}
            else:
                people = self.predictor.predict_crops(torch.zeros(0, 3, IMG_RES, IMG_RES))
            frame = state['frame']
            self.predictor.add_image_cameras(people, state['boxes'], frame.shape[1], frame.shape[0])
            done.append((state['index'], frame, state['ids'], people))
        return done


def person_result(rows: dict[str, np.ndarray], frame_ids: np.ndarray) -> dict[str, np.ndarray | None]:
    """One person's entry of output.pkl from stacked per-frame predictions (fields:
    `utils.export.results.OUTPUT_FIELDS` plus ``cam_t`` and ``kp2d_px``); fields that per-frame stages added
    follow them. The crop-space ``kp_2d`` is left out, as in the original's file."""
    entry = {
        'pred_cam': rows['pred_cam'], 'orig_cam': rows['orig_cam'], 'verts': rows['verts'],
        'pose': rows['pose'], 'betas': rows['betas'], 'joints3d': rows['joints3d'], 'joints2d': None,
        'bboxes': rows['bboxes'], 'frame_ids': np.asarray(frame_ids, dtype=np.int64),
        'cam_t': rows['cam_t'], 'kp2d_px': rows['kp2d_px'],
    }
    entry.update({key: value for key, value in rows.items() if key not in entry and key != 'kp_2d'})
    return entry


def add_rows(rows: dict[int, list[dict]], index: int, ids: Sequence[int], people: dict[str, np.ndarray]) -> None:
    """Append frame ``index``'s people (fields with one row per id) to ``rows``, the per-person lists of one-row
    dicts with their ``'frame'`` that `person_results` stacks."""
    for k, pid in enumerate(ids):
        row = {key: val[k:k + 1] for key, val in people.items()}
        row['frame'] = index
        rows.setdefault(pid, []).append(row)


def person_results(rows: dict[int, list[dict[str, np.ndarray]]]) -> dict[int, dict[str, np.ndarray | None]]:
    """output.pkl's ``{person_id: entry}`` from per-person lists of one-frame `predict_crops` rows, each with
    its ``'frame'`` index; people without rows are left out."""
    results = {}
    for pid, person_rows in rows.items():
        if person_rows:
            stacked = {k: np.concatenate([r[k] for r in person_rows]) for k in person_rows[0] if k != 'frame'}
            results[pid] = person_result(stacked, np.array([r['frame'] for r in person_rows]))
    return results
