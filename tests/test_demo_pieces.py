"""Tests of the demo's building blocks that need no model: video I/O, detection, tracking, smoothing, crops."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.inference import CropDataset, crop_person
from utils.video.detection import HogDetector, build_detector, full_image_box, load_anno_file, nms
from utils.video.io import (
    VideoWriter,
    _deflate_zlib,
    default_deflate,
    encode_png,
    natural_key,
    open_frame_source,
    read_image_rgb,
    write_png,
)
from utils.video.smoothing import axis_angle_to_quat, one_euro, quat_to_axis_angle, smooth_pose_aa
from utils.video.tracking import fill_gaps, iou_matrix, track_detections

DANCER = Path(__file__).resolve().parents[2] / 'shared' / 'media' / 'dancer.mp4'


def _moving_square_frames(num: int, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    """Frames with a white square moving right on a dark background (RGB uint8)."""
    width, height = size
    frames = []
    for t in range(num):
        img = np.full((height, width, 3), 30, np.uint8)
        img[20:40, 10 + 4 * t:30 + 4 * t] = (250, 60, 20)
        frames.append(img)
    return frames


def test_video_roundtrip_h264(tmp_path):
    frames = _moving_square_frames(6, size=(97, 63))  # odd size: padded to even for yuv420p
    path = tmp_path / 'clip.mp4'
    with VideoWriter(path, fps=12.5) as writer:
        for f in frames:
            writer.write(f)
    assert path.read_bytes()[4:8] == b'ftyp'
    source = open_frame_source(path)
    assert source.kind == 'video' and abs(source.fps - 12.5) < 0.01
    assert (source.width, source.height) == (98, 64) and len(source) == 6
    read = [f for _, f in source.frames()]
    assert len(read) == 6
    # The red square is where it was drawn (lossy codec: compare the colour in its interior).
    assert read[3][30, 24:36, 0].mean() > 180 and read[3][30, 24:36, 2].mean() < 90
    # Colours survive the RGB -> yuv420p (BT.601) -> RGB round trip away from edges.
    np.testing.assert_allclose(read[3][50:60, 60:90].mean((0, 1)), 30, atol=3)
    np.testing.assert_allclose(read[3][24:36, 26:38].mean((0, 1)), (250, 60, 20), atol=8)
    assert len(list(open_frame_source(path, max_frames=4).frames())) == 4
    batches = list(source.batches(4))
    assert [len(i) for i, _ in batches] == [4, 2]


@pytest.mark.parametrize('size', [(1, 1), (5, 3), (97, 63)])
def test_png_encoder_is_lossless(tmp_path, size):
    import cv2
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[: height // 2] = image[: height // 2] // 64 * 64  # flat areas as well as noise
    for deflate in {default_deflate(), _deflate_zlib}:
        data = encode_png(image, deflate)
        assert data[:8] == b'\x89PNG\r\n\x1a\n'
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded[..., ::-1], image)
    write_png(tmp_path / 'sub' / 'frame.png', image[:, ::-1])  # a non-contiguous view, a new folder
    with Image.open(tmp_path / 'sub' / 'frame.png') as png:
        assert png.mode == 'RGB'
        np.testing.assert_array_equal(np.asarray(png), image[:, ::-1])
    with pytest.raises(ValueError, match='uint8 RGB'):
        encode_png(image[..., 0])


def test_folder_and_image_sources(tmp_path):
    frames = _moving_square_frames(3)
    for name, f in zip(['f10.png', 'f2.png', 'f1.jpg'], frames):
        write_png(tmp_path / name, f) if name.endswith('.png') else __import__('cv2').imwrite(
            str(tmp_path / name), f[..., ::-1])
    (tmp_path / 'notes.txt').write_text('not an image')
    source = open_frame_source(tmp_path)
    assert source.kind == 'folder' and source.names == ['f1', 'f2', 'f10']
    got = dict(source.frames())
    np.testing.assert_array_equal(got[1], frames[1])  # f2.png, lossless
    single = open_frame_source(tmp_path / 'f10.png')
    assert single.kind == 'image' and len(single) == 1 and single.names == ['f10']
    assert sorted(['a10', 'a9', 'a100'], key=natural_key) == ['a9', 'a10', 'a100']


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        open_frame_source(tmp_path / 'missing.mp4')
    (tmp_path / 'broken.mp4').write_bytes(b'this is not a video')
    with pytest.raises(ValueError, match='cannot read video|no readable frames'):
        open_frame_source(tmp_path / 'broken.mp4')
    (tmp_path / 'broken.png').write_bytes(b'nope')
    with pytest.raises(ValueError, match='cannot decode image'):
        read_image_rgb(tmp_path / 'broken.png')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images'):
        open_frame_source(tmp_path / 'empty')


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [20, 20, 30, 30, 0.5]], np.float32)
    kept = nms(boxes, 0.4)
    assert kept.shape == (2, 5) and kept[0, 4] == pytest.approx(0.9) and kept[1, 0] == 20
    iou = iou_matrix(boxes[:1], boxes)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 2] == 0.0
    assert 0.6 < iou[0, 1] < 0.75


@pytest.mark.skipif(not DANCER.exists(), reason='shared media not present on this machine')
def test_hog_finds_the_dancer():
    source = open_frame_source(DANCER, max_frames=60)
    detector = HogDetector()
    found = 0
    for index, frame in source.frames():
        if index % 6:
            continue
        boxes = detector.detect(frame)
        if len(boxes):
            found += 1
            x1, y1, x2, y2, _ = boxes[0]
            # A standing person: taller than wide, a sizeable part of the 1080 px frame.
            assert y2 - y1 > 1.2 * (x2 - x1) and y2 - y1 > 250
    assert found >= 9  # of 10 sampled frames


def test_detector_factory_messages(tmp_path):
    with pytest.raises(ValueError, match='never implemented'):
        build_detector('maskrcnn')
    with pytest.raises(ValueError, match='unknown detector'):
        build_detector('foo')
    # ultralytics is not a dependency: asking for YOLO without it says how to get it (with it, a missing
    # weights file is fetched by name, or named in a FileNotFoundError where the machine is offline).
    with pytest.raises(ImportError, match='pip install ultralytics'):
        build_detector('yolo', weights=tmp_path / 'yolov8n.pt')
    np.testing.assert_allclose(full_image_box(640, 480), [320, 240, 640, 640])


def test_anno_file(tmp_path):
    data = [{'idx': 7, 'frames': [
        {'frame_id': 2, 'rect': {'tl': {'x': 0.5, 'y': 0.0}, 'br': {'x': 0.75, 'y': 1.0}}},
        {'frame_id': 1, 'rect': {'tl': {'x': 0.25, 'y': 0.25}, 'br': {'x': 0.5, 'y': 0.5}}}]}]
    path = tmp_path / 'anno.json'
    path.write_text(json.dumps(data))
    tracks = load_anno_file(path, width=200, height=100)
    np.testing.assert_array_equal(tracks[7]['frames'], [1, 2])
    np.testing.assert_allclose(tracks[7]['bbox'], [[75, 37.5, 50, 50], [125, 50, 100, 100]])
    path.write_text(json.dumps([{'idx': 1}]))
    with pytest.raises(ValueError, match='not an anno file'):
        load_anno_file(path, 200, 100)


def _crossing_detections(num: int = 40, drop_overlap: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two people walking towards each other along x; returns detections and the true box of person A."""
    dets, truth_a = [], []
    for t in range(num):
        xa, xb = 20 + 8 * t, 340 - 8 * t
        a = [xa, 100, xa + 40, 200, 0.9]
        b = [xb, 104, xb + 40, 204, 0.8]
        truth_a.append(np.array(a[:4]))
        overlapping = abs(xa - xb) < 30
        frame_dets = [a] if (drop_overlap and overlapping) else [a, b]  # B hidden behind A while they overlap
        dets.append(np.array(frame_dets, np.float32))
    return dets, truth_a


