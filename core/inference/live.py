"""Live mode of the demo (``demo.py --webcam``): each frame from a camera or stream is detected, tracked
online, regressed and rendered as it arrives, instead of the video pipeline's three passes over a file.

Differences from the video pipeline, which sees the whole clip first: tracks are online (no gap filling or
box smoothing over future frames, no One-Euro smoothing), and the overlay video is written as frames come.
The results file has the same fields. Stop with Ctrl-C, ``--max_frames``, or the end of the stream.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def run_live(args, predictor, faces: np.ndarray, out_dir: Path, log=print) -> tuple[dict[int, dict], LiveSource]:
    """Reconstruct everyone in each frame of ``args.webcam`` as it arrives.

    Writes ``<out_dir>/webcam_result.mp4`` (unless ``args.no_render``) and shows it in a window with
    ``args.display`` when OpenCV has a GUI. Returns the per-person results (output.pkl's format) and a
    description of the stream for the saving code.
    """
    import cv2
    import torch

    from core import path_config
    from core.constants import FOCAL_LENGTH
    from core.inference.predictor import person_results
    from datasets.inference import crop_person
    from utils.render.renderer import PyRenderer
    from utils.video.detection import build_detector
    from utils.video.io import VideoWriter
    from utils.video.tracking import SortTracker, xyxy_to_square

    capture = open_capture(str(args.webcam))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    detector = build_detector(args.detector, args.detector_weights or path_config.YOLO_WEIGHTS,
                              device=str(args.device_obj), score_threshold=args.det_threshold)
    tracker = SortTracker(max_age=args.max_track_gap)
    renderer = None if args.no_render else PyRenderer(faces=faces, focal_length=FOCAL_LENGTH,
                                                      device=args.device_obj)
    show = args.display and gui_available()
    if args.display and not show:
        log('note: --display needs an OpenCV build with a GUI (pip install opencv-python); writing the video only')
    writer = None
    rows: dict[int, list[dict]] = {}
    width = height = 0
    index = 0
    start = time.perf_counter()
    try:
        while args.max_frames is None or index < args.max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            frame = np.ascontiguousarray(bgr[..., ::-1])
            height, width = frame.shape[:2]
            people = tracker.update(index, detector([frame])[0])
            boxes = xyxy_to_square(np.array([box for _, box in people]).reshape(-1, 4))
            verts, cam_t = [], []
            if len(people):
                crops = torch.stack([crop_person(frame, box, args.bbox_scale)[0] for box in boxes])
                out = predictor.predict_crops(crops)
                predictor.add_image_cameras(out, boxes, width, height)
                for k, (pid, _) in enumerate(people):
                    row = {key: value[k:k + 1] for key, value in out.items()}
                    row['frame'] = index
                    rows.setdefault(pid, []).append(row)
                verts, cam_t = list(out['verts']), out['cam_t']
            if renderer is not None:
                canvas = renderer(verts, frame=frame, cam_t=np.asarray(cam_t).reshape(-1, 3)) if verts else frame
                if writer is None:
                    writer = VideoWriter(out_dir / 'webcam_result.mp4', fps=fps)
                writer.write(canvas)
                if show:
                    cv2.imshow('PyMAF', np.ascontiguousarray(canvas[..., ::-1]))
                    if cv2.waitKey(1) & 0xFF in (ord('q'), 27):
                        break
            index += 1
            if index % 30 == 0:
                log(f'live: {index} frames, {index / (time.perf_counter() - start):.1f} frames/s, '
                    f'{len(people)} people in view')
    except KeyboardInterrupt:
        log('live: stopped')
    finally:
        capture.release()
        if writer is not None:
            writer.close()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - start
    log(f'live: {index} frames in {elapsed:.1f} s ({index / max(elapsed, 1e-9):.1f} frames/s), '
        f'{len(rows)} people')
    return person_results(rows), LiveSource(Path(str(args.webcam)), width, height, fps, index)
