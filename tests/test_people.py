"""BlazePose decoding, the people finder, keypoint fitting and the demo's keypoint stages."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.fitting import BLAZEPOSE_TO_J49, JOINT_LIMITS, FitWeights, clamp_to_limits, fit_keypoints, within_limits
from utils.geometry import batch_rodrigues, projection
from utils.video import blazepose
from utils.video.blazepose import (
    LANDMARK_NAMES,
    PALM_LAYOUT,
    PALM_SIZE,
    HandLandmarker,
    ModelFileError,
    PalmDetector,
    PoseDetector,
    PoseLandmarker,
    alignment_roi,
    roi_affine,
    ssd_anchors,
)

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / 'shared' / 'media'
REFERENCE = json.loads((Path(__file__).parent / 'data' / 'blazepose_reference.json').read_text())


def _rgb(path: Path) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imread(str(path))[..., ::-1])


def _dancer_frame0() -> np.ndarray:
    from utils.video.io import open_frame_source

    source = open_frame_source(MEDIA / 'dancer.mp4', max_frames=1)
    return next(iter(source.frames()))[1]


@pytest.fixture(scope='module')
def nets():
    return PoseDetector(), PoseLandmarker(keep_mask=True)


def test_anchor_grid_matches_the_detector_output():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])
    assert len(LANDMARK_NAMES) == 33
    palm = ssd_anchors(PALM_SIZE, PALM_LAYOUT)
    assert palm.shape == (2016, 2) and np.allclose(palm[-1], [11.5 / 12, 11.5 / 12])


def test_roi_geometry():
    roi = alignment_roi(np.array([100.0, 200.0]), np.array([100.0, 150.0]))
    assert np.allclose(roi, [100, 200, 125, 0])          # upright: scale point straight above the mid-hip
    tilted = alignment_roi(np.array([0.0, 0.0]), np.array([10.0, 0.0]))
    assert np.isclose(tilted[3], np.pi / 2)               # scale point to the right: crop "up" is image right
    affine = roi_affine(tilted, 256)
    top_centre = affine[:, :2] @ np.array([128.0, 0.0]) + affine[:, 2]
    assert np.allclose(top_centre, [12.5, 0.0])


@pytest.mark.parametrize('name', ['coco', 'dancer0'])
def test_decoding_matches_mediapipe_on_real_images(nets, name):
    """Our detector + landmark decoding against MediaPipe's own answer on the same real image."""
    detector, landmarker = nets
    image = _rgb(MEDIA / 'COCO_val2014_000000019667.jpg') if name == 'coco' else _dancer_frame0()
    ref = REFERENCE[name]
    h, w = image.shape[:2]
    assert [h, w] == ref['shape'][:2]
    dets = detector.detect(image)
    assert len(dets) == 1 and dets[0].score > 0.9
    pose = landmarker(image, dets[0].roi)
    landmarks = np.array(ref['landmarks'])
    pixel_error = np.abs(pose.image[:, :2] - landmarks[:, :2] * [w, h])
    assert pixel_error.max() < 0.01 * max(h, w), pixel_error.max()
    assert np.abs(pose.visibility - landmarks[:, 3]).max() < 0.01
    assert np.abs(pose.world - np.array(ref['world'])).max() < 0.01
    assert pose.score > 0.99


def test_palm_decoding_matches_mediapipe_on_a_real_image():
    """Our palm detector decoding against MediaPipe's own palm detection on the dancer's hand (frame 0)."""
    ref = REFERENCE['palm_dancer0']
    window = np.array(ref['window'], dtype=np.float64)
    corner, side = window[:2] - window[2] / 2, window[2]
    hands = PalmDetector().detect_window(_dancer_frame0(), window)
    assert len(hands) == len(ref['detections']) == 1
    hand, expected = hands[0], ref['detections'][0]
    assert abs(hand.score - expected['score']) < 1e-3
    assert np.abs(hand.box - (np.array(expected['box']) * side + np.tile(corner, 2))).max() < 0.5
    assert np.abs(hand.keypoints - (np.array(expected['keypoints']) * side + corner)).max() < 0.5
    assert np.allclose(hand.center, hand.box.reshape(2, 2).mean(axis=0)) and 20 < hand.side < 30


