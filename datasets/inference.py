"""Person crops for inference, with the original demo's crop convention.

The demo (unlike training, which uses `utils.imutils.crop`) crops each person with one affine warp: the
square window of side ``bbox_size * scale`` centred on the box centre is mapped onto the 224x224 crop
(cv2.warpAffine, bilinear, black outside the image), then the RGB values are divided by 255 and
normalised with the ImageNet mean and standard deviation. With this convention a pixel ``(u, v)`` of
the crop (pixel centres at integer coordinates) comes from ``center + (u - 112, v - 112) * side / 224``
in the frame.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core.constants import IMG_NORM_MEAN, IMG_NORM_STD, IMG_RES


def crop_affine(center: Sequence[float], side: float, crop_size: int = IMG_RES) -> np.ndarray:
    """The (2, 3) affine matrix taking frame pixels to crop pixels.

    Args:
        center: (2,) window centre in frame pixels.
        side: window side in frame pixels (bbox size times the bbox scale).
        crop_size: output side in pixels.
    """
    if side <= 0:
        raise ValueError(f'crop window side must be positive, got {side}')
    k = crop_size / float(side)
    half = crop_size / 2.0
    return np.array([[k, 0.0, half - k * center[0]], [0.0, k, half - k * center[1]]], dtype=np.float64)


def crop_person(frame_rgb: np.ndarray, bbox: Sequence[float], scale: float = 1.0,
                crop_size: int = IMG_RES) -> tuple[torch.Tensor, np.ndarray]:
    """Crop and normalise one person.

    Args:
        frame_rgb: (H, W, 3) uint8 RGB frame.
        bbox: ``[cx, cy, w, h]`` in pixels (square boxes have w = h); the window side is max(w, h) * scale.
        scale: bbox scale (the original demo uses 1.0).
        crop_size: output side in pixels.

    Returns:
        ``(norm_img (3, crop_size, crop_size) float32, raw_crop (crop_size, crop_size, 3) uint8)``.
    """
    import cv2

    side = max(float(bbox[2]), float(bbox[3])) * scale
    trans = crop_affine(bbox[:2], side, crop_size)
    raw = cv2.warpAffine(frame_rgb, trans, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return normalize_crop(raw), raw


def normalize_crop(raw_crop: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32 tensor: /255, then ImageNet mean/std."""
    img = torch.from_numpy(np.ascontiguousarray(raw_crop)).permute(2, 0, 1).to(torch.float32) / 255.0
    mean = torch.tensor(IMG_NORM_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMG_NORM_STD, dtype=torch.float32)[:, None, None]
    return (img - mean) / std


class CropDataset(Dataset):
    """One person's (or several people's) crops over frames held in memory.

    Args:
        frames: frames indexed by frame id: a sequence or a mapping {frame_id: (H, W, 3) uint8 RGB}.
        bboxes: (N, 4) ``[cx, cy, w, h]`` px, one per item.
        frame_ids: (N,) frame id of each item.
        scale: bbox scale.

    Items are dicts ``{'img': (3, 224, 224) float32, 'bbox': (4,) float32, 'frame_id': int}``.
    """

    def __init__(self, frames: Sequence[np.ndarray] | Mapping[int, np.ndarray], bboxes: np.ndarray,
                 frame_ids: Sequence[int], scale: float = 1.0) -> None:
        self.frames = frames
        self.bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        self.frame_ids = np.asarray(frame_ids, dtype=np.int64).reshape(-1)
        if len(self.bboxes) != len(self.frame_ids):
            raise ValueError(f'{len(self.bboxes)} boxes but {len(self.frame_ids)} frame ids')
        self.scale = float(scale)

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __getitem__(self, idx: int) -> dict:
        frame_id = int(self.frame_ids[idx])
        norm_img, _ = crop_person(self.frames[frame_id], self.bboxes[idx], self.scale)
        return {'img': norm_img, 'bbox': torch.from_numpy(self.bboxes[idx].copy()), 'frame_id': frame_id}
