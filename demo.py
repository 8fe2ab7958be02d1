"""PyMAF demo: reconstruct every person in a video, an image folder or an image; track, render and save.

Examples::

    python demo.py --vid_file ../shared/media/dancer.mp4 --output_folder output
    python demo.py --img_file photo.jpg --sideview
    python demo.py --image_folder frames/ --no_render --save_obj
    python demo.py --vid_file clip.mp4 --use_gt --anno_file tracks.json
    python demo.py --vid_file clip.mp4 --recon_result_file output/clip/output.pkl   # render only

Stages: detection + tracking, regression (batched over person crops), optional smoothing, saving
(output.pkl, output.npz, optional .obj meshes), optional rendering (overlay video + PNG frames).
Results go to ``<output_folder>/<input name>/``; they are written to a temporary folder first and moved
in at the end, so a failed or interrupted run leaves existing outputs untouched, and a run that finds
nobody writes no result files. Mistakes print one ``error:`` line (utils/cli.py). See docs/demo.md.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from utils import cli
from utils.openmp import prefer_passive_wait

prefer_passive_wait()  # before torch starts OpenMP: its threads sleep instead of spinning (docs/speed.md)

REPO_ROOT = Path(__file__).resolve().parent
DEMO_WEIGHTS_DIR = REPO_ROOT / 'assets' / 'demo_weights'  # tests point it elsewhere


def build_parser() -> argparse.ArgumentParser:
    """The command line: the original's flags with their meanings, plus ours (marked 'new')."""
    p = cli.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    inp = p.add_argument_group('input (exactly one)')
    inp.add_argument('--vid_file', type=str, default=None, help='input video (any container OpenCV reads)')
    inp.add_argument('--image_folder', type=str, default=None, help='folder of frames, sorted by name')
    inp.add_argument('--img_file', type=str, default=None, help='one image; every person in it is reconstructed')
    inp.add_argument('--webcam', type=str, default=None,
                     help='new: live mode from a camera index (0), a device or a stream URL; Ctrl-C stops '
                          '(with --display, a window when OpenCV has a GUI)')
    p.add_argument('--output_folder', type=str, default='output', help='root of the outputs')
    p.add_argument('--max_frames', type=int, default=None, help='new: process only the first N frames')
    p.add_argument('--image_based', action='store_true',
                   help='treat --image_folder as independent images: no tracking, outputs named after the images, '
                        'no video')
    p.add_argument('--single_crop', action='store_true',
                   help='new: image mode without detection, the whole image is one crop (the original image demo)')
    det = p.add_argument_group('detection and tracking')
    det.add_argument('--detector', type=str, default='blazepose',
                     help='blazepose (offline, shipped: finds and follows people and gives 33 keypoints each), '
                          'hog (offline, OpenCV), yolo/yolov8 (needs ultralytics)')
    det.add_argument('--search_every', type=int, default=10,
                     help='new, blazepose: frames between full searches for newcomers (people are followed between)')
    det.add_argument('--detector_weights', type=str, default=None,
                     help='new: YOLO weights file (default data/pretrained_model/yolov8n.pt; when missing, '
                          'ultralytics fetches yolov8n.pt itself where the machine is online)')
    det.add_argument('--det_threshold', type=float, default=None, help='new: detection score threshold')
    det.add_argument('--yolo_img_size', type=int, default=640, help='YOLO inference size in pixels')
    det.add_argument('--tracker_batch_size', type=int, default=12, help='frames per detection batch')
    det.add_argument('--tracking_method', type=str, default='bbox', choices=['bbox', 'pose'],
                     help='bbox = detector + tracker; pose (STAF/OpenPose) is not available')
    det.add_argument('--staf_dir', type=str, default=None, help='not used: pose tracking is not available')
    det.add_argument('--min_track_len', type=int, default=1, help='new: drop tracks with fewer detected frames')
    det.add_argument('--max_track_gap', type=int, default=15,
                     help='new: frames a track survives undetected; such gaps are filled by interpolation')
    det.add_argument('--bbox_smooth', type=float, default=2.0,
                     help='new: Gaussian sigma in frames for box smoothing (0 = off)')
    det.add_argument('--bbox_scale', type=float, default=1.0, help='new: crop window = box size * bbox_scale')
    det.add_argument('--use_gt', action='store_true', help='take tracks from --anno_file instead of a detector')
    det.add_argument('--anno_file', type=str, default='', help='tracklet JSON (the original format)')
    det.add_argument('--display', action='store_true', help='not available (headless demo); ignored with a note')
    model = p.add_argument_group('model')
    model.add_argument('--checkpoint', type=str, default=None,
                       help='PyMAF checkpoint (default data/pretrained_model/PyMAF_model_checkpoint.pt if present)')
    model.add_argument('--cfg_file', type=str, default=None, help='config yaml merged into the defaults')
    model.add_argument('--misc', default=None, nargs='*', help='config overrides as KEY VALUE pairs')
    model.add_argument('--regressor', type=str, default='pymaf_net', help='only pymaf_net is available')
    model.add_argument('--model_batch_size', type=int, default=8, help='crops per forward pass')
    model.add_argument('--device', type=str, default='auto', help='new: auto (cuda when available), cpu, cuda, cuda:1')
    from core.inference.backends import add_backend_args
    add_backend_args(model)
    model.add_argument('--recon_result_file', type=str, default='', help='skip inference: render a saved output.pkl')
    model.add_argument('--pre_load_imgs', action='store_true', help='accepted; frames are always streamed')
    fit = p.add_argument_group('keypoint fitting (new)')
    fit.add_argument('--refine', dest='refine', action='store_const', const=True, default=None,
                     help='fit each mesh to its BlazePose keypoints (default: on with the built-in demo weights, '
                          'off with other checkpoints such as the released one, which then give plain PyMAF)')
    fit.add_argument('--no_refine', dest='refine', action='store_const', const=False,
                     help='keep the regressor\'s meshes as they are')
    smooth = p.add_argument_group('temporal smoothing (new, off by default)')
    smooth.add_argument('--smooth', action='store_true', help='One-Euro filter on pose, shape and camera per track')
    smooth.add_argument('--smooth_min_cutoff', type=float, default=1.0, help='One-Euro minimum cut-off, Hz')
    smooth.add_argument('--smooth_beta', type=float, default=0.05, help='One-Euro speed coefficient')
    out = p.add_argument_group('outputs and rendering')
    out.add_argument('--save_obj', action='store_true', help='write meshes/<pid:04d>/<frame:06d>.obj')
    out.add_argument('--export', nargs='*', choices=('glb', 'bvh', 'npz'), default=None, metavar='FORMAT',
                     help='new: also write export/person_<id>.glb/.bvh/_smpl.npz (default all; docs/export.md)')
    out.add_argument('--no_render', action='store_true', help='skip rendering (results are still saved)')
    out.add_argument('--no_frames', action='store_true', help='new: write the video but no PNG frames')
    out.add_argument('--with_raw', action='store_true', help='put the raw frame left of the render')
    out.add_argument('--empty_bg', action='store_true', help='also render on black, to the right')
    out.add_argument('--sideview', action='store_true', help='also render a side view on black, to the right')
    out.add_argument('--render_ratio', type=float, default=1.0, help='resize frames by this before rendering')
    return p


