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
    result = predictor.predict_image(frame_rgb, boxes_cxcywh)
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from core.constants import FOCAL_LENGTH, IMG_RES
from datasets.inference import crop_person
from models.pymaf_net import without_iuv
from utils.saver import CheckpointError, load_checkpoint, read_checkpoint

logger = logging.getLogger(__name__)

# A checkpoint that does not hold PyMAF weights for this model (the one loader's error type).
CheckpointMismatchError = CheckpointError


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
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = 'cpu', batch_size: int = 8,
                 bbox_scale: float = 1.0) -> None:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.bbox_scale = float(bbox_scale)
        self._forward_kwargs = without_iuv(model)  # the demo never reads the IUV maps

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | None, device: str | torch.device = 'cpu',
                        checkpoint_data: dict | None = None, cfg_file: str | None = None,
                        misc: list[str] | None = None, **kwargs) -> PyMAFPredictor:
        """Build the network ``checkpoint`` was trained as and load it (None keeps untrained weights).

        See `models.build.build_from_checkpoint`: the released checkpoint needs no SMPL files, train.py's
        checkpoints carry their config, compact weights name their body model. ``checkpoint_data`` is the
        file already read with `utils.saver.read_checkpoint` (read once).
        """
        from models.build import build_from_checkpoint

        if checkpoint is not None and checkpoint_data is None:
            checkpoint_data = read_checkpoint(checkpoint)
        model = build_from_checkpoint(checkpoint_data, checkpoint, cfg_file=cfg_file, misc=misc)
        return cls(model, device, **kwargs)

    @torch.no_grad()
    def predict_crops(self, norm_imgs: torch.Tensor) -> dict[str, np.ndarray]:
        """Regress normalised crops.

        Args:
            norm_imgs: (B, 3, 224, 224) ImageNet-normalised RGB crops.

        Returns:
            Numpy arrays of the final iteration: ``pred_cam`` (B, 3), ``betas`` (B, 10), ``pose`` (B, 72)
            axis-angle radians (global orientation first), ``verts`` (B, 6890, 3) metres,
            ``joints3d`` (B, 49, 3) metres, ``kp_2d`` (B, 49, 2) in [-1, 1] crop coordinates.
        """
        outputs = []
        for start in range(0, len(norm_imgs), self.batch_size):
            batch = norm_imgs[start:start + self.batch_size].to(self.device, non_blocking=True)
            preds, _ = self.model(batch, **self._forward_kwargs)
            final = preds['smpl_out'][-1]
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
        bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        crops = [crop_person(frame_rgb, box, self.bbox_scale)[0] for box in bboxes]
        norm = torch.stack(crops) if crops else torch.zeros(0, 3, IMG_RES, IMG_RES)
        result = self.predict_crops(norm)
        return self.add_image_cameras(result, bboxes, frame_rgb.shape[1], frame_rgb.shape[0])

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


def person_result(rows: dict[str, np.ndarray], frame_ids: np.ndarray) -> dict[str, np.ndarray | None]:
    """One person's entry of output.pkl from stacked per-frame predictions (see `utils.export.results.OUTPUT_FIELDS`)."""
    return {
        'pred_cam': rows['pred_cam'], 'orig_cam': rows['orig_cam'], 'verts': rows['verts'],
        'pose': rows['pose'], 'betas': rows['betas'], 'joints3d': rows['joints3d'], 'joints2d': None,
        'bboxes': rows['bboxes'], 'frame_ids': np.asarray(frame_ids, dtype=np.int64),
        'cam_t': rows['cam_t'], 'kp2d_px': rows['kp2d_px'],
    }


def person_results(rows: dict[int, list[dict[str, np.ndarray]]]) -> dict[int, dict[str, np.ndarray | None]]:
    """output.pkl's ``{person_id: entry}`` from per-person lists of one-frame `predict_crops` rows, each with
    its ``'frame'`` index; people without rows are left out."""
    results = {}
    for pid, person_rows in rows.items():
        if person_rows:
            stacked = {k: np.concatenate([r[k] for r in person_rows]) for k in person_rows[0] if k != 'frame'}
            results[pid] = person_result(stacked, np.array([r['frame'] for r in person_rows]))
    return results