def test_tracker_keeps_crossing_people_apart():
    dets, truth_a = _crossing_detections()
    tracks = track_detections(dets, smooth_sigma=0.0)
    assert len(tracks) == 2
    starts = {pid: tr['bbox'][0, 0] for pid, tr in tracks.items()}
    pid_a = min(starts, key=starts.get)
    pid_b = max(starts, key=starts.get)
    # A's track moves right over the whole clip, B's left: identities did not swap at the crossing.
    assert np.all(np.diff(tracks[pid_a]['bbox'][:, 0]) > 0)
    assert np.all(np.diff(tracks[pid_b]['bbox'][:, 0]) < 0)
    assert len(tracks[pid_a]['frames']) == 40
    # B's hidden frames are filled by interpolation, so B is present in every frame too.
    np.testing.assert_array_equal(tracks[pid_b]['frames'], np.arange(40))
    centre_a = np.array([(b[0] + b[2]) / 2 for b in truth_a])
    np.testing.assert_allclose(tracks[pid_a]['bbox'][:, 0], centre_a, atol=1e-3)
    assert np.all(tracks[pid_a]['bbox'][:, 2] == tracks[pid_a]['bbox'][:, 3])


def test_tracker_survives_a_partial_box_and_a_miss():
    # Frames 0-9 a full-body box, frame 10 only the upper body (as HOG gives during a spin), 11 missed.
    full = [800, 200, 1030, 760, 1.0]
    dets = [np.array([full])] * 10 + [np.array([[940, 246, 1068, 582, 1.0]]), np.zeros((0, 5))]
    dets += [np.array([[801, 150, 1023, 723, 1.0]])] * 5
    tracks = track_detections(dets)
    assert list(tracks) == [1]
    np.testing.assert_array_equal(tracks[1]['frames'], np.arange(17))