def test_hand_landmarks_match_mediapipe_on_a_real_image():
    """The hand crop of a palm detection and the hand landmark model's decoding against MediaPipe's hand
    landmarks on the dancer's hand (frame 0); a shoe that the palm detector takes for a palm is no hand."""
    ref = REFERENCE['hand_dancer0']
    window = np.array(ref['window'], dtype=np.float64)
    corner, side = window[:2] - window[2] / 2, window[2]
    frame = _dancer_frame0()
    palm = PalmDetector().detect_window(frame, window)[0]
    hand = HandLandmarker()(frame, palm)
    assert hand.score > 0.9 and hand.image.shape == (21, 3)
    assert np.abs(hand.image[:, :2] - (np.array(ref['landmarks'])[:, :2] * side + corner)).max() < 1.0
    shoes = PalmDetector().detect_window(frame, np.array([750.0, 720.0, 300.0]))
    assert len(shoes) == 1 and HandLandmarker()(frame, shoes[0]).score < 0.5


@pytest.mark.parametrize('model, name', [(PoseDetector, 'pose_detection.tflite'),
                                         (PalmDetector, 'palm_detection_full.tflite'),
                                         (HandLandmarker, 'hand_landmark_full.tflite')])
def test_missing_model_file_names_file_and_fix(tmp_path, model, name):
    with pytest.raises(ModelFileError) as err:
        model(model_dir=tmp_path)
    message = str(err.value)
    assert name in message and 'assets/blazepose' in message and '--detector hog' in message


