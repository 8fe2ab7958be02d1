"""Conversions between DensePose IUV images and the per-part maps the DensePose head predicts.

An IUV image (B, 3, H, W) holds part id / 24 (0 = background), U and V. The per-part form has a
25-channel one-hot part index (channel 0 = background), a 15-channel coarse segmentation ("Ann") that
merges left/right halves of the same limb segment as the original does, and U and V maps with one
channel per part (zero outside the part).
"""
from __future__ import annotations

import torch

NUM_PARTS = 24

# The 15 coarse segments of the "Ann" map, as groups of the 25 part indices (0 = background).
ANN_PART_GROUPS = (
    (0,), (1, 2), (3,), (4,), (5,), (6,), (7, 9), (8, 10), (11, 13), (12, 14), (15, 17), (16, 18),
    (19, 21), (20, 22), (23, 24),
)


def _ann_matrix(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(15, 25) 0/1 matrix mapping the part one-hot to the coarse one-hot."""
    mat = torch.zeros(len(ANN_PART_GROUPS), NUM_PARTS + 1, device=device, dtype=dtype)
    for ann_id, parts in enumerate(ANN_PART_GROUPS):
        mat[ann_id, list(parts)] = 1
    return mat


def iuv_img2map(
    iuv: torch.Tensor, n_part: int = NUM_PARTS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split IUV images into per-part maps (the DensePose head's training targets).

    Args:
        iuv: (B, 3, H, W) IUV images in [0, 1] (channel 0 = part id / n_part).
        n_part: number of body parts (24).

    Returns:
        ``(index, ann, u, v)``: index (B, n_part + 1, H, W) one-hot of part = round(I * n_part);
        ann (B, 15, H, W) one-hot coarse segmentation; u and v (B, n_part + 1, H, W) with the U (V) value
        in the channel of the pixel's part and 0 elsewhere. All float, same dtype as ``iuv``.
    """
    if iuv.dim() != 4 or iuv.shape[1] != 3:
        raise ValueError(f'iuv must be (B, 3, H, W), got {tuple(iuv.shape)}')
    if n_part != NUM_PARTS:
        raise ValueError(f'the coarse part groups are defined for {NUM_PARTS} parts, got n_part={n_part}')
    part = torch.round(iuv[:, 0] * n_part).long().clamp(0, n_part)
    index = torch.nn.functional.one_hot(part, n_part + 1).permute(0, 3, 1, 2).to(iuv.dtype)
    ann = torch.einsum('ap,bphw->bahw', _ann_matrix(iuv.device, iuv.dtype), index)
    u = index * iuv[:, 1:2]
    v = index * iuv[:, 2:3]
    return index, ann, u, v


def iuv_map2img(
    u_uv: torch.Tensor,
    v_uv: torch.Tensor,
    index_uv: torch.Tensor,
    ann_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn per-part maps (predicted scores or one-hot targets) back into IUV images, for visualisation.

    The part at each pixel is the argmax of ``index_uv``; where the argmax of ``ann_index`` is background
    the part becomes background. U and V are read from the chosen part's channel (the background channel
    at background pixels).

    Args:
        u_uv: (B, K, H, W) U per part (K = 25 including background).
        v_uv: (B, K, H, W) V per part.
        index_uv: (B, K, H, W) part scores or one-hot.
        ann_index: optional (B, 15, H, W) coarse segmentation scores or one-hot.

    Returns:
        (B, 3, H, W) IUV image: part / (K - 1), U, V.
    """
    if not (u_uv.shape == v_uv.shape == index_uv.shape) or index_uv.dim() != 4:
        raise ValueError(f'u_uv, v_uv and index_uv must share one (B, K, H, W) shape, got '
                         f'{tuple(u_uv.shape)}, {tuple(v_uv.shape)}, {tuple(index_uv.shape)}')
    num_channels = index_uv.shape[1]
    part = torch.argmax(index_uv, dim=1)
    if ann_index is not None:
        part = part * (torch.argmax(ann_index, dim=1) > 0).long()
    u = torch.gather(u_uv, 1, part[:, None]).squeeze(1)
    v = torch.gather(v_uv, 1, part[:, None]).squeeze(1)
    return torch.stack([part.to(u_uv.dtype) / float(num_channels - 1), u, v], dim=1)