def test_tracker_handles_empty_and_short_tracks():
    assert track_detections([np.zeros((0, 5))] * 5) == {}
    dets = [np.array([[0, 0, 10, 20, 1.0]])] + [np.zeros((0, 5))] * 3 + [np.array([[100, 0, 110, 20, 1.0]])]
    tracks = track_detections(dets, min_track_len=1)
    assert len(tracks) == 2 and all(len(t['frames']) == 1 for t in tracks.values())
    assert track_detections(dets, min_track_len=2) == {}
    frames, boxes = fill_gaps(np.array([0, 3, 30]), np.array([[0.0] * 4, [3.0] * 4, [30.0] * 4]), max_gap=5)
    np.testing.assert_array_equal(frames, [0, 1, 2, 3, 30])
    np.testing.assert_allclose(boxes[:, 0], [0, 1, 2, 3, 30])


def test_box_smoothing_reduces_jitter():
    rng = np.random.default_rng(0)
    dets = []
    for t in range(60):
        jitter = rng.normal(0, 3, 4)
        dets.append(np.array([[100 + t + jitter[0], 50 + jitter[1], 160 + t + jitter[2], 200 + jitter[3], 1]]))
    raw = track_detections(dets, smooth_sigma=0.0)[1]['bbox']
    smooth = track_detections(dets, smooth_sigma=2.0)[1]['bbox']
    truth_cx = 130 + np.arange(60)
    assert np.abs(smooth[5:-5, 0] - truth_cx[5:-5]).mean() < 0.6 * np.abs(raw[5:-5, 0] - truth_cx[5:-5]).mean()