def test_demo_missing_model_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    import demo

    monkeypatch.setattr(blazepose, 'ASSET_DIR', tmp_path)
    status = demo.main(['--img_file', str(MEDIA / 'COCO_val2014_000000019667.jpg'), '--output_folder',
                        str(tmp_path / 'out'), '--no_render'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1 and err[0].startswith('error: ')
    assert 'pose_detection.tflite' in err[0] and 'assets/blazepose' in err[0]
    assert not (tmp_path / 'out' / 'COCO_val2014_000000019667').exists()


def test_finder_finds_the_skaters_not_the_spectators():
    from utils.video.people import build_finder

    image = _rgb(MEDIA / 'skates.png')
    finder = build_finder()
    people = finder.find(image)
    assert 9 <= len(people) <= 13, 'more people than the 13 skaters'
    # without the final mask check, a pose blended from two overlapping skaters makes a fourteenth
    finder.drop_covered = lambda found, known, shape, scale: found
    assert len(finder.find(image)) > len(people)
    for pose in people:
        x1, y1, x2, y2 = pose.box()
        assert (y1 + y2) / 2 > 150, 'a person found among the spectators at the top of the picture'
        assert pose.score > 0.5


def test_nobody_in_an_empty_image():
    from utils.video.people import build_finder

    rng = np.random.default_rng(0)
    image = (rng.random((360, 480, 3)) * 40 + 100).astype(np.uint8)
    assert build_finder().find(image) == []


@pytest.fixture(scope='module')
def body():
    from core.path_config import body_model_paths
    from models.smpl import SMPL

    paths = body_model_paths(standin=True)
    return SMPL(paths.smpl_dir, joint_regressor_extra=paths.joint_regressor_extra)


def test_joints_only_equals_the_full_forward(body):
    torch.manual_seed(0)
    pose = torch.randn(4, 72) * 0.4
    betas = torch.randn(4, 10)
    rotmat = batch_rodrigues(pose.reshape(-1, 3)).view(4, 24, 3, 3)
    full = body(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1], pose2rot=False).joints
    assert torch.allclose(body.joints_only(betas, rotmat), full, atol=1e-5)


def _synthetic_keypoints(body, pose_aa, betas, cam):
    """BlazePose-ordered keypoints (crop units) and world landmarks of a posed body."""
    rotmat = batch_rodrigues(torch.as_tensor(pose_aa).reshape(-1, 3)).view(-1, 24, 3, 3)
    joints = body.joints_only(torch.as_tensor(betas), rotmat)
    kp2d = projection(joints, torch.as_tensor(cam)).numpy()
    n = len(pose_aa)
    keypoints = np.zeros((n, 33, 2), np.float32)
    world = np.zeros((n, 33, 3), np.float32)
    visibility = np.zeros((n, 33), np.float32)
    for src, dst in BLAZEPOSE_TO_J49.items():
        keypoints[:, src] = kp2d[:, dst]
        world[:, src] = joints[:, dst].numpy()
        visibility[:, src] = 1.0
    return keypoints, visibility, world


def test_fit_lowers_keypoint_error_and_respects_joint_limits(body):
    rng = np.random.default_rng(1)
    n = 6
    limits = JOINT_LIMITS.reshape(23, 3, 2)
    target_pose = np.zeros((n, 72), np.float32)
    target_pose[:, 0] = np.pi                      # facing the camera, as the regressor's outputs do
    target_pose.reshape(n, 24, 3)[:, 1:] = rng.uniform(0.6 * limits[..., 0], 0.6 * limits[..., 1], (n, 23, 3))
    betas = rng.normal(0, 0.5, (n, 10)).astype(np.float32)
    cam = np.tile(np.array([[0.9, 0.0, 0.2]], np.float32), (n, 1))
    keypoints, visibility, world = _synthetic_keypoints(body, target_pose, betas, cam)
    start_pose = target_pose.copy()
    start_pose.reshape(n, 24, 3)[:, 1:] += rng.normal(0, 0.35, (n, 23, 3)).astype(np.float32)
    start_pose = clamp_to_limits(torch.as_tensor(start_pose)).numpy()
    pose, _, _, stats = fit_keypoints(body, start_pose, np.zeros_like(betas), cam * 1.1, keypoints, visibility,
                                      world, weights=FitWeights(iterations=80))
    assert stats['error_after'] < 0.4 * stats['error_before'], stats
    assert within_limits(pose).all()


def test_fit_leaves_people_without_keypoints_alone(body):
    rng = np.random.default_rng(2)
    pose = rng.normal(0, 0.2, (3, 72)).astype(np.float32)
    pose[:, 0] = np.pi
    betas = rng.normal(0, 0.5, (3, 10)).astype(np.float32)
    cam = np.tile(np.array([[0.9, 0.0, 0.2]], np.float32), (3, 1))
    keypoints = rng.uniform(-0.5, 0.5, (3, 33, 2)).astype(np.float32)
    visibility = np.ones((3, 33), np.float32)
    has = np.array([True, False, True])
    new_pose, new_betas, new_cam, stats = fit_keypoints(body, pose, betas, cam, keypoints, visibility, None,
                                                        has_keypoints=has, weights=FitWeights(iterations=5))
    assert stats['fitted'] == 2
    assert np.array_equal(new_pose[1], pose[1]) and np.array_equal(new_betas[1], betas[1])
    assert np.array_equal(new_cam[1], cam[1])
    assert not np.array_equal(new_pose[0], pose[0])


def test_attach_keypoints_marks_bridged_frames(nets):
    from core.inference.keypoints import attach_keypoints

    detector, landmarker = nets
    image = _rgb(MEDIA / 'COCO_val2014_000000019667.jpg')
    pose = landmarker(image, detector.detect(image)[0].roi)
    results = {1: {'frame_ids': np.array([0, 1, 2])}}
    attach_keypoints(results, {1: {0: pose, 2: pose}})
    kp2d, kp3d = results[1]['keypoints_2d'], results[1]['keypoints_3d']
    assert kp2d.shape == (3, 33, 3) and kp3d.shape == (3, 33, 3)
    assert np.allclose(kp2d[0, :, :2], pose.image[:, :2]) and np.allclose(kp2d[0, :, 2], pose.visibility)
    assert np.isnan(kp2d[1, :, :2]).all() and (kp2d[1, :, 2] == 0).all() and np.isnan(kp3d[1]).all()


def _pose_at(box: tuple[float, float, float, float]) -> blazepose.PoseLandmarks:
    """A stand-in pose whose landmarks span ``box`` (for the change gate, which only reads the box)."""
    x1, y1, x2, y2 = box
    image = np.zeros((33, 3), np.float32)
    image[:, 0] = np.linspace(x1, x2, 33)
    image[:, 1] = np.linspace(y1, y2, 33)
    ones = np.ones(33, np.float32)
    roi = np.array([(x1 + x2) / 2, (y1 + y2) / 2, y2 - y1, 0.0], np.float32)
    return blazepose.PoseLandmarks(1.0, image, ones, ones, np.zeros((33, 3), np.float32), roi, roi)


def test_change_gate_sends_the_search_only_where_someone_new_may_be():
    from utils.video.people import ChangeGate, search_windows

    rng = np.random.default_rng(3)
    background = (rng.random((360, 640, 3)) * 60 + 80).astype(np.uint8)
    windows = search_windows(360, 640)
    gate = ChangeGate()
    followed = _pose_at((280, 80, 360, 300))
    first = background.copy()
    first[80:300, 280:360] = 20
    snapshot = gate.snapshot(first, [followed])
    gate.searched(snapshot, range(len(windows)))

    moved = background.copy()            # the followed person moved a little; nothing else changed
    moved[80:300, 300:380] = 20
    due, region = gate.due(gate.snapshot(moved, [_pose_at((300, 80, 380, 300))]), windows, moved.shape[:2])
    assert due == [] and not region.any()

    newcomer = moved.copy()              # someone walks in at the right edge
    newcomer[150:330, 590:640] = 230
    due, region = gate.due(gate.snapshot(newcomer, [_pose_at((300, 80, 380, 300))]), windows, moved.shape[:2])
    assert 0 in due                                          # the whole image
    for index in due:                                        # and only windows that reach the right edge
        cx, _, size = windows[index]
        assert cx + size / 2 > 590
    cells = np.argwhere(region)
    assert cells[:, 1].min() * gate.factor(moved.shape[:2]) >= 580


def test_tracker_follows_the_dancer_and_searches_little_in_between():
    """One dancer through 21 frames: one track; after the first full search, the searches for newcomers
    on the nearly unchanged stage run a window or two each, not the whole set."""
    from utils.video.detection import HogDetector
    from utils.video.io import open_frame_source
    from utils.video.people import PeopleTracker, build_finder, search_windows

    finder = build_finder(proposals=HogDetector().detect)
    tracker = PeopleTracker(finder, search_every=10, max_gap=15)
    source = open_frame_source(MEDIA / 'dancer.mp4', max_frames=21)
    windows_after_first = None
    for index, frame in source.frames():
        seen = tracker.update(index, frame)
        assert [track_id for track_id, _ in seen] == [1]
        if index == 0:
            windows_after_first = finder.stats['windows']
            assert windows_after_first >= len(search_windows(*frame.shape[:2]))
    tracks = tracker.tracks()
    assert len(tracks) == 1 and tracks[0].frames == list(range(21))
    assert finder.stats['windows'] - windows_after_first <= 4


def test_mirrored_pass_answers_for_the_same_person(nets):
    """The landmark model shown the crop flipped left to right, mapped back: the same landmarks (left still
    the person's left), world x back to the camera's axes, the same mask."""
    detector, landmarker = nets
    image = _rgb(MEDIA / 'COCO_val2014_000000019667.jpg')
    roi = detector.detect(image)[0].roi
    plain, mirrored = landmarker(image, roi), landmarker(image, roi, mirror=True)
    assert mirrored.score > 0.99
    size = float(roi[2])
    limbs = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    assert np.median(np.linalg.norm(plain.image[limbs, :2] - mirrored.image[limbs, :2], axis=1)) < 0.02 * size
    assert np.linalg.norm(plain.image[11, :2] - mirrored.image[11, :2]) < np.linalg.norm(
        plain.image[11, :2] - mirrored.image[12, :2])
    assert np.median(np.abs(plain.world[limbs] - mirrored.world[limbs])) < 0.05
    both = (plain.mask > 0.5) & (mirrored.mask > 0.5)
    assert both.sum() > 0.9 * ((plain.mask > 0.5) | (mirrored.mask > 0.5)).sum()


def test_people_cut_by_the_border_are_found_at_the_edges():
    """The dancer cut by the right border at her middle: the border search finds her (landmarks reaching
    past the border, the visible ones on her); on the whole frame, with her already found, it adds nobody."""
    from utils.video.detection import HogDetector
    from utils.video.people import build_finder, edge_rois, mask_scale

    frame = _dancer_frame0()
    rois = edge_rois(*frame.shape[:2], (0.5, 0.8))
    assert {side for _, side in rois} == {'left', 'right'}
    for roi, _ in rois:
        assert roi[0] in (0.0, frame.shape[1]) and roi[2] / 2 <= roi[1] <= frame.shape[0] - roi[2] / 2

    finder = build_finder(proposals=HogDetector().detect)

    def grid(image):
        scale = mask_scale(image.shape[:2])
        return np.zeros((round(image.shape[0] * scale), round(image.shape[1] * scale)), dtype=bool)

    cut = np.ascontiguousarray(frame[:, :900])
    people = finder.find_at_edges(cut, [], grid(cut))
    assert len(people) == 1
    x1, y1, x2, y2 = people[0].box()
    assert 540 < x1 < 640 and 100 < y1 < 220 and 750 < y2 < 880          # the dancer spans x 590-1210, y 160-810
    assert (people[0].image[:, 0] > 900).any()
    whole = finder.find(frame, thorough=False)
    assert finder.find_at_edges(frame, list(whole), grid(frame)) == []


def test_consensus_and_anchored_readings_stay_on_the_person(nets):
    """The median over ROI variants barely moves a clear single person's landmarks; a reading anchored on a
    detection keeps the torso where the detector put it."""
    from utils.video.people import build_finder, torso

    detector, _ = nets
    finder = build_finder()
    image = _rgb(MEDIA / 'COCO_val2014_000000019667.jpg')
    detection = detector.detect(image)[0]
    pose = finder.settle(image, detection.roi)
    agreed = finder.consensus(image, pose)
    size = float(pose.roi[2])
    limbs = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    assert np.median(np.linalg.norm(agreed.image[limbs, :2] - pose.image[limbs, :2], axis=1)) < 0.03 * size
    assert agreed.mask is pose.mask and np.array_equal(agreed.roi, pose.roi)
    anchored = finder.anchored(image, detection)
    hip, shoulders = torso(anchored)
    tolerance = finder.agree * float(detection.roi[2]) / blazepose.ROI_SCALE
    assert np.linalg.norm(hip - detection.keypoints[0]) < tolerance
    assert np.linalg.norm(shoulders - detection.keypoints[2]) < tolerance


def test_a_person_seen_only_by_an_arm_is_found_by_the_hand():
    """The dancer's frame cut left of her elbow: only her forearm and hand reach in from the left border. The
    search by hands finds her: one person, the wrist on her wrist (MediaPipe's landmarks on the whole frame),
    the body beyond the border at an adult's size (the box), the guessed landmarks outside the image barely
    weighted; nobody else (the bare studio). On the whole frame her hands are hers: nobody is added."""
    from utils.video.people import build_finder

    frame = _dancer_frame0()
    cut_x = 1010
    cut = np.ascontiguousarray(frame[:, cut_x:])
    finder = build_finder()
    people = finder.find(cut)
    assert len(people) == 1
    person = people[0]
    wrist = np.array(REFERENCE['dancer0']['landmarks'][15][:2]) * [1920, 1080] - [cut_x, 0]
    assert np.linalg.norm(person.image[15, :2] - wrist) < 25
    assert person.visibility[15] > 0.5 and person.image[13, 0] < person.image[15, 0]      # the arm points right
    x1, y1, x2, y2 = person.box()
    assert x1 < -200 and 400 < x2 - x1 < 700 and y1 < wrist[1] < y2      # she is ~470 px tall in the frame
    outside = person.image[:, 0] < 0
    assert outside[[11, 12, 23, 24]].all() and (person.visibility[outside] <= 0.2).all()
    assert (person.presence[outside] == 0).all()

    whole = finder.find(frame)
    assert len(whole) == 1 and finder.find_by_hands(frame, whole) == []


def test_hands_of_people_found_are_theirs_and_border_windows_cover_the_borders():
    from utils.video.blazepose import PalmDetection
    from utils.video.people import border_windows, owns_hand

    windows = border_windows(1080, 810, 0.35)
    side = 0.35 * 810
    assert {round(w[0], 3) for w in windows} == {round(side / 2, 3), round(810 - side / 2, 3)}
    ys = sorted({w[1] for w in windows})
    assert ys[0] == side / 2 and ys[-1] == 1080 - side / 2 and np.diff(ys).max() <= side / 2 + 1e-9

    person = _pose_at((100, 100, 300, 700))
    person.mask = np.zeros((256, 256), np.float32)
    near_wrist = PalmDetection(0.9, np.array([0, 0, 20, 20.0]), np.zeros((7, 2)))
    near_wrist.box = np.concatenate([person.image[15, :2] - 10, person.image[15, :2] + 10])
    far = PalmDetection(0.9, np.array([700, 900, 720, 920.0]), np.zeros((7, 2)))
    assert owns_hand(person, near_wrist, (1080, 810)) and not owns_hand(person, far, (1080, 810))


def test_people_overlapping_in_a_crowd_are_read_with_the_others_painted_out():
    """`crowded`: others' masks covering a tenth of a person's own mask make a crowd, side by side does not;
    `paint_out` fills the others' masks with the image's median colour except on the person's own mask."""
    from utils.video.people import crowded, paint_out

    own = np.zeros((100, 100), bool)
    own[20:80, 20:50] = True                   # 1800 pixels
    beside = np.zeros_like(own)
    beside[20:80, 52:90] = True
    overlapping = np.zeros_like(own)
    overlapping[20:80, 40:90] = True           # 600 of the person's pixels
    assert not crowded(own, [beside], 0.1) and crowded(own, [beside, overlapping], 0.1)
    assert not crowded(own, [overlapping], 0.4)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (100, 100, 3)).astype(np.uint8)
    painted = paint_out(image, [overlapping], keep=own)
    median = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
    assert (painted[overlapping & ~own] == median).all()
    assert (painted[own] == image[own]).all() and (painted[~overlapping] == image[~overlapping]).all()
    grown = paint_out(image, [beside], grow=0.02)
    assert (grown[20:80, 50] == median).all() and (grown[20:80, 47] == image[20:80, 47]).all()
