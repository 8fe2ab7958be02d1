"""Inference backends (core/inference/backends.py): ONNX Runtime and bf16 against PyTorch fp32, the lean forward
they run (core/inference/lean.py), the ONNX cache (reused, rebuilt for other weights or a damaged file), the
`auto` rules, the up-front checks, background building and the scripts' --backend and --precision options."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.inference import backends
from core.inference.backends import (
    BF16_TOLERANCE,
    BackendError,
    TorchBackend,
    check_backend,
    make_backend,
    resolve_choice,
)
from core.inference.predictor import PyMAFPredictor
from utils.cli import UserError
from utils.precision import native_bf16

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / 'assets' / 'demo_weights' / 'pymaf_lite_standin.pt'
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
    expected, got = TorchBackend(torch_predictor.model)(images), onnx_predictor.backend(images)  # network as is
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


def test_bf16_within_tolerance_where_native_else_refused(torch_predictor, synth):
    from datasets.base_dataset import BaseDataset

    images = torch.stack([sample['img'] for sample in BaseDataset('3dpw', npz_path=synth[1], img_dir=synth[0])])
    if not native_bf16(torch.device('cpu')):
        with pytest.raises(BackendError, match='emulated'):
            make_backend(torch_predictor.model, 'cpu', 'torch', 'bf16')
        return
    backend = make_backend(torch_predictor.model, 'cpu', 'torch', 'bf16')
    assert backend.precision == 'bf16' and 'autocast' not in backend.describe()  # the lean forward
    expected = TorchBackend(torch_predictor.model)(images)
    got = backend(images)
    worst = {k: float((got[k] - expected[k]).abs().max()) for k in FIELDS}
    assert max(worst.values()) < BF16_TOLERANCE, worst
    assert worst['verts'] > 1e-6  # it did run in bf16


def test_torch_fp32_runs_the_lean_forward_equal_to_the_network(torch_predictor, monkeypatch):
    from core.inference import onednn

    model = torch_predictor.model
    images = crops(3, seed=6)
    expected = TorchBackend(model)(images)  # the network as it is
    engine = make_backend(model, 'cpu', 'torch', 'fp32')
    assert engine.lean and engine.describe() == 'torch fp32 lean on cpu'
    assert (engine._network._packed is not None) == onednn.available()  # packed oneDNN convolutions where possible
    monkeypatch.setattr(onednn, 'available', lambda: False)
    eager = make_backend(model, 'cpu', 'torch', 'fp32')
    assert eager.lean and eager._network._packed is None  # without them, the eager modules
    for got in (engine(images), eager(images)):
        for key in FIELDS:
            assert got[key].shape == expected[key].shape and got[key].dtype == torch.float32
            assert float((got[key] - expected[key]).abs().max()) < 1e-4, key


def _perturbed_lite(misc: list[str]) -> torch.nn.Module:
    """An untrained light PyMAF whose batch norms have random statistics and whose regressors react strongly
    to their features, so that a wrong fold or a map sampled at the wrong stage shows in the outputs."""
    from core.cfgs import load_cfg
    from models.pymaf_net import pymaf_net

    torch.manual_seed(0)
    model = pymaf_net(pretrained=False, cfg=load_cfg(str(REPO / 'configs' / 'demo_weights_lite.yaml'), misc)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for regressor in model.regressor:
            for layer in (regressor.decpose, regressor.decshape, regressor.deccam):
                layer.weight.mul_(30)
    return model


@pytest.mark.parametrize('n_iter', ['3', '2'])
def test_lean_forward_equals_the_network_in_fp32(n_iter):
    from core.inference.lean import LeanPyMAF

    model = _perturbed_lite(['MODEL.PyMAF.N_ITER', n_iter])
    images = crops(2, seed=4)
    with torch.no_grad():
        expected = model(images, iuv=False)[0]['smpl_out'][-1]
        preds, _ = LeanPyMAF(model)(images)
    got = preds['smpl_out'][-1]
    assert len(preds['smpl_out']) == 1
    for key in FIELDS:
        assert got[key].shape == expected[key].shape
        assert float((got[key] - expected[key]).abs().max()) < 1e-4, key
    # The outputs depend on the input: a wrong stage or fold could not hide behind a constant estimate.
    with torch.no_grad():
        other = model(crops(2, seed=5), iuv=False)[0]['smpl_out'][-1]
    assert float((other['verts'] - expected['verts']).abs().max()) > 5e-4  # five times the tolerance


def test_folded_batch_norm_equals_convolution_then_batch_norm():
    from core.inference.lean import fold_batch_norm

    torch.manual_seed(1)
    for conv in (torch.nn.Conv2d(4, 6, 3, padding=1, bias=False), torch.nn.ConvTranspose2d(4, 6, 4, 2, 1, bias=True)):
        bn = torch.nn.BatchNorm2d(6).eval()
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
        x = torch.randn(2, 4, 7, 7)
        with torch.no_grad():
            expected = bn(conv(x))
            fold_batch_norm(conv, bn)
            got = conv(x)
        assert float((got - expected).abs().max()) < 1e-5


def test_explicit_bf16_without_native_support_is_refused(monkeypatch):
    import utils.precision

    monkeypatch.setattr(utils.precision, 'native_bf16', lambda device: False)
    with pytest.raises(BackendError, match='avx512_bf16') as err:
        check_backend('torch', 'bf16', 'cpu')
    assert isinstance(err.value, UserError) and '\n' not in str(err.value) and 'use --precision fp32' in str(err.value)
    assert resolve_choice('auto', 'auto', torch.device('cpu'), True) == ('onnx', 'fp32')  # auto never refuses


def test_auto_rules(monkeypatch):
    import utils.precision

    cpu = torch.device('cpu')
    monkeypatch.setattr(utils.precision, 'native_bf16', lambda device: True)
    assert resolve_choice('auto', 'auto', cpu, True) == ('torch', 'bf16')  # the fastest within tolerance
    assert resolve_choice('auto', 'auto', cpu, False) == ('torch', 'bf16')
    assert resolve_choice('torch', 'auto', cpu, True) == ('torch', 'bf16')
    assert resolve_choice('auto', 'fp32', cpu, True) == ('onnx', 'fp32')  # exact: ONNX Runtime
    assert resolve_choice('onnx', 'auto', cpu, True) == ('onnx', 'fp32')
    monkeypatch.setattr(utils.precision, 'native_bf16', lambda device: False)
    assert resolve_choice('auto', 'auto', cpu, True) == ('onnx', 'fp32')
    assert resolve_choice('auto', 'auto', cpu, False) == ('torch', 'fp32')  # untrained: not worth exporting
    assert resolve_choice('torch', 'auto', cpu, True) == ('torch', 'fp32')
    monkeypatch.setattr(backends, 'onnx_available', lambda: False)
    assert resolve_choice('auto', 'auto', cpu, True) == ('torch', 'fp32')
    with pytest.raises(BackendError, match='pip install'):
        resolve_choice('onnx', 'fp32', cpu, True)


def test_impossible_choices_are_refused_with_one_line(monkeypatch):
    cases = [(('onnx', 'bf16', 'cpu'), 'fp32 only'), (('tensorrt', 'fp32', 'cpu'), 'choose one of'),
             (('torch', 'half', 'cpu'), 'choose one of'), (('torch', 'fp32', 'mps'), 'use --device cpu')]
    monkeypatch.setattr(backends, 'onnx_cuda_available', lambda: False)
    cases.append((('onnx', 'fp32', 'cuda'), 'onnxruntime-gpu'))
    for args, words in cases:
        with pytest.raises(UserError, match=words) as err:
            check_backend(*args)
        assert '\n' not in str(err.value) and '; ' in str(err.value)  # what is wrong; what to do


def test_background_build_gives_the_same_engine(torch_predictor, checkpoint_copy):
    future = backends.make_backend_async(torch_predictor.model, 'cpu', 'torch', 'fp32')
    engine = future.result(timeout=60)
    images = crops(2, seed=2)
    assert torch.equal(engine(images)['verts'], torch_predictor.backend(images)['verts'])
    with pytest.raises(BackendError, match='fp32 only'):  # a wrong combination fails at once, not in the thread
        backends.make_backend_async(torch_predictor.model, 'cpu', 'onnx', 'bf16')
    predictor = PyMAFPredictor.from_checkpoint(checkpoint_copy, 'cpu', backend='torch', precision='fp32',
                                               background=True)
    out = predictor.predict_crops(images)
    assert np.abs(out['verts'] - torch_predictor.predict_crops(images)['verts']).max() < 1e-6
    assert isinstance(predictor.backend, TorchBackend)


def test_export_falls_back_to_torch_export(tmp_path, monkeypatch):
    """Where torch has no tracing exporter any more, torch.export's exporter writes the same graph."""
    import utils.export.onnx_export as onnx_export

    class Tiny(torch.nn.Module):  # the network's output contract with a tiny body
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
            self.fc = torch.nn.Linear(4, 85)

        def forward(self, images, iuv=False):
            theta = self.fc(self.conv(images).mean((2, 3)))
            batch = images.shape[0]
            final = {'theta': theta, 'rotmat': theta[:, :9].reshape(batch, 1, 3, 3).expand(batch, 24, 3, 3),
                     'pred_shape': theta[:, 3:13], 'pred_cam': theta[:, :3],
                     'verts': theta[:, :3, None].expand(batch, 3, 6890).transpose(1, 2),
                     'kp_3d': theta[:, :3, None].expand(batch, 3, 49).transpose(1, 2), 'kp_2d': theta[:, None, :2] * 2}
            return {'smpl_out': [final]}, []

    def no_tracer(*args, **kwargs):
        raise RuntimeError('this torch has no TorchScript-based ONNX exporter')

    monkeypatch.setattr(onnx_export, '_export_traced', no_tracer)
    model = Tiny().eval()
    path = onnx_export.export_onnx(model, tmp_path / 'tiny.onnx')
    worst = onnx_export.compare_with_torch(path, model)
    assert max(worst.values()) < 1e-5
    with pytest.raises(RuntimeError, match='no TorchScript'):
        onnx_export.export_onnx(model, tmp_path / 'again.onnx', exporter='torchscript')


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
    # evaluation defaults to exact fp32 (its metrics are the network's), the demo to the fastest engine
    for defaults in (eval_script.parse_args([]), eval_coco.parse_args([])):
        assert (defaults.backend, defaults.precision) == ('auto', 'fp32')
    defaults = demo.build_parser().parse_args(['--img_file', 'x.png'])
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
            '--device', 'cpu', '--num_workers', '0', '--batch_size', '3', '--backend', backend, '--precision', 'fp32',
            '--json_file', str(tmp_path / f'{backend}.json')])
        report = eval_script.main(args)
        results[backend] = report['results']
        assert report['inference'].startswith(f'{backend} fp32')
        args = eval_coco.parse_args([
            '--checkpoint', str(checkpoint_copy), '--dataset_file', coco_npz, '--image_dir', str(tmp_path),
            '--device', 'cpu', '--num_workers', '0', '--batch_size', '2', '--backend', backend, '--precision', 'fp32',
            '--output_dir', str(tmp_path / f'coco_{backend}')])
        stats[backend] = eval_coco.main(args)
    assert results['onnx']['num_samples'] == 4
    for key in ('mpjpe_mm', 'pa_mpjpe_mm', 'pve_mm'):
        assert abs(results['onnx'][key] - results['torch'][key]) < 1e-2, key  # millimetres
    assert stats['onnx'] == pytest.approx(stats['torch'], abs=1e-6)


def test_eval_scripts_refuse_a_bad_combination_before_any_work(tmp_path):
    import eval as eval_script
    import eval_coco

    missing = str(tmp_path / 'missing.npz')  # would be the first error if the backend were checked later
    for script in (eval_script, eval_coco):
        args = script.parse_args(['--dataset_file', missing, '--backend', 'onnx', '--precision', 'bf16',
                                  '--device', 'cpu', '--num_workers', '0'])
        with pytest.raises(BackendError, match='fp32 only'):
            script.main(args)


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
