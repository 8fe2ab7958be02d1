"""The pieces of training: losses on hand-made cases, the resumable sampler, the mixed dataset, fits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core import losses
from datasets import mixed_dataset, synthetic
from datasets.base_dataset import BaseDataset
from datasets.sampling import BAD_SAMPLE_KEY, ResumableSampler, SeededSamples, collate_skipping_bad
from utils.geometry import batch_rodrigues
from utils.iuvmap import iuv_img2map


def test_keypoint_2d_loss_weights_the_two_joint_sets():
    pred = torch.zeros(1, 49, 2)
    gt = torch.zeros(1, 49, 3)
    gt[0, 3] = torch.tensor([0.5, 0.0, 1.0])   # an OpenPose joint, off by 0.5 in x
    gt[0, 30] = torch.tensor([0.0, 1.0, 1.0])  # a ground-truth joint, off by 1 in y
    loss = losses.keypoint_2d_loss(pred, gt, openpose_weight=2.0, gt_weight=1.0)
    assert loss.item() == pytest.approx((2.0 * 0.25 + 1.0) / (49 * 2))
    assert losses.keypoint_2d_loss(pred, gt, 0.0, 0.0).item() == 0.0


def test_keypoint_3d_loss_is_root_relative_and_masked():
    gt_joints = torch.randn(2, 24, 3)
    gt = torch.cat([gt_joints, torch.ones(2, 24, 1)], dim=2)
    pred = torch.zeros(2, 49, 3)
    pred[:, 25:] = gt_joints + torch.tensor([0.3, -1.0, 2.0])  # translated: same root-relative joints
    assert losses.keypoint_3d_loss(pred, gt, torch.ones(2)).item() == pytest.approx(0.0, abs=1e-10)
    pred[0, 25 + 7] += torch.tensor([0.0, 0.0, 0.1])
    expected = 0.01 / (24 * 3)  # only sample 0 kept, one joint off by 0.1 m in z
    assert losses.keypoint_3d_loss(pred, gt, torch.tensor([1.0, 0.0])).item() == pytest.approx(expected, rel=1e-5)
    zero = losses.keypoint_3d_loss(pred.requires_grad_(), gt, torch.zeros(2))
    assert zero.item() == 0.0 and zero.requires_grad


def test_smpl_losses_zero_for_the_labels_themselves():
    pose = torch.randn(3, 72) * 0.3
    betas = torch.randn(3, 10)
    rotmat = batch_rodrigues(pose.reshape(-1, 3)).reshape(3, 24, 3, 3)
    pose_loss, betas_loss = losses.smpl_losses(rotmat, betas, pose, betas, torch.ones(3))
    assert pose_loss.item() == pytest.approx(0.0, abs=1e-12) and betas_loss.item() == 0.0
    pose_loss, betas_loss = losses.smpl_losses(rotmat, betas + 1.0, pose, betas, torch.tensor([1.0, 0.0, 0.0]))
    assert betas_loss.item() == pytest.approx(1.0)


def test_camera_loss_pushes_the_scale_positive():
    assert losses.camera_loss(torch.tensor([[1.0, 0, 0]])).item() == pytest.approx(np.exp(-20))
    assert losses.camera_loss(torch.tensor([[-0.1, 0, 0]])).item() == pytest.approx(np.exp(2))


def test_body_uv_losses_on_a_hand_made_map():
    iuv = torch.zeros(1, 3, 2, 2)
    iuv[0, :, 0, 0] = torch.tensor([1 / 24, 0.5, 0.25])   # part 1 at one pixel
    index, ann, u, v = iuv_img2map(iuv)
    confident = {'predict_uv_index': index * 50, 'predict_ann_index': ann * 50, 'predict_u': u.clone(),
                 'predict_v': v.clone()}
    terms = losses.body_uv_losses(confident, index, ann, u, v, point_weight=0.5)
    assert terms['index'].item() < 1e-6 and terms['ann'].item() < 1e-6
    assert terms['u'].item() == 0.0 and terms['v'].item() == 0.0
    off = dict(confident, predict_u=u + 0.2)
    # smooth-L1 of 0.2 (= 0.5 * 0.04) summed over the 4 selected entries (1 body pixel + 3 background), /B, x0.5.
    assert losses.body_uv_losses(off, index, ann, u, v, 0.5)['u'].item() == pytest.approx(4 * 0.02 * 0.5)


def test_sampler_resumes_mid_epoch_and_shards():
    full = list(ResumableSampler(20, batch_size=3, seed=4))
    assert len(full) == 18 and len({i for i, _ in full}) == 18  # 6 whole batches, no repeats
    later = ResumableSampler(20, batch_size=3, seed=4)
    later.set_epoch(0, start_batch=2)
    assert list(later) == full[6:] and len(later) == 12
    other_epoch = ResumableSampler(20, batch_size=3, seed=4)
    other_epoch.set_epoch(1)
    assert [i for i, _ in other_epoch] != [i for i, _ in full]
    ranks = [list(ResumableSampler(20, batch_size=2, seed=4, num_replicas=2, rank=r)) for r in (0, 1)]
    assert not {i for i, _ in ranks[0]} & {i for i, _ in ranks[1]}
    assert len(ranks[0]) == len(ranks[1]) == 10
    with pytest.raises(ValueError, match='fewer than one batch'):
        ResumableSampler(3, batch_size=4)


class _Draws(torch.utils.data.Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, index):
        if index == 3:
            raise FileNotFoundError('image 3 is gone')
        return {'value': torch.tensor(np.random.uniform()), 'pose': torch.zeros(3)}


def test_seeded_samples_repeat_and_report_bad_ones():
    samples = SeededSamples(_Draws())
    assert samples[(1, 99)]['value'] == samples[(1, 99)]['value']
    assert samples[(1, 99)]['value'] != samples[(1, 98)]['value']
    bad = samples[(3, 1)]
    assert 'image 3 is gone' in bad[BAD_SAMPLE_KEY]
    batch = collate_skipping_bad([samples[(0, 1)], bad, samples[(2, 1)]])
    assert batch['value'].shape == (2,) and batch['bad_samples'] == [bad[BAD_SAMPLE_KEY]]


def test_mixed_dataset_draws_members_with_the_original_ratios(tmp_path, monkeypatch):
    from core import path_config

    bodies = synthetic.load_body_models()
    sizes = {'h36m': 4, 'lsp-orig': 2, 'mpii': 6, 'lspet': 2, 'coco-full': 10, 'mpi-inf-3dhp': 3}
    for seed, (name, size) in enumerate(sizes.items()):
        out = tmp_path / name
        npz = synthetic.generate_dataset(str(out), num_samples=size, seed=seed, img_width=64, img_height=64,
                                         bodies=bodies)
        monkeypatch.setitem(path_config.DATASET_FILES[1], name, npz)
        monkeypatch.setitem(path_config.DATASET_FOLDERS, name, out)
    mixed = mixed_dataset.MixedDataset('eft')
    assert len(mixed) == 10
    np.random.seed(0)
    draws = [mixed[i % 10]['dataset_name'] for i in range(300)]
    counts = {name: draws.count(name) / len(draws) for name in sizes}
    itw = sizes['lsp-orig'] + sizes['mpii'] + sizes['lspet'] + sizes['coco-full']
    expected = {'h36m': 0.5, 'mpi-inf-3dhp': 0.2, 'coco-full': 0.3 * 10 / itw, 'mpii': 0.3 * 6 / itw}
    for name, share in expected.items():
        assert abs(counts[name] - share) < 0.08, (name, counts[name], share)
    monkeypatch.setitem(path_config.DATASET_FILES[1], 'mpii', str(tmp_path / 'gone.npz'))
    with pytest.raises(FileNotFoundError, match='mpii'):
        mixed_dataset.MixedDataset('eft')


def test_fits_replace_labels_and_drop_extreme_shapes(tmp_path):
    out = tmp_path / 'set'
    npz = synthetic.generate_dataset(str(out), num_samples=3, seed=1, img_width=64, img_height=64)
    dataset = BaseDataset('synthetic', is_train=True, npz_path=npz, img_dir=str(out))
    pose = np.full((3, 72), 0.1)
    betas = np.zeros((3, 10))
    betas[1, 0] = 5.0
    np.savez(tmp_path / 'synthetic.npz', pose=pose, betas=betas, valid_fit=np.array([1, 1, 0]))
    old_pose2 = dataset.pose[2].copy()
    assert mixed_dataset.apply_fits(dataset, str(tmp_path))
    assert np.allclose(dataset.pose[0], 0.1) and np.allclose(dataset.betas[1], 0.0)
    assert np.array_equal(dataset.pose[2], old_pose2)
    assert not mixed_dataset.apply_fits(dataset, str(tmp_path / 'nothing'))


def test_solver_type_selects_the_optimiser():
    from core import cfgs
    from core.trainer import build_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    adam = build_optimizer(params, cfgs.load_cfg().SOLVER)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults['lr'] == 5e-5
    sgd = build_optimizer(params, cfgs.load_cfg(None, ['SOLVER.TYPE', 'SGD', 'SOLVER.BASE_LR', '0.01']).SOLVER)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults['momentum'] == 0.9 and sgd.defaults['lr'] == 0.01
    with pytest.raises(ValueError, match='SOLVER.TYPE .*Adam, SGD'):
        build_optimizer(params, cfgs.load_cfg(None, ['SOLVER.TYPE', 'RMSprop']).SOLVER)


@pytest.mark.parametrize('flags, kernels, expected', [
    ({'avx2', 'avx512_f'}, 'AVX512', None), ({'avx2', 'avx512_bf16'}, 'AVX512', torch.bfloat16),
    ({'amx_bf16'}, 'AVX512', torch.bfloat16), ({'avx512_bf16'}, 'AVX2', None)])
def test_bf16_only_on_cpus_that_compute_it(monkeypatch, caplog, flags, kernels, expected):
    """bf16 autocast where the CPU has AVX512-BF16 or AMX and torch's AVX-512 kernels run; elsewhere fp32,
    said once."""
    from utils import precision

    monkeypatch.setattr(precision, 'cpu_flags', lambda: flags)
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: kernels)
    monkeypatch.setattr(precision, '_warned', set())
    cpu = torch.device('cpu')
    with caplog.at_level('WARNING', logger='utils.precision'):
        assert precision.autocast_dtype('bf16', cpu) == expected
        assert precision.autocast_dtype('bf16', cpu) == expected
    assert len([r for r in caplog.records if 'fp32 instead' in r.getMessage()]) == (1 if expected is None else 0)
    assert precision.autocast_dtype('none', cpu) is None
    with pytest.raises(ValueError, match='needs a GPU'):
        precision.autocast_dtype('fp16', cpu)


def test_cpu_flags_from_torch_and_from_cpuinfo_agree(monkeypatch):
    """torch's CPU detection and Linux's /proc/cpuinfo (the fallback for torch versions without it) agree."""
    from utils import precision

    from_torch = precision.cpu_flags() & set(precision.CPU_BF16_FLAGS)
    monkeypatch.delattr(torch.cpu, 'get_capabilities', raising=False)
    from_cpuinfo = precision.cpu_flags()
    assert 'fpu' in from_cpuinfo or 'fp' in from_cpuinfo or 'sse2' in from_cpuinfo
    assert from_cpuinfo & set(precision.CPU_BF16_FLAGS) == from_torch
