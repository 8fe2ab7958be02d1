"""Inference backends (core/inference/backends.py): ONNX Runtime and bf16 against PyTorch fp32, the ONNX cache
(reused, rebuilt for other weights or a damaged file), the `auto` rules and the scripts' --backend and
--precision options."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.inference import backends
from core.inference.backends import BackendError, TorchBackend, make_backend, resolve_choice
from core.inference.predictor import PyMAFPredictor
from utils.precision import native_bf16

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / 'assets' / 'demo_weights' / 'pymaf_lite_standin.pt'
# Largest difference of bf16 autocast from fp32 accepted for the demo weights on rendered person crops (metres
# for vertices and joints, radians for poses, crop units for cameras and 2D joints): the backbone's features
# keep 8 bits of mantissa, so meshes move by millimetres; measured 7e-3 (pose), 2e-3 m (vertices) on this
# project's CPU (docs/speed.md).
BF16_TOLERANCE = 2e-2
FIELDS = ('verts', 'kp_3d', 'kp_2d', 'pred_cam', 'theta', 'rotmat', 'pred_shape')


def crops(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope='module')
def checkpoint_copy(tmp_path_factory) -> Path:
    """The demo weights in a writable folder of their own (the ONNX cache goes beside them)."""
    path = tmp_path_factory.mktemp('weights') / DEMO_WEIGHTS.name
    shutil.copy(DEMO_WEIGHTS, path)
    return path


@pytest.fixture(scope='module')
def synth(tmp_path_factory) -> tuple[str, str]:
    """Four rendered people (the demo weights' kind of input): (image root, annotation npz)."""
    from datasets import synthetic

    out = str(tmp_path_factory.mktemp('synth'))
    return out, synthetic.generate_dataset(out, num_samples=4, seed=3, img_width=160, img_height=160)


@pytest.fixture(scope='module')
def torch_predictor(checkpoint_copy) -> PyMAFPredictor:
    return PyMAFPredictor.from_checkpoint(checkpoint_copy, 'cpu', batch_size=2)


@pytest.fixture(scope='module')
def onnx_predictor(checkpoint_copy) -> PyMAFPredictor:
    return PyMAFPredictor.from_checkpoint(checkpoint_copy, 'cpu', batch_size=2, backend='onnx')


def test_onnx_equals_torch_fp32_and_is_cached_beside_the_checkpoint(torch_predictor, onnx_predictor, checkpoint_copy):
    assert isinstance(onnx_predictor.backend, backends.OnnxBackend)
    assert onnx_predictor.backend.path.parent == checkpoint_copy.parent
    assert onnx_predictor.backend.path.name.startswith(checkpoint_copy.stem + '.')
    images = crops(3)
    expected, got = torch_predictor.backend(images), onnx_predictor.backend(images)
    for key in FIELDS:
        assert got[key].shape == expected[key].shape and got[key].dtype == torch.float32
        assert float((got[key] - expected[key]).abs().max()) < 1e-4, key
    # Through the predictor API (3 crops in batches of 2): vertices, joints and cameras.
    ref, out = torch_predictor.predict_crops(images), onnx_predictor.predict_crops(images)
    for key in ('verts', 'joints3d', 'kp_2d', 'pred_cam', 'pose', 'betas'):
        assert np.abs(out[key] - ref[key]).max() < 1e-4, key


def test_second_predictor_reuses_the_cache(onnx_predictor, checkpoint_copy, monkeypatch):
    import utils.export.onnx_export as onnx_export

    def no_export(*args, **kwargs):
        raise AssertionError('the cached ONNX file should have been reused')

    monkeypatch.setattr(onnx_export, 'export_onnx', no_export)
    cached = onnx_predictor.backend.path
    mtime = cached.stat().st_mtime_ns
    again = PyMAFPredictor.from_checkpoint(checkpoint_copy, 'cpu', backend='onnx')
    assert again.backend.path == cached and cached.stat().st_mtime_ns == mtime


def test_changed_checkpoint_and_damaged_file_are_rebuilt(onnx_predictor, checkpoint_copy, tmp_path, caplog):
    from utils.saver import read_checkpoint

    # Other weights in the same place: perturb one weight of a copy of the checkpoint.
    folder = tmp_path / 'changed'
    folder.mkdir()
    changed = folder / checkpoint_copy.name
    data = read_checkpoint(checkpoint_copy)
    state = data['model']
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name] = state[name] + 0.01
    torch.save(data, changed)
    old = folder / onnx_predictor.backend.path.name
    shutil.copy(onnx_predictor.backend.path, old)  # the previous weights' file, as after an earlier run
    model = PyMAFPredictor.from_checkpoint(changed, 'cpu').model
    key = backends.network_digest(model)
    assert key != backends.network_digest(onnx_predictor.model)
    new_path = backends.onnx_cache_path(key, changed)
    assert new_path != old and new_path.parent == folder
    # A file of the old weights under the new name is not taken for the new weights.
    shutil.copy(old, new_path)
    assert backends._cached_session(new_path, key, None) is None
    # A damaged file under the new name is rebuilt.
    new_path.write_bytes(b'not an onnx model')
    with caplog.at_level(logging.WARNING, logger='core.inference.backends'):
        backend = make_backend(model, 'cpu', 'onnx', 'fp32', checkpoint=changed)
    assert 'unreadable' in caplog.text and backend.path == new_path
    assert not old.exists()  # the stale file of the previous weights is removed
    images = crops(2, seed=1)
    expected = TorchBackend(model)(images)
    got = backend(images)
    for key_ in FIELDS:
        assert float((got[key_] - expected[key_]).abs().max()) < 1e-4, key_
    assert float((got['verts'] - onnx_predictor.backend(images)['verts']).abs().max()) > 1e-4