def test_quaternion_roundtrip_and_pose_smoothing():
    rng = np.random.default_rng(1)
    aa = rng.normal(0, 1, (50, 3))
    aa *= (np.minimum(np.linalg.norm(aa, axis=1), 3.0) / np.linalg.norm(aa, axis=1))[:, None]
    np.testing.assert_allclose(quat_to_axis_angle(axis_angle_to_quat(aa)), aa, atol=1e-9)
    # A rotation of about pi about z whose axis-angle flips sign every frame (pi - e vs. -(pi - e)):
    # smoothing in axis-angle space would average to zero; in quaternion space it stays near pi.
    t = np.arange(40)
    angles = np.pi - 0.02 + 0.01 * np.sin(t)
    pose = np.zeros((40, 24, 3))
    pose[:, 0, 2] = np.where(t % 2 == 0, angles, -(2 * np.pi - angles))
    smoothed = smooth_pose_aa(pose.reshape(40, 72), fps=30)
    assert smoothed.shape == (40, 72)
    assert np.all(np.linalg.norm(smoothed[:, :3], axis=1) > np.pi - 0.1)
    np.testing.assert_allclose(smoothed[:, 3:], 0, atol=1e-6)


def test_one_euro_filters_noise_and_follows_steps():
    rng = np.random.default_rng(2)
    clean = np.concatenate([np.zeros(60), np.ones(60)])
    noisy = clean + rng.normal(0, 0.05, 120)
    out = one_euro(noisy, fps=30, min_cutoff=1.0, beta=0.5)
    assert np.std(out[20:60] - clean[20:60]) < 0.5 * np.std(noisy[20:60] - clean[20:60])
    assert abs(out[-1] - 1.0) < 0.1


def test_crop_person_convention():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[90:110, 140:160] = 255  # a 20 px white square centred at (149.5, 99.5)
    norm, raw = crop_person(frame, [149.5, 99.5, 40, 40], scale=1.0)
    assert norm.shape == (3, 224, 224) and norm.dtype == torch.float32 and raw.shape == (224, 224, 3)
    # The window of side 40 maps to 224 px: the 20 px square covers the central half of the crop.
    rows = np.nonzero(raw[:, 112, 0] > 127)[0]
    assert abs(rows[0] - 56) <= 3 and abs(rows[-1] - 167) <= 3
    white = (1.0 - 0.485) / 0.229
    assert norm[0, 112, 112].item() == pytest.approx(white, abs=1e-5)
    black = (0.0 - 0.406) / 0.225
    _, raw_out = crop_person(frame, [5, 5, 100, 100])
    assert raw_out[0, 0].sum() == 0  # constant black border outside the image
    ds = CropDataset({3: frame}, np.array([[149.5, 99.5, 40, 40]]), [3], scale=2.0)
    item = ds[0]
    assert item['frame_id'] == 3 and item['img'][2, 0, 0].item() == pytest.approx(black, abs=1e-5)


def test_yolo_detector_with_a_fake_ultralytics(tmp_path, monkeypatch):
    """The YOLO adapter's conversion (ultralytics itself is optional and not installed in CI)."""
    import sys
    import types

    calls = {}

    class FakeBoxes:
        xyxy = torch.tensor([[10.0, 20.0, 50.0, 120.0]])
        conf = torch.tensor([0.75])

    class FakeYOLO:
        def __init__(self, path):
            calls['path'] = path

        def predict(self, frames, **kwargs):
            calls.update(kwargs)
            calls['channels_last_is_bgr'] = frames[0][0, 0, 0] == 3
            return [types.SimpleNamespace(boxes=FakeBoxes()) for _ in frames]

    monkeypatch.setitem(sys.modules, 'ultralytics', types.SimpleNamespace(YOLO=FakeYOLO))
    weights = tmp_path / 'yolov8n.pt'
    weights.write_bytes(b'weights')
    detector = build_detector('yolo', weights=weights, score_threshold=0.4)
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[..., 2] = 3  # blue in RGB becomes the first channel in BGR
    out = detector([frame, frame])
    assert len(out) == 2 and out[0].shape == (1, 5)
    np.testing.assert_allclose(out[1][0], [10, 20, 50, 120, 0.75])
    assert calls['classes'] == [0] and calls['conf'] == 0.4 and calls['path'] == str(weights)
    assert calls['channels_last_is_bgr']
