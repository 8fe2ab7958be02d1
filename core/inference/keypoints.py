"""The demo's person-keypoint stages: finding and following people with BlazePose, keeping their 2D and 3D
landmarks beside the meshes, and refining the regressed bodies to fit them.

- `pose_square_box`: a person's square crop box from their landmarks.
- `keypoint_rows`, `attach_keypoints`: ``keypoints_2d`` / ``keypoints_3d`` beside the meshes, per row or per
  person's results.
- `refine_rows`: keypoint fitting (`core.fitting`) of any rows with keypoints (the caller then recomputes
  meshes and cameras with `core.inference.predictor.PyMAFPredictor.repose_rows`).
- `OnlinePeople`: the same finding and following for live mode, one frame at a time.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from core.fitting import FitWeights, fit_keypoints
from utils.video.blazepose import NUM_LANDMARKS, PoseLandmarks
from utils.video.people import PeopleFinder, PeopleTracker

logger = logging.getLogger(__name__)


def pose_square_box(pose: PoseLandmarks) -> np.ndarray:
    """Square crop box ``[cx, cy, s, s]`` (pixels) around a person's landmarks."""
    x1, y1, x2, y2 = pose.box()
    size = max(x2 - x1, y2 - y1)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, size, size], dtype=np.float32)


def keypoint_rows(poses: list[PoseLandmarks | None]) -> tuple[np.ndarray, np.ndarray]:
    """``keypoints_2d`` (N, 33, 3) ``[x px, y px, visibility]`` and ``keypoints_3d`` (N, 33, 3) metres (BlazePose
    world landmarks: origin at the mid-hip, camera axes) of N rows; a None row (a person not seen in that
    frame: a gap bridged by the tracker) holds NaN coordinates and visibility 0."""
    kp2d = np.full((len(poses), NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    kp3d = np.full((len(poses), NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    kp2d[..., 2] = 0.0
    for k, pose in enumerate(poses):
        if pose is not None:
            kp2d[k, :, :2] = pose.image[:, :2]
            kp2d[k, :, 2] = pose.visibility
            kp3d[k] = pose.world
    return kp2d, kp3d


def attach_keypoints(results: dict[int, dict], landmarks: dict[int, dict[int, PoseLandmarks]]) -> None:
    """Add each person's landmarks to its results (in place), one row per result frame (`keypoint_rows`)."""
    for pid, res in results.items():
        seen = landmarks.get(pid, {})
        res['keypoints_2d'], res['keypoints_3d'] = keypoint_rows([seen.get(int(f)) for f in res['frame_ids']])


# The fields `refine_rows` reads.
FIT_FIELDS = ('pose', 'betas', 'pred_cam', 'bboxes', 'keypoints_2d', 'keypoints_3d')


def refine_rows(rows: dict[str, np.ndarray], smpl: torch.nn.Module, bbox_scale: float = 1.0,
                weights: FitWeights | None = None, device: str | torch.device = 'cpu') -> dict[str, float]:
    """Fit N rows of any people and frames (`FIT_FIELDS`, N rows each) to their keypoints (`keypoint_rows`):
    replaces ``pose``, ``betas`` and ``pred_cam`` (rows without keypoints keep theirs) and returns the fit's
    statistics (`core.fitting.fit_keypoints`). Each row is fitted on its own, so the rows may be fitted in
    any grouping with the same result."""
    if not len(rows['pose']):
        return {'fitted': 0.0, 'error_before': 0.0, 'error_after': 0.0}
    has = rows['keypoints_2d'][:, :, 2].max(axis=1) > 0
    side = rows['bboxes'][:, 2:4].max(axis=1) * bbox_scale
    kp_crop = (np.nan_to_num(rows['keypoints_2d'][..., :2]) - rows['bboxes'][:, None, :2]) / (side[:, None, None] / 2)
    rows['pose'], rows['betas'], rows['pred_cam'], stats = fit_keypoints(
        smpl, rows['pose'], rows['betas'], rows['pred_cam'], kp_crop.astype(np.float32),
        rows['keypoints_2d'][..., 2], np.nan_to_num(rows['keypoints_3d']), has_keypoints=has, weights=weights,
        device=device)
    return stats


class OnlinePeople:
    """Live mode's people: ``(frame_index, frame_rgb) -> [(person_id, box [cx, cy, s, s])]``, one frame at a
    time (`utils.video.people.PeopleTracker`); the landmarks of every frame are kept in ``landmarks``
    (``{pid: {frame: PoseLandmarks}}``, for `attach_keypoints`).

    Args:
        finder: the people finder.
        search_every, max_gap: see `utils.video.people.PeopleTracker`.
    """

    tracks_people = True  # `core.inference.live.run_live` calls it per frame instead of tracking its boxes

    def __init__(self, finder: PeopleFinder, search_every: int = 10, max_gap: int = 15) -> None:
        self.tracker = PeopleTracker(finder, search_every=search_every, max_gap=max_gap, keep_history=False)
        self.landmarks: dict[int, dict[int, PoseLandmarks]] = {}

    def __call__(self, index: int, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        people = []
        for pid, pose in self.tracker.update(index, frame):
            self.landmarks.setdefault(pid, {})[index] = dataclasses.replace(pose, mask=None)  # masks are large
            people.append((pid, pose_square_box(pose)))
        return people