class DemoError(cli.UserError):
    """A user-facing error: printed as one line, exit status 1."""


def check_flags(args: argparse.Namespace) -> list[str]:
    """Validate flag combinations; return notes for flags that do not apply. Raises DemoError."""
    inputs = [f for f in ('vid_file', 'image_folder', 'img_file', 'webcam') if getattr(args, f)]
    if len(inputs) != 1:
        raise DemoError('give exactly one input: --vid_file, --image_folder, --img_file or --webcam'
                        + (f' (got {", ".join("--" + i for i in inputs)})' if inputs else ''))
    notes = []
    if args.webcam:
        for flag in ('use_gt', 'recon_result_file', 'image_based', 'single_crop'):
            if getattr(args, flag):
                raise DemoError(f'--{flag} does not apply to --webcam (live mode)')
        if args.refine:
            notes.append('--refine is not available in live mode (--webcam); ignored')
            args.refine = False
        for flag in ('smooth', 'with_raw', 'empty_bg', 'sideview'):
            if getattr(args, flag):
                notes.append(f'--{flag} is not available in live mode (--webcam); ignored')
                setattr(args, flag, False)
    if args.tracking_method == 'pose':
        raise DemoError('--tracking_method pose needs STAF/OpenPose, which is not available; use the default bbox')
    if args.regressor != 'pymaf_net':
        raise DemoError(f'--regressor {args.regressor}: only pymaf_net is available')
    if args.staf_dir:
        notes.append('--staf_dir is ignored: pose tracking is not available')
    if args.display and not args.webcam:
        notes.append('--display is ignored: the demo is headless; see the output video instead')
    if args.pre_load_imgs:
        notes.append('--pre_load_imgs is not needed: frames are streamed from the input')
    if args.use_gt and not args.anno_file:
        raise DemoError('--use_gt needs --anno_file PATH (tracklet JSON)')
    if args.anno_file and not args.use_gt:
        notes.append('--anno_file is used only with --use_gt; the detector is used')
    if args.image_based and not args.image_folder:
        notes.append('--image_based applies to --image_folder only; ignored')
    if args.single_crop and not (args.img_file or args.image_based):
        raise DemoError('--single_crop applies to image mode (--img_file or --image_folder --image_based)')
    if args.use_gt and (args.img_file or args.image_based):
        raise DemoError('--use_gt tracks apply to videos and frame folders, not to image mode')
    if args.no_render:
        for flag in ('with_raw', 'empty_bg', 'sideview', 'no_frames'):
            if getattr(args, flag):
                notes.append(f'--{flag} is ignored with --no_render')
        if args.render_ratio != 1.0:
            notes.append('--render_ratio is ignored with --no_render')
    if args.recon_result_file:
        for flag in ('smooth', 'save_obj', 'use_gt'):
            if getattr(args, flag):
                notes.append(f'--{flag} is ignored with --recon_result_file (results are loaded, not computed)')
        if args.export is not None:
            notes.append('--export is ignored with --recon_result_file: run `python3 -m tools.export '
                         f'{args.recon_result_file}` instead')
        if args.checkpoint:
            notes.append('--checkpoint is ignored with --recon_result_file')
    if args.render_ratio <= 0:
        raise DemoError(f'--render_ratio must be positive, got {args.render_ratio}')
    if args.refine and args.detector.lower() != 'blazepose' and not args.recon_result_file:
        raise DemoError(f'--refine fits meshes to BlazePose keypoints; it needs --detector blazepose '
                        f'(got --detector {args.detector})')
    if args.search_every < 1:
        raise DemoError(f'--search_every must be >= 1, got {args.search_every}')
    if args.model_batch_size < 1 or args.tracker_batch_size < 1:
        raise DemoError('--model_batch_size and --tracker_batch_size must be >= 1')
    if args.smooth and (args.img_file or args.image_based):
        notes.append('--smooth is ignored in image mode (no tracks over time)')
        args.smooth = False
    if args.img_file and args.max_frames:
        notes.append('--max_frames is ignored for a single image')
    check_values(args)
    return notes