def test_bf16_within_tolerance_where_native_else_fp32_with_a_note(torch_predictor, synth, caplog):
    from datasets.base_dataset import BaseDataset

    with caplog.at_level(logging.WARNING, logger='core.inference.backends'):
        backend = make_backend(torch_predictor.model, 'cpu', 'torch', 'bf16')
    images = torch.stack([sample['img'] for sample in BaseDataset('3dpw', npz_path=synth[1], img_dir=synth[0])])
    expected = TorchBackend(torch_predictor.model)(images)
    got = backend(images)
    if native_bf16(torch.device('cpu')):
        assert backend.precision == 'bf16' and not caplog.text
        worst = {k: float((got[k] - expected[k]).abs().max()) for k in FIELDS}
        assert max(worst.values()) < BF16_TOLERANCE, worst
        assert worst['verts'] > 0  # it did run in bf16
    else:
        assert backend.precision == 'fp32' and 'running fp32 instead' in caplog.text
        assert all(torch.equal(got[k], expected[k]) for k in FIELDS)


def test_bf16_falls_back_to_fp32_without_native_support(monkeypatch, caplog):
    import utils.precision

    monkeypatch.setattr(utils.precision, 'native_bf16', lambda device: False)
    with caplog.at_level(logging.WARNING, logger='core.inference.backends'):
        _, _, notes = resolve_choice('torch', 'bf16', torch.device('cpu'), True)
        assert resolve_choice('torch', 'bf16', torch.device('cpu'), True)[:2] == ('torch', 'fp32')
    assert len(notes) == 1 and 'avx512_bf16' in notes[0] and 'running fp32 instead' in notes[0]


def test_auto_rules(monkeypatch):
    cpu = torch.device('cpu')
    assert resolve_choice('auto', 'auto', cpu, True)[:2] == ('onnx', 'fp32')
    assert resolve_choice('auto', 'auto', cpu, False)[:2] == ('torch', 'fp32')  # untrained: not worth exporting
    assert resolve_choice('auto', 'fp32', cpu, True)[:2] == ('onnx', 'fp32')
    assert resolve_choice('torch', 'auto', cpu, True)[:2] == ('torch', 'fp32')  # bf16 only when asked for
    monkeypatch.setattr(backends, 'onnx_available', lambda: False)
    assert resolve_choice('auto', 'auto', cpu, True)[:2] == ('torch', 'fp32')
    with pytest.raises(BackendError, match='pip install'):
        resolve_choice('onnx', 'fp32', cpu, True)


def test_impossible_choices_are_explained():
    with pytest.raises(BackendError, match='fp32 only'):
        resolve_choice('onnx', 'bf16', torch.device('cpu'), True)
    with pytest.raises(BackendError, match='--device cpu'):
        resolve_choice('onnx', 'fp32', torch.device('cuda'), True)
    with pytest.raises(BackendError, match='choose one of'):
        resolve_choice('tensorrt', 'fp32', torch.device('cpu'), True)


