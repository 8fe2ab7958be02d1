"""Temporal smoothing of a clip's results: the One-Euro filter (`utils.video.smoothing`) on each person's
pose, shape and crop camera per run of consecutive frames, then meshes, joints and full-image cameras
recomputed from the smoothed values with the predictor's body model.
"""
from __future__ import annotations

import numpy as np
import torch

from core.inference.predictor import PyMAFPredictor
from utils.video.smoothing import smooth_track


def find_body_model(model: torch.nn.Module) -> torch.nn.Module:
    """The SMPL module inside ``model`` (for re-posing smoothed parameters).

    Raises:
        ValueError: the model holds no SMPL module.
    """
    for module in model.modules():
        if type(module).__name__ == 'SMPL':
            return module
    raise ValueError('the model holds no SMPL module to pose (needed by --smooth and --refine)')


def smooth_results(results: dict[int, dict], predictor: PyMAFPredictor, fps: float,
                   sizes: dict[int, tuple[int, int]], min_cutoff: float, beta: float) -> None:
    """Smooth every person of ``results`` (output.pkl's ``{person_id: entry}``) in place.

    Args:
        results: the clip's results; ``pose``, ``betas``, ``pred_cam``, ``verts``, ``joints3d``,
            ``orig_cam``, ``cam_t`` and ``kp2d_px`` are replaced.
        predictor: the predictor that made them (its body model and camera conversion are used).
        fps: frames per second of the clip.
        sizes: ``{frame_index: (width, height)}`` in pixels.
        min_cutoff: One-Euro minimum cut-off frequency, Hz.
        beta: One-Euro speed coefficient.
    """
    smpl = find_body_model(predictor.model)
    for res in results.values():
        frames = res['frame_ids']
        breaks = np.nonzero(np.diff(frames) != 1)[0] + 1
        for run in np.split(np.arange(len(frames)), breaks):
            if len(run) < 2:
                continue
            res['pose'][run], res['betas'][run], res['pred_cam'][run] = smooth_track(
                res['pose'][run], res['betas'][run], res['pred_cam'][run], fps, min_cutoff, beta)
    predictor.repose(results, sizes, smpl)
