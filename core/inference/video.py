"""The stages of the demo's streaming video pipeline (`core.inference.pipeline`), from frames to each frame's
final people. Each stage takes and gives `FrameWork` items in frame order:

1. people: who is where in each frame, as final crop boxes (``[cx, cy, s, s]`` px):
   - `TrackedPeopleStage`: BlazePose people followed through a video (`utils.video.people.PeopleTracker`),
     with their landmarks;
   - `FoundPeopleStage`: BlazePose people found in each frame on its own (image mode);
   - `DetectedPeopleStage`: a box detector (HOG, YOLO) in batches of frames, tracked (`utils.video.tracking`)
     or per image;
   - `GivenPeopleStage`: tracks given in advance (``--use_gt``).
   Tracks are post-processed (gaps filled, boxes smoothed; `utils.video.tracking.SettledTracks`) exactly as
   if the whole clip had been tracked first: a frame leaves once no later frame can change its boxes.
2. `RegressionStage`: PyMAF on the crops, batched across frames (`core.inference.predictor.CropBatcher`).
3. `KeypointStage`: BlazePose keypoints beside the meshes and, with ``refine``, the keypoint fit
   (`core.inference.keypoints.refine_rows`) over a few dozen person-frames at a time.
4. `SmoothingStage`: the One-Euro filter per person, frame by frame (`utils.video.smoothing.TrackSmoother`).
5. `RenderStage` and `WriteStage`: the overlay panels of each frame, then the video and the PNG files.

`OnlinePeopleStage` and `FrameStagesStage` serve live mode (`core.inference.live`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.inference.keypoints import FIT_FIELDS, keypoint_rows, pose_square_box, refine_rows
from core.inference.predictor import CropBatcher, FrameStage, PyMAFPredictor, add_rows
from utils.video.blazepose import PoseLandmarks
from utils.video.people import PeopleFinder, PeopleTracker
from utils.video.smoothing import TrackSmoother
from utils.video.tracking import SettledTracks, SortTracker, xyxy_to_square


@dataclass
class FrameWork:
    """One frame on its way through the pipeline.

    Attributes:
        index: frame index.
        frame: (H, W, 3) uint8 RGB.
        ids: person ids in the frame (increasing).
        boxes: (N, 4) ``[cx, cy, s, s]`` px crop boxes, one per id.
        poses: BlazePose landmarks per id (None where the tracker bridged a gap), or None when the
            detector gives no landmarks.
        people: after regression, `PyMAFPredictor.predict_image`'s fields, N rows (plus what later stages add).
    """

    index: int
    frame: np.ndarray
    ids: list[int] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    poses: list[PoseLandmarks | None] | None = None
    people: dict[str, np.ndarray] | None = None


def _work(index: int, frame: np.ndarray, boxes: dict[int, np.ndarray],
          landmarks: dict[int, PoseLandmarks] | None = None) -> FrameWork:
    ids = sorted(boxes)
    return FrameWork(index, frame, ids, np.asarray([boxes[p] for p in ids], np.float32).reshape(-1, 4),
                     None if landmarks is None else [landmarks.get(p) for p in ids])


class _Settling:
    """Holds frames until `SettledTracks` says their boxes are final, then gives them out in order."""

    def __init__(self, settled: SettledTracks, with_landmarks: bool) -> None:
        self.settled = settled
        self.with_landmarks = with_landmarks
        self.held: dict[int, tuple[np.ndarray, dict]] = {}

    def hold(self, index: int, frame: np.ndarray, people: list[tuple[int, np.ndarray]],
             landmarks: dict[int, PoseLandmarks] | None = None) -> None:
        self.held[index] = (frame, landmarks or {})
        self.settled.observe(index, people)

    def release(self, everything: bool = False) -> list[FrameWork]:
        boxes = self.settled.take(everything)
        out = []
        for index in sorted(i for i in self.held if i <= self.settled.emitted):
            frame, landmarks = self.held.pop(index)
            out.append(_work(index, frame, boxes.get(index, {}), landmarks if self.with_landmarks else None))
        return out


class TrackedPeopleStage:
    """BlazePose people followed through a video: boxes from each person's landmarks, then settled.

    Args:
        tracker: the people tracker (its ``max_gap`` also bounds the gaps that are filled); build it with
            ``keep_history=False`` for long videos (the stage needs only what `PeopleTracker.update` gives).
        smooth_sigma: box smoothing over time, frames (0: off).
        min_track_len: tracks seen in fewer frames are dropped.
    """

    name = 'people'

    def __init__(self, tracker: PeopleTracker, smooth_sigma: float = 2.0, min_track_len: int = 1) -> None:
        self.tracker = tracker
        # The tracker resumes a person seen again within max_gap frames of the last sighting.
        self.settling = _Settling(SettledTracks(tracker.max_gap, smooth_sigma, tracker.max_gap, min_track_len), True)

    def process(self, item: tuple[int, np.ndarray]) -> list[FrameWork]:
        index, frame = item
        seen = self.tracker.update(index, frame)
        self.settling.hold(index, frame, [(pid, pose_square_box(pose)) for pid, pose in seen], dict(seen))
        return self.settling.release()

    def finish(self) -> list[FrameWork]:
        return self.settling.release(everything=True)


class FoundPeopleStage:
    """BlazePose people found in each frame on its own (image mode); every person gets a new id."""

    name = 'people'

    def __init__(self, finder: PeopleFinder) -> None:
        self.finder = finder
        self.next_id = 1

    def process(self, item: tuple[int, np.ndarray]) -> list[FrameWork]:
        index, frame = item
        poses = self.finder.find(frame)
        ids = list(range(self.next_id, self.next_id + len(poses)))
        self.next_id += len(poses)
        return [_work(index, frame, {p: pose_square_box(pose) for p, pose in zip(ids, poses)}, dict(zip(ids, poses)))]

    def finish(self) -> list[FrameWork]:
        return []


class DetectedPeopleStage:
    """A box detector over batches of frames; its boxes tracked (video) or taken per image.

    Args:
        detector: ``detector(frames) -> [(K, 5) [x1, y1, x2, y2, score] px per frame]``, or None (no detection:
            with ``fallback`` every image is one crop, else nobody).
        batch_size: frames per detector call.
        tracker: the tracker for a video, or None for independent images (every box a new person).
        smooth_sigma, min_track_len: see `TrackedPeopleStage`.
        fallback: image mode: ``fallback(width, height) -> [cx, cy, s, s]`` for an image where nobody was
            detected (the whole image as one crop), or None.
    """

    name = 'people'

    def __init__(self, detector: Callable[[Sequence[np.ndarray]], list[np.ndarray]] | None, batch_size: int,
                 tracker: SortTracker | None = None, smooth_sigma: float = 2.0, min_track_len: int = 1,
                 fallback: Callable[[int, int], np.ndarray] | None = None) -> None:
        self.detector, self.batch_size, self.tracker, self.fallback = detector, int(batch_size), tracker, fallback
        self.batch: list[tuple[int, np.ndarray]] = []
        self.next_id = 1
        if tracker is not None:
            # A track unmatched for up to max_age frames may still be matched in the frame after.
            self.settling = _Settling(SettledTracks(tracker.max_age, smooth_sigma, tracker.max_age + 1, min_track_len,
                                                    to_square=xyxy_to_square), False)

    def process(self, item: tuple[int, np.ndarray]) -> list[FrameWork]:
        self.batch.append(item)
        return self._detect() if len(self.batch) >= self.batch_size else []

    def finish(self) -> list[FrameWork]:
        out = self._detect()
        return out + (self.settling.release(everything=True) if self.tracker is not None else [])

    def _detect(self) -> list[FrameWork]:
        if not self.batch:
            return []
        frames = [frame for _, frame in self.batch]
        if self.detector is None:
            dets = [np.zeros((0, 5), np.float32)] * len(frames)
        else:
            dets = self.detector(frames)
        out = []
        for (index, frame), found in zip(self.batch, dets):
            found = np.asarray(found, np.float64).reshape(-1, 5)
            if self.tracker is not None:
                self.settling.hold(index, frame, self.tracker.update(index, found))
                continue
            boxes = list(xyxy_to_square(found[:, :4]))
            if not boxes and self.fallback is not None:
                boxes = [self.fallback(frame.shape[1], frame.shape[0])]
            ids = list(range(self.next_id, self.next_id + len(boxes)))
            self.next_id += len(boxes)
            out.append(_work(index, frame, dict(zip(ids, boxes))))
        self.batch = []
        return out + (self.settling.release() if self.tracker is not None else [])


class GivenPeopleStage:
    """Tracks given in advance: ``{pid: {'frames': (N,), 'bbox': (N, 4) [cx, cy, s, s]}}``."""

    name = 'people'

    def __init__(self, tracks: dict[int, dict[str, np.ndarray]]) -> None:
        self.by_frame: dict[int, dict[int, np.ndarray]] = {}
        for pid, track in tracks.items():
            for f, box in zip(track['frames'], track['bbox']):
                self.by_frame.setdefault(int(f), {})[pid] = box

    def process(self, item: tuple[int, np.ndarray]) -> list[FrameWork]:
        index, frame = item
        return [_work(index, frame, self.by_frame.get(index, {}))]

    def finish(self) -> list[FrameWork]:
        return []


class RegressionStage:
    """PyMAF on every crop, batched across consecutive frames (`CropBatcher`); sets ``people``.

    Args:
        predictor: the predictor.
        progress: called with the number of crops after each forward pass.
        per_frame: regress each frame as soon as it comes (live mode: no waiting for later frames).
    """

    name = 'regression'

    def __init__(self, predictor: PyMAFPredictor, progress: Callable[[int], None] | None = None,
                 per_frame: bool = False) -> None:
        self.batcher = CropBatcher(predictor, progress)
        self.per_frame = per_frame
        self.waiting: dict[int, FrameWork] = {}

    def process(self, work: FrameWork) -> list[FrameWork]:
        self.waiting[work.index] = work
        done = self.batcher.add(work.index, work.frame, list(zip(work.ids, work.boxes)))
        return self._done(done + self.batcher.flush() if self.per_frame else done)

    def finish(self) -> list[FrameWork]:
        return self._done(self.batcher.flush())

    def _done(self, results) -> list[FrameWork]:
        out = []
        for index, _, _, people in results:
            work = self.waiting.pop(index)
            work.people = people
            out.append(work)
        return out


class KeypointStage:
    """Keypoints beside the meshes (``keypoints_2d``, ``keypoints_3d``; `core.inference.keypoints`) and, with
    ``refine``, the keypoint fit and re-posed meshes and cameras.

    Rows are fitted in groups of at least ``rows_per_fit`` person-frames (each row's fit is independent of
    the others, so the grouping does not change the result; larger groups cost less per row).

    Args:
        predictor: re-poses the fitted rows (`PyMAFPredictor.repose_rows`).
        smpl: the body model to fit.
        refine: fit (else only attach the keypoints).
        bbox_scale: the crop window scale the regression used.
        rows_per_fit: person-frames per fit.
    """

    name = 'fitting'

    def __init__(self, predictor: PyMAFPredictor, smpl: torch.nn.Module | None, refine: bool, bbox_scale: float = 1.0,
                 rows_per_fit: int = 48) -> None:
        self.predictor, self.smpl, self.refine = predictor, smpl, refine
        self.bbox_scale, self.rows_per_fit = bbox_scale, int(rows_per_fit)
        self.held: list[FrameWork] = []
        self.rows = 0
        self.stats = {'fitted': 0.0, 'error_before': 0.0, 'error_after': 0.0}

    def process(self, work: FrameWork) -> list[FrameWork]:
        if work.poses is not None:
            work.people['keypoints_2d'], work.people['keypoints_3d'] = keypoint_rows(work.poses)
        if not self.refine:
            return [work]
        self.held.append(work)
        self.rows += len(work.ids)
        return self._fit() if self.rows >= self.rows_per_fit else []

    def finish(self) -> list[FrameWork]:
        return self._fit()

    def _fit(self) -> list[FrameWork]:
        held, self.held, self.rows = self.held, [], 0
        fitted = [w for w in held if w.ids and w.poses is not None]
        if fitted:
            rows = {key: np.concatenate([w.people[key] for w in fitted]) for key in FIT_FIELDS}
            stats = refine_rows(rows, self.smpl, self.bbox_scale, device=self.predictor.device)
            self._count(stats)
            sizes = np.concatenate([np.tile([w.frame.shape[1], w.frame.shape[0]], (len(w.ids), 1)) for w in fitted])
            for key in ('orig_cam', 'cam_t', 'kp2d_px'):
                rows[key] = np.concatenate([w.people[key] for w in fitted])
            self.predictor.repose_rows(rows, sizes, self.smpl)
            start = 0
            for w in fitted:
                n = len(w.ids)
                for key in ('pose', 'betas', 'pred_cam', 'verts', 'joints3d', 'orig_cam', 'cam_t', 'kp2d_px'):
                    w.people[key] = rows[key][start:start + n]
                start += n
        return held

    def _count(self, stats: dict[str, float]) -> None:
        total = self.stats['fitted'] + stats['fitted']
        for key in ('error_before', 'error_after'):
            self.stats[key] = (self.stats[key] * self.stats['fitted'] + stats[key] * stats['fitted']) / max(total, 1)
        self.stats['fitted'] = total


class SmoothingStage:
    """The One-Euro filter on each person's pose, shape and crop camera, frame by frame (a person's filter
    starts again after a frame without them), then meshes and cameras re-posed.

    Args:
        predictor: re-poses the smoothed rows.
        smpl: the body model.
        fps: frame rate, Hz.
        min_cutoff, beta: the One-Euro filter's settings.
    """

    name = 'smoothing'

    def __init__(self, predictor: PyMAFPredictor, smpl: torch.nn.Module, fps: float, min_cutoff: float,
                 beta: float) -> None:
        self.predictor, self.smpl = predictor, smpl
        self.fps, self.min_cutoff, self.beta = fps, min_cutoff, beta
        self.filters: dict[int, tuple[int, TrackSmoother]] = {}

    def process(self, work: FrameWork) -> list[FrameWork]:
        if not work.ids:
            return [work]
        people = work.people
        for k, pid in enumerate(work.ids):
            last, smoother = self.filters.get(pid, (None, None))
            if last != work.index - 1:
                smoother = TrackSmoother(self.fps, self.min_cutoff, self.beta)
            self.filters[pid] = (work.index, smoother)
            people['pose'][k], people['betas'][k], people['pred_cam'][k] = smoother(
                people['pose'][k], people['betas'][k], people['pred_cam'][k])
        sizes = np.tile([work.frame.shape[1], work.frame.shape[0]], (len(work.ids), 1))
        self.predictor.repose_rows(people, sizes, self.smpl)
        return [work]

    def finish(self) -> list[FrameWork]:
        return []


class OnlinePeopleStage:
    """People followed online, one frame at a time, with no lookahead (live mode).

    Args:
        follow: ``follow(frame_index, frame_rgb) -> [(person id, box [cx, cy, s, s])]``.
        landmarks: where ``follow`` keeps the landmarks it found (``{pid: {frame: PoseLandmarks}}``, e.g.
            `core.inference.keypoints.OnlinePeople.landmarks`), or None.
    """

    name = 'people'

    def __init__(self, follow: Callable[[int, np.ndarray], list[tuple[int, np.ndarray]]],
                 landmarks: dict[int, dict[int, PoseLandmarks]] | None = None) -> None:
        self.follow, self.landmarks = follow, landmarks

    def process(self, item: tuple[int, np.ndarray]) -> list[FrameWork]:
        index, frame = item
        people = dict(self.follow(index, frame))
        seen = None if self.landmarks is None else {p: self.landmarks.get(p, {}).get(index) for p in people}
        return [_work(index, frame, people, seen)]

    def finish(self) -> list[FrameWork]:
        return []


class FrameStagesStage:
    """Per-frame functions (`core.inference.predictor.FrameStage`) on each frame's regressed people."""

    name = 'frame stages'

    def __init__(self, stages: Sequence[FrameStage]) -> None:
        self.stages = list(stages)

    def process(self, work: FrameWork) -> list[FrameWork]:
        if work.ids:
            for stage in self.stages:
                work.people = stage(work.frame, work.index, work.people)
        return [work]

    def finish(self) -> list[FrameWork]:
        return []