def test_scripts_take_the_options():
    import demo
    import eval as eval_script
    import eval_coco

    for argv in (['--backend', 'onnx', '--precision', 'fp32'], ['--backend', 'torch', '--precision', 'bf16']):
        args = eval_script.parse_args(argv)
        assert (args.backend, args.precision) == (argv[1], argv[3])
        args = eval_coco.parse_args(argv)
        assert (args.backend, args.precision) == (argv[1], argv[3])
        args = demo.build_parser().parse_args(['--img_file', 'x.png', *argv])
        assert (args.backend, args.precision) == (argv[1], argv[3])
    defaults = eval_script.parse_args([])
    assert (defaults.backend, defaults.precision) == ('auto', 'auto')


def test_demo_runs_each_backend_with_the_same_meshes(checkpoint_copy, onnx_predictor, tmp_path, capsys):
    import pickle

    import demo
    from tests.test_demo_model import _clip

    video, anno = _clip(tmp_path)
    verts = {}
    for backend in ('onnx', 'torch'):
        out = tmp_path / backend
        status = demo.main(['--vid_file', str(video), '--use_gt', '--anno_file', str(anno), '--checkpoint',
                            str(checkpoint_copy), '--backend', backend, '--precision', 'fp32', '--no_render',
                            '--output_folder', str(out)])
        assert status == 0, capsys.readouterr().err
        with open(out / 'noise' / 'output.pkl', 'rb') as f:
            verts[backend] = pickle.load(f)[3]['verts']
    assert verts['onnx'].shape == (2, 6890, 3) and np.abs(verts['onnx'] - verts['torch']).max() < 1e-4
    assert demo.main(['--vid_file', str(video), '--backend', 'onnx', '--precision', 'bf16', '--output_folder',
                      str(tmp_path / 'bad')]) == 1
    assert 'fp32 only' in capsys.readouterr().err


def test_eval_scripts_run_on_onnx_as_on_torch(checkpoint_copy, onnx_predictor, synth, tmp_path):
    import eval as eval_script
    import eval_coco
    from tests.test_eval_coco import _write_coco_set

    out, npz = synth
    coco_npz, _ = _write_coco_set(str(tmp_path), num_people=3)
    results, stats = {}, {}
    for backend in ('onnx', 'torch'):
        args = eval_script.parse_args([
            '--checkpoint', str(checkpoint_copy), '--dataset', '3dpw', '--dataset_file', npz, '--image_dir', out,
            '--device', 'cpu', '--num_workers', '0', '--batch_size', '3', '--backend', backend,
            '--json_file', str(tmp_path / f'{backend}.json')])
        results[backend] = eval_script.main(args)['results']
        args = eval_coco.parse_args([
            '--checkpoint', str(checkpoint_copy), '--dataset_file', coco_npz, '--image_dir', str(tmp_path),
            '--device', 'cpu', '--num_workers', '0', '--batch_size', '2', '--backend', backend,
            '--output_dir', str(tmp_path / f'coco_{backend}')])
        stats[backend] = eval_coco.main(args)
    assert results['onnx']['num_samples'] == 4
    for key in ('mpjpe_mm', 'pa_mpjpe_mm', 'pve_mm'):
        assert abs(results['onnx'][key] - results['torch'][key]) < 1e-2, key  # millimetres
    assert stats['onnx'] == pytest.approx(stats['torch'], abs=1e-6)


def test_cache_place_without_a_writable_checkpoint_folder(tmp_path, monkeypatch):
    from core import path_config

    key = 'ab' * 32
    checkpoint = tmp_path / 'weights' / 'model.pt'
    checkpoint.parent.mkdir()
    assert backends.onnx_cache_path(key, checkpoint) == checkpoint.parent.resolve() / f'model.{key[:16]}.onnx'
    assert backends.onnx_cache_path(key, None, tmp_path) == tmp_path / f'pymaf.{key[:16]}.onnx'
    assert backends.onnx_cache_path(key, None) == path_config.DATA_DIR / 'cache' / 'onnx' / f'pymaf.{key[:16]}.onnx'
    monkeypatch.setattr(backends.os, 'access', lambda path, mode: False)  # a read-only checkpoint folder
    expected = tmp_path / 'cache' / f'model.{key[:16]}.onnx'
    assert backends.onnx_cache_path(key, checkpoint, tmp_path / 'cache') == expected