def check_values(args: argparse.Namespace) -> None:
    """Numbers, device, config and places, before any work. Raises `utils.cli.UserError`."""
    if args.max_frames is not None:
        cli.check_min('--max_frames', args.max_frames)
    cli.check_min('--yolo_img_size', args.yolo_img_size, 32)
    cli.check_min('--min_track_len', args.min_track_len)
    cli.check_min('--max_track_gap', args.max_track_gap, 0)
    cli.check_min('--bbox_smooth', args.bbox_smooth, 0)
    cli.check_positive('--bbox_scale', args.bbox_scale)
    cli.check_positive('--smooth_min_cutoff', args.smooth_min_cutoff)
    cli.check_min('--smooth_beta', args.smooth_beta, 0)
    if args.det_threshold is not None and not 0 <= args.det_threshold <= 1:
        raise DemoError(f'--det_threshold must lie in [0, 1], got {args.det_threshold}', 'pass e.g. 0.5')
    cli.check_device(args.device)
    cli.check_writable_dir(args.output_folder, '--output_folder')
    if args.recon_result_file:
        cli.check_input_file(args.recon_result_file, '--recon_result_file', 'result file')
    else:
        from core.cfgs import load_cfg

        if args.cfg_file:
            cli.check_input_file(args.cfg_file, '--cfg_file', 'config file')
        load_cfg(args.cfg_file, args.misc)