class CollectStage:
    """Keeps each frame's people as output.pkl rows, ``rows`` ``{pid: [one-row dicts with 'frame']}`` (for
    `core.inference.predictor.person_results`), and passes the frame on.

    Args:
        on_nobody: called with the index of each frame without anybody, or None.
    """

    name = 'collect'

    def __init__(self, on_nobody: Callable[[int], None] | None = None) -> None:
        self.rows: dict[int, list[dict]] = {}
        self.on_nobody = on_nobody

    def process(self, work: FrameWork) -> list[FrameWork]:
        if not work.ids and self.on_nobody is not None:
            self.on_nobody(work.index)
        add_rows(self.rows, work.index, work.ids, work.people or {})
        return [work]

    def finish(self) -> list[FrameWork]:
        return []


def regressed_meshes(work: FrameWork) -> tuple[list[np.ndarray], np.ndarray]:
    """A frame's meshes ((6890, 3) vertices each) and camera translations (N, 3) from its regressed people."""
    if not work.ids:
        return [], np.zeros((0, 3))
    return list(work.people['verts']), work.people['cam_t'].reshape(-1, 3)


class RenderStage:
    """The overlay panels of each frame, left to right: the raw frame (``with_raw``), the meshes over it,
    the meshes on black (``empty_bg``), a side view on black (``sideview``); gives ``(index, canvas)``.

    Args:
        renderer: the mesh renderer (`utils.render.renderer.PyRenderer`), its focal length already
            multiplied by ``render_ratio``.
        meshes: ``meshes(work) -> (vertices list, cam_t (N, 3))``, e.g. `regressed_meshes`.
        render_ratio: the frames are resized by this first.
    """

    name = 'rendering'

    def __init__(self, renderer, meshes: Callable[[FrameWork], tuple[list[np.ndarray], np.ndarray]] = regressed_meshes,
                 with_raw: bool = False, empty_bg: bool = False, sideview: bool = False,
                 render_ratio: float = 1.0) -> None:
        self.renderer, self.meshes = renderer, meshes
        self.with_raw, self.empty_bg, self.sideview, self.render_ratio = with_raw, empty_bg, sideview, render_ratio

    def process(self, work: FrameWork) -> list[tuple[int, np.ndarray]]:
        import cv2

        frame = work.frame
        if self.render_ratio != 1.0:
            frame = cv2.resize(frame, None, fx=self.render_ratio, fy=self.render_ratio,
                               interpolation=cv2.INTER_AREA if self.render_ratio < 1 else cv2.INTER_LINEAR)
        verts, cam_t = self.meshes(work)
        draw = self.renderer
        if not (self.with_raw or self.empty_bg or self.sideview):
            if verts:   # nothing reads the frame after this stage: draw into it
                draw(verts, frame=frame, cam_t=cam_t, out=frame)
            return [(work.index, frame)]
        height, width = frame.shape[:2]
        count = 1 + self.with_raw + self.empty_bg + self.sideview
        canvas = np.empty((height, count * width, 3), np.uint8)
        panels = iter([canvas[:, k * width:(k + 1) * width] for k in range(count)])
        if self.with_raw:
            np.copyto(next(panels), frame)
        panel = next(panels)
        draw(verts, frame=frame, cam_t=cam_t, out=panel) if verts else np.copyto(panel, frame)
        for wanted, side_view in ((self.empty_bg, False), (self.sideview, True)):
            if wanted:
                panel = next(panels)
                if verts:
                    draw(verts, frame=frame, cam_t=cam_t, empty_bg=True, side_view=side_view, out=panel)
                else:
                    panel.fill(0)
        return [(work.index, canvas)]

    def finish(self) -> list:
        return []


class WriteStage:
    """Rendered frames into a video and/or PNG files; passes ``(index, canvas)`` on.

    Args:
        writer: the video (`utils.video.io.VideoWriter`), or None.
        png_path: ``png_path(frame_index) -> path`` of a PNG to write, or None for no PNG.
    """

    name = 'writing'

    def __init__(self, writer=None, png_path: Callable[[int], Path | None] | None = None) -> None:
        self.writer, self.png_path = writer, png_path
        self.count = 0

    def process(self, item: tuple[int, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        from utils.video.io import write_png

        index, canvas = item
        if self.writer is not None:
            self.writer.write(canvas)
        path = self.png_path(index) if self.png_path is not None else None
        if path is not None:
            write_png(path, canvas)
        self.count += 1
        return [item]

    def finish(self) -> list:
        self.close()
        return []

    def close(self) -> None:
        """Finish the video (also after an error)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
