"""LSP 6-part evaluation: SPIN's colour lookup, the part renderer, the stand-in tables and eval.py end to end."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

import eval as eval_script
from core import path_config
from core.evaluation import metrics
from core.evaluation.evaluator import SegmentationEvaluator, render_silhouettes
from core.evaluation.protocol import load_eval_assets
from datasets.base_dataset import BaseDataset
from tests.lsp_helpers import exact_crop_cameras, make_exact_crop_lsp_set, perfect_prediction
from utils import part_utils
from utils.standin import LSP_PART_NAMES

HEAD, TORSO, LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG = range(1, 7)


@pytest.fixture(scope='module')
def neutral():
    return load_eval_assets(torch.device('cpu'))[0]['neutral']


@pytest.fixture(scope='module')
def face_parts(neutral):
    paths = path_config.body_model_paths()
    return part_utils.load_face_parts(paths.vertex_texture, paths.cube_parts, len(neutral.faces_tensor))


def _save_tables(folder, texture: np.ndarray, cube: np.ndarray) -> tuple[str, str]:
    paths = str(folder / 'vertex_texture.npy'), str(folder / 'cube_parts.npy')
    np.save(paths[0], texture)
    np.save(paths[1], cube)
    return paths


def test_lookup_follows_spins_quantisation(tmp_path):
    cube = np.zeros((3, 2, 2))
    cube[1, 0, 0], cube[2, 1, 1], cube[0, 1, 0] = 4, 6, 2
    # floor(100 * c) per channel: 0.0099 -> 0, 0.01 -> 1 (float32), 0.0199 -> 1, 0.02 -> 2.
    colours = np.array([[0.01, 0.0, 0.0], [0.0199, 0.0099, 0.0], [0.02, 0.015, 0.019], [0.005, 0.01, 0.0]])
    assert part_utils.lookup_parts(colours, cube).tolist() == [4, 4, 6, 2]
    with pytest.raises(ValueError, match='outside the lookup table'):
        part_utils.lookup_parts(np.array([[0.03, 0.0, 0.0]]), cube)

    # Face 0 uniform (part 6); face 1 has 5 texels of part 4 and 3 of part 2: it takes the majority.
    texture = np.zeros((1, 2, 2, 2, 2, 3), dtype=np.float32)
    texture[0, 0] = [0.025, 0.015, 0.015]
    texels = texture[0, 1].reshape(8, 3)
    texels[:5] = [0.015, 0.005, 0.005]
    texels[5:] = [0.005, 0.015, 0.005]
    texture[0, 1] = texels.reshape(2, 2, 2, 3)
    paths = _save_tables(tmp_path, texture, cube)
    assert part_utils.load_face_parts(*paths).tolist() == [6, 4]
    with pytest.raises(ValueError, match='body model has 13776'):
        part_utils.load_face_parts(*paths, num_faces=13776)


def test_encoded_tables_decode_to_the_same_face_parts(tmp_path):
    labels = np.random.default_rng(0).integers(0, 7, size=500)
    texture, cube = part_utils.encode_face_parts(labels)
    assert texture.shape == (1, 500, 1, 1, 1, 3) and cube.ndim == 3
    assert part_utils.load_face_parts(*_save_tables(tmp_path, texture, cube)).tolist() == labels.tolist()


def test_missing_tables_say_where_to_get_and_put_them(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        part_utils.load_face_parts(tmp_path / 'vertex_texture.npy', tmp_path / 'cube_parts.npy')
    message = str(err.value)
    assert 'vertex_texture.npy' in message and 'fetch_data.sh' in message and 'PYMAF_DATA_DIR' in message


def test_standin_tables_give_six_sided_body_parts(neutral, face_parts):
    paths = path_config.body_model_paths()
    assert paths.is_standin, 'this test checks the stand-in part tables'
    assert np.load(paths.vertex_texture).shape == (1, 13776, 1, 1, 1, 3)
    assert face_parts.shape == (13776,) and set(face_parts.tolist()) == set(range(1, 7))
    assert len(LSP_PART_NAMES) == 6
    # Rest pose (T-pose, y up, the body's left at +x): where each part's faces lie.
    centre = neutral.v_template[neutral.faces_tensor.long()].mean(dim=1)
    mean = {p: centre[face_parts == p].mean(dim=0) for p in range(1, 7)}
    assert mean[HEAD][1] > mean[TORSO][1] > mean[LEFT_LEG][1]
    assert mean[LEFT_ARM][0] > 0.3 and mean[RIGHT_ARM][0] < -0.3
    assert mean[LEFT_LEG][0] > 0 > mean[RIGHT_LEG][0] and mean[LEFT_LEG][1] < -0.5


def test_part_maps_cover_exactly_the_silhouette(neutral, face_parts):
    torch.manual_seed(1)
    body_pose = 0.3 * torch.randn(2, 69)
    global_orient = torch.tensor([[np.pi, 0.0, 0.0], [np.pi, 0.4, 0.0]])  # facing the camera, y down
    verts = neutral(betas=torch.randn(2, 10), body_pose=body_pose, global_orient=global_orient).vertices
    cam = torch.tensor([[0.9, 0.0, 0.1], [0.7, 0.1, 0.0]])
    parts = part_utils.render_part_maps(verts, cam, neutral.faces_tensor, face_parts)
    silhouette = render_silhouettes(verts, cam, neutral.faces_tensor)
    assert parts.shape == (2, 224, 224) and silhouette.any()
    assert torch.equal(parts > 0, silhouette)
    assert set(parts[0].unique().tolist()) == set(range(7))
    # Facing the camera, the body's left arm appears on the image's right.
    cols = torch.arange(224).expand(224, 224)
    mean_col = {p: cols[parts[0] == p].float().mean() for p in (LEFT_ARM, TORSO, RIGHT_ARM)}
    assert mean_col[LEFT_ARM] > mean_col[TORSO] > mean_col[RIGHT_ARM]


def test_parts_score_counts_unlabelled_pixels_as_original():
    gt = np.array([[0, 1, 1, 255], [2, 2, 255, 0]])
    pred = np.array([[0, 1, 2, 1], [2, 2, 0, 1]])
    score = metrics.SegmentationScore(num_classes=3, ignore_index=255, accuracy_ignore_label=0)
    score.update(pred, gt)
    # Accuracy over all 8 pixels with 255 read as background: (0,0), (0,1), (1,0), (1,1), (1,2) agree.
    assert score.valid == 8 and score.correct == 5
    # F1 without the two 255 pixels: class 0 tp 1 fp 0 fn 1; class 1 tp 1 fp 1 fn 1; class 2 tp 2 fp 1 fn 0.
    assert abs(score.mean_f1 - (2 / 3 + 2 / 4 + 4 / 5) / 3) < 1e-12


def _write_part_labels(out: str, npz: str, data: dict, neutral, face_parts) -> np.ndarray:
    """Ground-truth part images rendered with each sample's image camera; returns the label images."""
    pose, betas = torch.from_numpy(data['pose']).float(), torch.from_numpy(data['shape']).float()
    verts = neutral(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    size = int(2 * data['center'][0, 0])
    labels, names = [], []
    os.makedirs(os.path.join(out, 'parts'), exist_ok=True)
    for i in range(len(pose)):
        points = verts[i:i + 1] + torch.from_numpy(data['cam_t'][i]).float()
        face_idx = part_utils.rasterize_pinhole(points, neutral.faces_tensor, float(data['focal_length'][i]),
                                                size, size)
        label = part_utils.parts_of_faces(face_idx, face_parts)[0].numpy().astype(np.uint8)
        label[:6] = 255  # an unlabelled band, as UP-3D has
        names.append(f'parts/{i:06d}.png')
        cv2.imwrite(os.path.join(out, names[-1]), label)
        labels.append(label)
    np.savez(npz, **data, partname=np.array(names))
    return np.stack(labels)


class _ReplayModel(torch.nn.Module):
    """Stands in for the network: returns prepared predictions batch after batch (no shuffling)."""

    def __init__(self, preds: dict) -> None:
        super().__init__()
        self.preds = preds
        self.next = 0

    def forward(self, images: torch.Tensor):
        sl = slice(self.next, self.next + len(images))
        self.next += len(images)
        return {'smpl_out': [{k: v[sl] for k, v in self.preds.items()}]}, None


def test_eval_lsp_scores_exact_meshes_near_one(tmp_path, neutral, face_parts, monkeypatch, capsys):
    out = str(tmp_path / 'lsp')
    npz, data = make_exact_crop_lsp_set(out, num_samples=4, seed=3)
    labels = _write_part_labels(out, npz, data, neutral, face_parts)
    assert all(set(np.unique(lab).tolist()) == set(range(7)) | {255} for lab in labels)
    batch = next(iter(torch.utils.data.DataLoader(BaseDataset('lsp', npz_path=npz, img_dir=out), batch_size=4)))
    preds = perfect_prediction(batch)
    preds['pred_cam'] = exact_crop_cameras(data)
    monkeypatch.setattr(eval_script, 'load_model', lambda checkpoint, device, **options: _ReplayModel(preds))

    json_file = str(tmp_path / 'res.json')
    args = eval_script.parse_args(['--dataset', 'lsp', '--dataset_file', npz, '--image_dir', out, '--mask_dir', out,
                                   '--device', 'cpu', '--num_workers', '0', '--batch_size', '3',
                                   '--log_freq', '0', '--json_file', json_file])
    report = eval_script.main(args)
    printed = capsys.readouterr().out
    assert 'Parts accuracy' in printed and 'Parts F1' in printed
    res = json.load(open(json_file))['results']
    assert res == report['results'] and res['num_samples'] == 4
    # The unlabelled band lies in the background, where the prediction is background too.
    assert res['parts_accuracy'] > 0.999 and res['parts_f1'] > 0.995
    assert res['fg_accuracy'] > 0.999 and res['fg_f1'] > 0.995
    assert 'UP-3D 6-part labels' in report['protocol']['parts']

    # Left and right swapped on the prediction: the silhouette still matches, the limbs no longer do.
    swapped = face_parts.clone()
    for a, b in ((LEFT_ARM, RIGHT_ARM), (LEFT_LEG, RIGHT_LEG)):
        swapped[face_parts == a], swapped[face_parts == b] = b, a
    evaluator = SegmentationEvaluator(neutral, out, face_parts=swapped)
    evaluator.update(preds, batch)
    wrong = evaluator.results()
    assert wrong['fg_f1'] == pytest.approx(res['fg_f1'])
    assert wrong['parts_f1'] < res['parts_f1'] - 0.2 and wrong['parts_accuracy'] < res['parts_accuracy'] - 0.01


def _labelled_set(tmp_path, neutral, face_parts, num_samples: int, seed: int):
    """An LSP-format set with UP-3D-style masks and part labels, one batch of it and the exact prediction:
    ``(folder, npz path, batch, prediction)``."""
    out = str(tmp_path / 'lsp')
    npz, data = make_exact_crop_lsp_set(out, num_samples=num_samples, seed=seed)
    _write_part_labels(out, npz, data, neutral, face_parts)
    batch = next(iter(torch.utils.data.DataLoader(BaseDataset('lsp', npz_path=npz, img_dir=out),
                                                  batch_size=num_samples)))
    preds = perfect_prediction(batch)
    preds['pred_cam'] = exact_crop_cameras(data)
    return out, npz, batch, preds


def test_part_labels_without_a_part_table_are_an_error(tmp_path, neutral, face_parts):
    out, _, batch, preds = _labelled_set(tmp_path, neutral, face_parts, num_samples=1, seed=4)
    with pytest.raises(ValueError, match='partname'):
        SegmentationEvaluator(neutral, out).update(preds, batch)


def test_standin_expansion_restores_missing_part_tables(tmp_path):
    from utils.standin import ensure_standin

    target = ensure_standin(tmp_path / 'standin')
    (target / 'cube_parts.npy').unlink()
    ensure_standin(target)
    assert np.load(target / 'cube_parts.npy').ndim == 3


def test_eval_lsp_skips_a_sample_whose_label_image_is_missing(tmp_path, neutral, face_parts, monkeypatch):
    """A missing mask or part label is a bad sample like a missing image: skipped and counted (or, with
    --bad_sample_policy stop, one error)."""
    from datasets.sampling import BadDataError

    out, npz, batch, preds = _labelled_set(tmp_path, neutral, face_parts, num_samples=4, seed=3)
    os.remove(os.path.join(out, batch['partname'][1]))
    monkeypatch.setattr(eval_script, 'load_model', lambda checkpoint, device, **options: _ReplayModel(preds))
    argv = ['--dataset', 'lsp', '--dataset_file', npz, '--image_dir', out, '--mask_dir', out, '--device', 'cpu',
            '--num_workers', '0', '--batch_size', '4', '--log_freq', '0', '--json_file', str(tmp_path / 'r.json')]
    res = eval_script.main(eval_script.parse_args(argv))['results']
    assert res['num_samples'] == 3 and res['skipped_samples'] == 1
    assert 'part label image not found' in res['skipped_examples'][0]
    assert res['parts_f1'] > 0.99
    monkeypatch.setattr(eval_script, 'load_model', lambda checkpoint, device, **options: _ReplayModel(preds))
    with pytest.raises(BadDataError, match='part label image not found'):
        eval_script.main(eval_script.parse_args(argv + ['--bad_sample_policy', 'stop']))
