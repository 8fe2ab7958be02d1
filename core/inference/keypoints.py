"""The demo's person-keypoint stages: finding and following people with BlazePose, keeping their 2D and 3D
landmarks beside the meshes, and refining the regressed bodies to fit them.

- `track_people`: frames in; tracks of square crop boxes (the format the crop dataset reads) and the
  BlazePose landmarks of every tracked frame out (`utils.video.people`).
- `attach_keypoints`: adds ``keypoints_2d`` / ``keypoints_3d`` to each person's results.
- `refine_results`: keypoint fitting (`core.fitting`) over every person-frame with keypoints, in one batch
  (the caller then recomputes meshes and cameras with `core.inference.predictor.PyMAFPredictor.repose`).
- `OnlinePeople`: the same finding and following for live mode, one frame at a time.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch

from core.fitting import FitWeights, fit_keypoints
from utils.video.blazepose import NUM_LANDMARKS, PoseLandmarks
from utils.video.people import PeopleFinder, PeopleTracker
from utils.video.tracking import fill_gaps, smooth_boxes

logger = logging.getLogger(__name__)


def pose_square_box(pose: PoseLandmarks) -> np.ndarray:
    """Square crop box ``[cx, cy, s, s]`` (pixels) around a person's landmarks."""
    x1, y1, x2, y2 = pose.box()
    size = max(x2 - x1, y2 - y1)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, size, size], dtype=np.float32)


def track_people(frames: Iterable[tuple[int, np.ndarray]], finder: PeopleFinder, image_mode: bool,
                 search_every: int = 10, max_gap: int = 15, min_track_len: int = 1, smooth_sigma: float = 2.0,
                 ) -> tuple[dict[int, dict[str, np.ndarray]], dict[int, dict[int, PoseLandmarks]]]:
    """Find people in every frame (image mode: each frame on its own) or follow them through a video.

    Args:
        frames: (index, (H, W, 3) uint8 RGB frame) pairs in order.
        finder: the people finder.
        image_mode: every frame is an independent image (each person found is a one-frame track).
        search_every, max_gap: see `utils.video.people.PeopleTracker`; short gaps in a track get
            interpolated boxes (and no keypoints).
        min_track_len: tracks seen in fewer frames are dropped.
        smooth_sigma: Gaussian smoothing of the boxes over time, frames (0: off).

    Returns:
        tracks ``{pid: {'frames': (N,), 'bbox': (N, 4) [cx, cy, s, s]}}`` and the landmarks
        ``{pid: {frame: PoseLandmarks}}`` of the frames where the person was seen.
    """
    tracks, landmarks = {}, {}
    if image_mode:
        pid = 1
        for index, frame in frames:
            for pose in finder.find(frame):
                tracks[pid] = {'frames': np.array([index]), 'bbox': pose_square_box(pose)[None]}
                landmarks[pid] = {index: pose}
                pid += 1
        return tracks, landmarks
    tracker = PeopleTracker(finder, search_every=search_every, max_gap=max_gap)
    for index, frame in frames:
        tracker.update(index, frame)
    for track in tracker.tracks(min_len=min_track_len):
        seen = np.asarray(track.frames)
        boxes = np.stack([pose_square_box(p) for p in track.poses])
        filled_frames, filled_boxes = fill_gaps(seen, boxes, max_gap)
        tracks[track.track_id] = {'frames': filled_frames, 'bbox': smooth_boxes(filled_boxes, smooth_sigma)}
        landmarks[track.track_id] = dict(zip(track.frames, track.poses))
    return tracks, landmarks


def attach_keypoints(results: dict[int, dict], landmarks: dict[int, dict[int, PoseLandmarks]]) -> None:
    """Add each person's landmarks to its results (in place), one row per result frame:
    ``keypoints_2d`` (N, 33, 3) ``[x px, y px, visibility]`` and ``keypoints_3d`` (N, 33, 3) metres (BlazePose
    world landmarks: origin at the mid-hip, camera axes); NaN coordinates and visibility 0 where the person
    was not seen (a gap bridged by the tracker)."""
    for pid, res in results.items():
        frames = res['frame_ids']
        kp2d = np.full((len(frames), NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        kp3d = np.full((len(frames), NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        kp2d[..., 2] = 0.0
        for k, f in enumerate(frames):
            pose = landmarks.get(pid, {}).get(int(f))
            if pose is not None:
                kp2d[k, :, :2] = pose.image[:, :2]
                kp2d[k, :, 2] = pose.visibility
                kp3d[k] = pose.world
        res['keypoints_2d'], res['keypoints_3d'] = kp2d, kp3d


def refine_results(results: dict[int, dict], smpl: torch.nn.Module, bbox_scale: float = 1.0,
                   weights: FitWeights | None = None, device: str | torch.device = 'cpu') -> dict[str, float]:
    """Fit every person-frame that has keypoints (see `attach_keypoints`) to them, in one batched fit.

    Updates ``pose``, ``betas`` and ``pred_cam`` of those rows in place (the caller recomputes the meshes and
    cameras, e.g. with `core.inference.predictor.PyMAFPredictor.repose`). Returns the fit's statistics
    (`core.fitting.fit_keypoints`).
    """
    pids = [pid for pid, res in results.items() if 'keypoints_2d' in res]
    if not pids:
        return {'fitted': 0.0, 'error_before': 0.0, 'error_after': 0.0}
    cat = {key: np.concatenate([results[pid][key] for pid in pids]) for key in
           ('pose', 'betas', 'pred_cam', 'bboxes', 'keypoints_2d', 'keypoints_3d')}
    has = cat['keypoints_2d'][:, :, 2].max(axis=1) > 0
    side = cat['bboxes'][:, 2:4].max(axis=1) * bbox_scale
    kp_crop = (np.nan_to_num(cat['keypoints_2d'][..., :2]) - cat['bboxes'][:, None, :2]) / (side[:, None, None] / 2)
    pose, betas, cam, stats = fit_keypoints(
        smpl, cat['pose'], cat['betas'], cat['pred_cam'], kp_crop.astype(np.float32),
        cat['keypoints_2d'][..., 2], np.nan_to_num(cat['keypoints_3d']), has_keypoints=has, weights=weights,
        device=device)
    start = 0
    for pid in pids:
        n = len(results[pid]['pose'])
        results[pid]['pose'] = pose[start:start + n]
        results[pid]['betas'] = betas[start:start + n]
        results[pid]['pred_cam'] = cam[start:start + n]
        start += n
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
        self.tracker = PeopleTracker(finder, search_every=search_every, max_gap=max_gap)
        self.landmarks: dict[int, dict[int, PoseLandmarks]] = {}

    def __call__(self, index: int, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        people = []
        for pid, pose in self.tracker.update(index, frame):
            self.landmarks.setdefault(pid, {})[index] = pose
            people.append((pid, pose_square_box(pose)))
        return people
