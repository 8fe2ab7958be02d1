"""Live mode of the demo (``demo.py --webcam``): each frame from a camera or stream is detected, tracked
online, regressed and rendered as it arrives, with the same pipeline stages as a video file.

Differences from a video file, where the pipeline may look a few frames ahead: tracks are online (no gap
filling or box smoothing over future frames, no One-Euro smoothing, no keypoint fit), and crops are not
batched across frames.
The results file has the same fields. Stop with Ctrl-C, ``--max_frames``, or the end of the stream.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.inference.predictor import FrameStage, PyMAFPredictor, person_results


@dataclass
class LiveSource:
    """What the demo's saving code needs to know about a finished live session (mirrors FrameSource)."""

    path: Path
    width: int
    height: int
    fps: float
    count: int
    kind: str = 'live'

    def __len__(self) -> int:
        return self.count

    @property
    def names(self) -> list[str]:
        return []


def open_capture(spec: str):
    """OpenCV capture of a camera index ('0'), a device path or a stream/file URL; raises ValueError if closed."""
    import cv2

    capture = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
    if not capture.isOpened():
        raise ValueError(f'cannot open camera or stream {spec!r} (a camera index such as 0, a device such as '
                         '/dev/video0, or a stream URL OpenCV reads)')
    return capture


def gui_available() -> bool:
    """Whether this OpenCV build can open windows (the headless wheel the project installs cannot)."""
    import cv2

    try:
        cv2.namedWindow('pymaf-probe')
        cv2.destroyWindow('pymaf-probe')
        return True
    except cv2.error:
        return False


def run_live(spec: str, predictor: PyMAFPredictor, detector, faces: np.ndarray, out_dir: Path, *,
             max_track_gap: int = 15, render: bool = True, display: bool = False, max_frames: int | None = None,
             stages: Sequence[FrameStage] = (), log=print) -> tuple[dict[int, dict], LiveSource]:
    """Reconstruct everyone in each frame of a camera or stream as it arrives.

    Reading, following people, regression, rendering and writing run at once, as a pipeline
    (`core.inference.pipeline`): each frame's crops are regressed as soon as it is read (no batching across
    frames, which would delay it).

    Args:
        spec: camera index ('0'), device path or stream/file URL (`open_capture`).
        predictor: the network (`core.inference.predictor.PyMAFPredictor`).
        detector: either a detector, list of (H, W, 3) RGB frames -> list of (N, 5) ``[x1, y1, x2, y2, score]``
            (`utils.video.detection.build_detector`), whose boxes a SORT tracker follows; or a follower of
            people that tracks by itself, marked by a ``tracks_people`` attribute: ``(frame_index, frame_rgb)
            -> [(person_id, square box [cx, cy, s, s])]`` (`core.inference.keypoints.OnlinePeople`).
        faces: (F, 3) mesh triangles for the overlay.
        out_dir: where ``webcam_result.mp4`` goes.
        max_track_gap: frames a track survives undetected.
        render: write the overlay video.
        display: also show it in a window when OpenCV has a GUI.
        max_frames: stop after this many frames (None: the end of the stream or Ctrl-C).
        stages: per-frame steps after regression (`FrameStage`), as in `PyMAFPredictor.predict_video`.
        log: where progress lines go.

    Returns:
        The per-person results (output.pkl's format) and a description of the stream for the saving code.
    """
    import cv2

    from core.constants import FOCAL_LENGTH
    from core.inference import video
    from core.inference.pipeline import run_pipeline
    from utils.heap import HeapTrimmer
    from utils.render.renderer import PyRenderer
    from utils.video.io import VideoWriter
    from utils.video.tracking import SortTracker, xyxy_to_square

    capture = open_capture(str(spec))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    if getattr(detector, 'tracks_people', False):
        people = video.OnlinePeopleStage(detector, getattr(detector, 'landmarks', None))
    else:
        tracker = SortTracker(max_age=max_track_gap)

        def follow(index: int, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
            tracked = tracker.update(index, detector([frame])[0])
            squares = xyxy_to_square(np.array([box for _, box in tracked]).reshape(-1, 4))
            return [(pid, box) for (pid, _), box in zip(tracked, squares)]
        people = video.OnlinePeopleStage(follow)
    show = display and gui_available()
    if display and not show:
        log('note: --display needs an OpenCV build with a GUI (pip install opencv-python); writing the video only')
    size = {'width': 0, 'height': 0, 'read': 0}

    def frames():
        while max_frames is None or size['read'] < max_frames:
            ok, bgr = capture.read()
            if not ok:
                return
            frame = np.ascontiguousarray(bgr[..., ::-1])
            size['height'], size['width'] = frame.shape[:2]
            yield size['read'], frame
            size['read'] += 1

    collect = video.CollectStage()
    pipeline = [people, video.RegressionStage(predictor, per_frame=True)]
    pipeline += [video.FrameStagesStage(stages)] if stages else []
    pipeline.append(collect)
    write = None
    if render:
        renderer = PyRenderer(faces=faces, focal_length=FOCAL_LENGTH, device=predictor.device)
        write = video.WriteStage(VideoWriter(out_dir / 'webcam_result.mp4', fps=fps))
        pipeline += [video.RenderStage(renderer), write]
    done = 0
    start = time.perf_counter()
    trim = HeapTrimmer()   # a live session may run for hours: give freed memory back (utils/heap.py)
    try:
        for item in run_pipeline(frames(), pipeline, queue_size=2, source_name='reading'):
            done += 1
            trim()
            if show:
                cv2.imshow('PyMAF', np.ascontiguousarray(item[1][..., ::-1]))
                if cv2.waitKey(1) & 0xFF in (ord('q'), 27):
                    break
            if done % 30 == 0:
                log(f'live: {done} frames, {done / (time.perf_counter() - start):.1f} frames/s, '
                    f'{len(collect.rows)} people so far')
    except KeyboardInterrupt:
        log('live: stopped')
    finally:
        capture.release()
        if write is not None:
            write.close()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - start
    log(f'live: {done} frames in {elapsed:.1f} s ({done / max(elapsed, 1e-9):.1f} frames/s), '
        f'{len(collect.rows)} people')
    return person_results(collect.rows), LiveSource(Path(str(spec)), size['width'], size['height'], fps, done)