def resolve_checkpoint(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The checkpoint to load and a description of where the weights come from."""
    from core.inference.predictor import find_checkpoint
    from core.path_config import PYMAF_CHECKPOINT

    try:
        return find_checkpoint(args.checkpoint, PYMAF_CHECKPOINT, DEMO_WEIGHTS_DIR)
    except FileNotFoundError as err:
        raise DemoError(str(err)) from err


def refine_by_default(args: argparse.Namespace) -> bool:
    """Keypoint fitting is on by default with the built-in demo weights only (with the released checkpoint
    the demo gives the original's frame-by-frame PyMAF unless --refine is asked for)."""
    path, _ = resolve_checkpoint(args)
    return path is not None and DEMO_WEIGHTS_DIR.resolve() in Path(path).resolve().parents


def build_predictor(args: argparse.Namespace, device, log, model_factory=None):
    """Build PyMAF from the checkpoint and load its weights; says once which body model and weights are used.

    ``model_factory`` (tests and embedding) builds the network instead of `models.pymaf_net`; then only
    an explicit ``--checkpoint`` is loaded.
    """
    from core.inference.predictor import CheckpointMismatchError, PyMAFPredictor, load_weights, weights_note
    from utils.saver import read_checkpoint

    options = {'batch_size': args.model_batch_size, 'bbox_scale': args.bbox_scale, 'backend': args.backend,
               'precision': args.precision, 'background': True}
    try:
        if model_factory is not None:
            model = model_factory()
            if args.checkpoint:
                if not Path(args.checkpoint).is_file():
                    raise DemoError(f'checkpoint not found: {args.checkpoint}')
                load_weights(model, args.checkpoint)
            return PyMAFPredictor(model, device, checkpoint=args.checkpoint or None, **options)
        checkpoint, weights_desc = resolve_checkpoint(args)
        data = read_checkpoint(checkpoint) if checkpoint is not None else None
        log(weights_note(data, weights_desc))
        return PyMAFPredictor.from_checkpoint(checkpoint, device, checkpoint_data=data, cfg_file=args.cfg_file,
                                              misc=args.misc, **options)
    except CheckpointMismatchError as err:
        raise DemoError(str(err)) from err


def make_detector(args: argparse.Namespace, device):
    """The people detector the flags ask for (`utils.video.detection.build_detector`); for live mode with
    blazepose, a follower of people (`core.inference.keypoints.OnlinePeople`)."""
    from core import path_config
    from utils.video.detection import build_detector

    if args.webcam and args.detector.lower() == 'blazepose':
        from core.inference.keypoints import OnlinePeople

        return OnlinePeople(blazepose_finder(), search_every=args.search_every, max_gap=args.max_track_gap)

    detector = build_detector(args.detector, args.detector_weights or path_config.YOLO_WEIGHTS, device=str(device),
                              score_threshold=args.det_threshold)
    if hasattr(detector, 'img_size'):
        detector.img_size = args.yolo_img_size
    return detector


def blazepose_finder(num_threads: int = 1):
    """The people finder on the shipped BlazePose models, with HOG proposals (`core.inference.keypoints`);
    ``num_threads``: LiteRT threads per network."""
    from utils.video.blazepose import ModelFileError
    from utils.video.detection import HogDetector
    from utils.video.people import build_finder

    try:
        return build_finder(proposals=HogDetector().detect, num_threads=num_threads)
    except ModelFileError as err:
        raise DemoError(str(err)) from err


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # no affinity call on this platform
        return max(1, os.cpu_count() or 1)


def record_size(sizes: dict, index: int, frame: np.ndarray, source, image_mode: bool) -> None:
    """Note frame ``index``'s (width, height); outside image mode every frame must match the first (DemoError)."""
    sizes[index] = (frame.shape[1], frame.shape[0])
    first = sizes[min(sizes)]
    if not image_mode and sizes[index] != first:
        name = source.names[index] if index < len(source.names) else f'frame {index}'
        raise DemoError(f'{name} is {sizes[index][0]}x{sizes[index][1]} but the first frame is {first[0]}x{first[1]}: '
                        'the frames of one video must share a size',
                        'for a folder of independent images add --image_based')


def people_stage(args, source, device, image_mode: bool):
    """Stage 1 of the pipeline, as the flags ask (`core.inference.video`): who is where in each frame."""
    from core.inference import video
    from utils.video.detection import full_image_box, load_anno_file
    from utils.video.tracking import SortTracker

    if args.use_gt:
        tracks = load_anno_file(args.anno_file, source.width, source.height)
        return video.GivenPeopleStage(tracks)
    if args.detector.lower() == 'blazepose' and not args.single_crop:
        if image_mode:
            # A photo's search (hundreds of landmark passes) outweighs every other stage, so its networks get
            # every core; in a video each stage runs on its own thread, one core each.
            return video.FoundPeopleStage(blazepose_finder(num_threads=usable_cores()))
        finder = blazepose_finder()
        from utils.video.people import PeopleTracker

        return video.TrackedPeopleStage(PeopleTracker(finder, search_every=args.search_every,
                                                      max_gap=args.max_track_gap, keep_history=False),
                                        smooth_sigma=args.bbox_smooth, min_track_len=args.min_track_len)
    detector = None if args.single_crop else make_detector(args, device)
    tracker = None if image_mode else SortTracker(max_age=args.max_track_gap)
    return video.DetectedPeopleStage(detector, args.tracker_batch_size, tracker, smooth_sigma=args.bbox_smooth,
                                     min_track_len=args.min_track_len,
                                     fallback=full_image_box if args.single_crop else None)


def sized_frames(source, sizes: dict, image_mode: bool):
    """The source's ``(index, frame)`` pairs, each frame's size noted in ``sizes`` (`record_size`)."""
    for index, frame in source.frames():
        record_size(sizes, index, frame, source, image_mode)
        yield index, frame


def render_stages(args, source, faces, device, out_dir: Path, image_mode: bool, meshes=None):
    """The rendering and writing stages (`core.inference.video`) for the flags and the output layout."""
    from core.constants import FOCAL_LENGTH
    from core.inference import video
    from utils.render.renderer import PyRenderer
    from utils.video.io import VideoWriter

    renderer = PyRenderer(faces=faces, focal_length=FOCAL_LENGTH * args.render_ratio, device=device)
    render = video.RenderStage(renderer, meshes or video.regressed_meshes, with_raw=args.with_raw,
                               empty_bg=args.empty_bg, sideview=args.sideview, render_ratio=args.render_ratio)
    name = source.path.stem if source.kind != 'folder' else source.path.name
    if image_mode:
        write = video.WriteStage(None, lambda index: out_dir / f'{source.names[index]}_pymaf.png')
    else:
        frames_dir = out_dir / f'{name}_output'
        write = video.WriteStage(VideoWriter(out_dir / f'{name}_result.mp4', fps=source.fps),
                                 None if args.no_frames else lambda index: frames_dir / f'{index:06d}.png')
    return [render, write]


def saved_meshes(results: dict[int, dict], height: int):
    """``meshes(work)`` for `Render` from a result file's people (``cam_t``, or the original's ``orig_cam``)."""
    from utils.geometry import orig_cam_to_cam_t

    by_frame: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for res in results.values():
        cam_t = res.get('cam_t')
        if cam_t is None:  # a result file of the original demo
            cam_t = orig_cam_to_cam_t(res['orig_cam'], height)
        for verts, t, f in zip(res['verts'], cam_t, res['frame_ids']):
            by_frame.setdefault(int(f), []).append((verts, t))

    def meshes(work):
        people = by_frame.get(work.index, [])
        return [v for v, _ in people], np.array([t for _, t in people]).reshape(-1, 3)
    return meshes


def body_model_for(predictor, flag: str):
    """The SMPL layer inside the predictor's network, which ``flag`` needs to re-pose bodies (DemoError)."""
    from core.inference.predictor import find_body_model

    try:
        return find_body_model(predictor.model)
    except ValueError as err:
        raise DemoError(f'{flag}: {err}') from err


def process(args, source, predictor, faces, out_dir: Path, device, log, clock) -> tuple[dict, int]:
    """Everything from frames to results in one streaming pipeline (`core.inference.pipeline`): people,
    regression, keypoints and fitting, smoothing, rendering and writing overlap. Returns the results
    ``{pid: entry}`` and the number of frames rendered."""
    from core.inference import video
    from core.inference.predictor import person_results

    image_mode = source.kind == 'image' or args.image_based
    sizes: dict[int, tuple[int, int]] = {}
    people = people_stage(args, source, device, image_mode)
    stages = [people, video.RegressionStage(predictor)]
    with_keypoints = isinstance(people, (video.TrackedPeopleStage, video.FoundPeopleStage))
    refining = with_keypoints and (refine_by_default(args) if args.refine is None else args.refine)
    smpl = body_model_for(predictor, '--refine') if refining else None
    fitting = video.KeypointStage(predictor, smpl, refining, args.bbox_scale) if with_keypoints else None
    stages += [fitting] if fitting is not None else []
    if args.smooth:
        stages.append(video.SmoothingStage(predictor, body_model_for(predictor, '--smooth'), source.fps,
                                           args.smooth_min_cutoff, args.smooth_beta))

    def nobody(index: int) -> None:
        log(f'nobody found in {source.names[index]}: no mesh (--single_crop takes the whole image as one person)')

    collect = video.CollectStage(nobody if image_mode else None)
    stages.append(collect)
    if not args.no_render:
        stages += render_stages(args, source, faces, device, out_dir, image_mode)
    rendered = drain(sized_frames(source, sizes, image_mode), stages, len(source), 'demo', clock)
    if with_keypoints:
        stats = (people.finder if hasattr(people, 'finder') else people.tracker.finder).stats
        log(f'blazepose: {len(collect.rows)} people; {stats["windows"]} detector windows, '
            f'{stats["landmark_runs"]} landmark passes')
    if refining:
        log(f'fitting: {int(fitting.stats["fitted"])} person-frames, keypoint error '
            f'{fitting.stats["error_before"]:.3f} -> {fitting.stats["error_after"]:.3f} (crop units)')
    return person_results(collect.rows), (rendered if not args.no_render else 0)


def render_saved(args, source, results, faces, out_dir: Path, device, clock) -> int:
    """``--recon_result_file``: the saved meshes drawn over the frames (decoding, rendering and writing
    overlap). Returns the number of frames written."""
    from core.inference.video import FrameWork

    image_mode = source.kind == 'image' or args.image_based
    stages = render_stages(args, source, faces, device, out_dir, image_mode, saved_meshes(results, source.height))
    frames = (FrameWork(index, frame) for index, frame in source.frames())
    return drain(frames, stages, len(source), 'rendering', clock)


def drain(items, stages: list, total: int, desc: str, clock) -> int:
    """Run the pipeline over ``items`` with a progress bar; returns how many items came out of it. A last
    stage that writes a video is closed also when a stage fails, so that the file is complete as far as
    it goes."""
    from tqdm import tqdm

    from core.inference.pipeline import run_pipeline
    from utils.heap import HeapTrimmer

    count = 0
    trim = HeapTrimmer()   # without it, freed memory piles up in the allocator over a long video
    try:
        with tqdm(total=total, desc=desc, unit='frame', disable=None) as bar:
            for _ in run_pipeline(items, stages, clock=clock):
                count += 1
                bar.update(1)
                trim()
    finally:
        if hasattr(stages[-1], 'close'):
            stages[-1].close()
    return count


def save_results(args, results, out_dir, source, faces, log, timer, smpl=None) -> None:
    """Write output.pkl, output.npz, the optional meshes and the optional animation export."""
    from utils.export.results import save_obj, save_output_npz, save_output_pkl

    start = time.perf_counter()
    save_output_pkl(results, out_dir / 'output.pkl')
    save_output_npz(results, out_dir / 'output.npz', source.width, source.height, source.fps, faces,
                    source.names[:len(source)] or None)
    if args.save_obj:
        for pid, res in results.items():
            for verts, f in zip(res['verts'], res['frame_ids']):
                save_obj(out_dir / 'meshes' / f'{pid:04d}' / f'{int(f):06d}.obj', verts, faces)
    if args.export is not None and results:
        from utils.export.animation import FORMATS, export_results

        body_model = 'demo'
        if smpl is None:
            from models.build import load_body_model

            smpl, body_model = load_body_model()
        written = export_results(results, out_dir / 'export', source.fps, tuple(args.export) or FORMATS, smpl=smpl,
                                 img_height=source.height, body_model=body_model)
        log(f'export: {len(written)} files in export/ (see docs/export.md)')
    timer.add('saving', time.perf_counter() - start, len(source))


def saved_faces(result_file: str | Path) -> np.ndarray:
    """Triangles for re-rendering a result file: the ``faces`` of the output.npz beside it, else the body model's."""
    npz = Path(result_file).with_name('output.npz')
    if npz.is_file():
        try:
            with np.load(npz) as data:
                if 'faces' in data.files:
                    return np.asarray(data['faces'], dtype=np.int64)
        except (OSError, ValueError):
            pass
    from models.smpl import get_smpl_faces

    return get_smpl_faces()


def run(args: argparse.Namespace, log=print, model_factory=None, faces: np.ndarray | None = None) -> dict:
    """Run the demo; returns a summary dict. Raises DemoError (and library errors) on bad input.

    ``model_factory`` and ``faces`` replace the PyMAF network and SMPL's triangles (tests, embedding).
    """
    from core.inference.pipeline import StageClock
    from core.inference.predictor import resolve_device
    from models.smpl import get_smpl_faces
    from utils.export.results import load_output_pkl
    from utils.video.io import open_frame_source

    total_start = time.perf_counter()
    for note in check_flags(args):
        log(f'note: {note}')
    if not args.recon_result_file:
        from core.inference.backends import check_backend

        check_backend(args.backend, args.precision, resolve_device(args.device))
    if args.webcam:
        return run_live_demo(args, log, model_factory, faces)
    input_path = Path(args.vid_file or args.image_folder or args.img_file)
    source = open_frame_source(input_path, max_frames=None if args.img_file else args.max_frames)
    device = resolve_device(args.device)
    name = input_path.stem if source.kind != 'folder' else input_path.name
    out_dir = Path(args.output_folder) / name
    log(f'input: {source.kind} {input_path} ({len(source)} frames, {source.width}x{source.height}, '
        f'{source.fps:.2f} fps); device: {device}; output: {out_dir}')
    clock = StageClock()
    rendered = 0
    with cli.staged_output(out_dir) as tmp_dir:
        if args.recon_result_file:
            results = load_output_pkl(args.recon_result_file)
            if faces is None:
                faces = saved_faces(args.recon_result_file)
            if not results:
                log(f'nobody in {args.recon_result_file}: nothing to render')
            elif not args.no_render:
                start = time.perf_counter()
                rendered = render_saved(args, source, results, faces, tmp_dir, device, clock)
                clock.add('pipeline (wall)', time.perf_counter() - start, rendered)
        else:
            predictor = build_predictor(args, device, log, model_factory)
            smpl = predictor.body_model
            if faces is None:
                faces = smpl.faces if smpl is not None else get_smpl_faces()
            start = time.perf_counter()
            with single_threaded_ops():
                results, rendered = process(args, source, predictor, faces, tmp_dir, device, log, clock)
            clock.add('pipeline (wall)', time.perf_counter() - start, len(source))
            if results:
                save_results(args, results, tmp_dir, source, faces, log, clock, smpl)
            else:
                log(f'nobody was found in {input_path}: no results to save'
                    + ('' if args.use_gt else ' (try --detector yolo with a YOLO weights file, --use_gt, or for '
                                              'an image --single_crop to take the whole image as one person)'))
                empty_folder(tmp_dir)
                rendered = 0
    summary = {'frames': len(source), 'people': len(results), 'output': str(out_dir), 'device': str(device),
               'rendered': rendered, 'seconds': dict(clock.seconds),
               'total_seconds': time.perf_counter() - total_start}
    log(f'done: {len(source)} frames, {len(results)} people, {rendered} frames rendered -> {out_dir}')
    for line in clock.lines():
        log(line)
    log(f'  {"total (with loading)":<22s} {summary["total_seconds"]:8.2f} s')
    return summary


@contextlib.contextmanager
def single_threaded_ops():
    """PyTorch's and OpenCV's operations on one thread each while the pipeline runs: its stages already keep
    the cores busy, and splitting the small operations of fitting, rendering and writing across threads
    would only make the stages wait for each other."""
    import cv2
    import torch

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def empty_folder(folder: Path) -> None:
    """Remove what a run wrote into its staging folder (a run that finds nobody leaves no outputs)."""
    import shutil

    for entry in folder.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def run_live_demo(args: argparse.Namespace, log=print, model_factory=None, faces: np.ndarray | None = None) -> dict:
    """``--webcam``: frames are processed as they arrive (core/inference/live.py); outputs go to
    <output_folder>/webcam."""
    from core.inference.live import run_live
    from core.inference.predictor import resolve_device

    start = time.perf_counter()
    device = resolve_device(args.device)
    out_dir = Path(args.output_folder) / 'webcam'
    log(f'input: live {args.webcam}; device: {device}; output: {out_dir}')
    from core.inference.pipeline import StageClock

    clock = StageClock()
    with cli.staged_output(out_dir) as tmp_dir:
        predictor = build_predictor(args, device, log, model_factory)
        smpl = predictor.body_model
        if faces is None:
            from models.smpl import get_smpl_faces

            faces = smpl.faces if smpl is not None else get_smpl_faces()
        detector = make_detector(args, device)
        results, source = run_live(args.webcam, predictor, detector, faces, tmp_dir,
                                   max_track_gap=args.max_track_gap, render=not args.no_render,
                                   display=args.display, max_frames=args.max_frames, log=log)
        if hasattr(detector, 'landmarks'):
            from core.inference.keypoints import attach_keypoints

            attach_keypoints(results, detector.landmarks)
        clock.add('live', time.perf_counter() - start, len(source))
        if results:
            save_results(args, results, tmp_dir, source, faces, log, clock, smpl)
    log(f'done: {len(source)} frames, {len(results)} people -> {out_dir}')
    return {'frames': len(source), 'people': len(results), 'output': str(out_dir), 'device': str(device),
            'rendered': 0 if args.no_render else len(source), 'total_seconds': time.perf_counter() - start}


def main(argv: list[str] | None = None, **run_kwargs) -> int:
    """CLI entry point: returns the exit status (0 ok, 1 a user's mistake, 2 a bug, 130 Ctrl-C; utils/cli.py).

    ``run_kwargs`` go to `run` (``model_factory``, ``faces``).
    """
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger('core.path_config').setLevel(logging.ERROR)  # the demo announces the stand-in itself
    return cli.run_main(lambda: run(build_parser().parse_args(argv), **run_kwargs), prog='demo.py')


if __name__ == '__main__':
    sys.exit(main())
