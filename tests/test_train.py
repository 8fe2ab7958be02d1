"""train.py end to end on the synthetic dataset with the stand-in body model (CPU)."""
from __future__ import annotations

import glob
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from core import trainer as trainer_module
from datasets import synthetic
from utils.saver import read_checkpoint


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    """Six labelled synthetic images (SPIN-format npz + images)."""
    out = tmp_path_factory.mktemp('synth_train')
    npz = synthetic.generate_dataset(str(out), num_samples=6, seed=5, img_width=160, img_height=160)
    return out, npz


def _args(synth, log_dir, *extra, misc=()):
    out, npz = synth
    return ['--single_dataset', '--single_dataname', 'synthetic', '--train_npz', npz, '--train_img_dir', str(out),
            '--log_dir', str(log_dir), '--exp_name', 'run', '--device', 'cpu', *extra,
            '--misc', 'TRAIN.BATCH_SIZE', '2', 'TRAIN.NUM_WORKERS', '0', 'SEED_VALUE', '7', *misc]


def _eval_args(synth):
    out, npz = synth
    return ['--eval_dataset', 'synthetic', '--eval_npz', npz, '--eval_img_dir', str(out)]


def _run_dir(log_dir) -> Path:
    return Path(log_dir) / 'pymaf_res50' / 'run'


def test_one_epoch_writes_checkpoints_and_tensorboard(synth, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = train.main(_args(synth, tmp_path, '--num_epochs', '1', *_eval_args(synth),
                               misc=['TRAIN.LOG_FREQ', '1', 'TRAIN_VIS_ITER_FERQ', '2', 'TRAIN.VIS_SAMPLES', '2']))
    run = _run_dir(tmp_path)
    assert {p.name for p in (run / 'checkpoints').iterdir()} == {'model_latest.pt', 'model_best.pt',
                                                                 'model_epoch_001.pt'}
    assert (run / 'cfg.yaml').is_file() and (run / 'args.json').is_file()
    latest = read_checkpoint(run / 'checkpoints' / 'model_latest.pt')
    assert (latest['epoch'], latest['batch_idx'], latest['total_step_count']) == (1, 0, 3)
    assert latest['optimizer'] is not None and 'rng' in latest and 'MODEL:' in latest['cfg']
    assert read_checkpoint(run / 'checkpoints' / 'model_best.pt')['optimizer'] is None
    assert results['num_samples'] == 6 and np.isfinite(results['pa_mpjpe_mm'])

    events = EventAccumulator(glob.glob(str(run / 'tb_summary' / '*'))[0], size_guidance={'images': 0, 'scalars': 0})
    events.Reload()
    scalars = set(events.Tags()['scalars'])
    for name in ('losses/loss', 'losses/loss_keypoints_3', 'losses/loss_keypoints_3d_1', 'losses/loss_regr_pose_2',
                 'losses/loss_IndexUV-1', 'losses/loss_U-1', 'grad/norm', 'eval_error/pa-mpjpe_-1',
                 'eval_error/mpjpe_-4', 'eval_error/pve_-1'):
        assert name in scalars, name
    assert [e.step for e in events.Scalars('losses/loss')] == [1, 2, 3]
    # The learning rate per step and per epoch: two tags, each with its own x-axis.
    assert [e.step for e in events.Scalars('lr/model_lr_step')] == [1, 2, 3]
    assert [e.step for e in events.Scalars('lr/model_lr_epoch')] == [1]
    images = events.Images('train/mesh_pred')
    assert [im.step for im in images] == [2]
    assert (images[0].width, images[0].height) == (5 * 224, 2 * 224)  # input | GT mesh | GT IUV | pred IUV | mesh
    assert 'valid/mesh_pred_0' in events.Tags()['images']


def test_loss_falls_when_overfitting_a_small_set(synth, tmp_path):
    out, npz = synth
    seen = []
    original = trainer_module.Trainer.train_step

    def recording(self, batch):
        result = original(self, batch)
        seen.append(result['losses'])
        return result

    args = ['--single_dataset', '--single_dataname', 'synthetic', '--train_npz', npz, '--train_img_dir', str(out),
            '--log_dir', str(tmp_path), '--exp_name', 'run', '--device', 'cpu', '--eval_dataset', 'none',
            '--num_epochs', '100', '--max_steps', '16', '--rot_factor', '0', '--scale_factor', '0',
            '--noise_factor', '0', '--misc', 'TRAIN.BATCH_SIZE', '6', 'TRAIN.NUM_WORKERS', '0', 'SEED_VALUE', '3',
            'SOLVER.BASE_LR', '0.0002', 'TRAIN.SAVE_EVERY', '0']
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module.Trainer, 'train_step', recording)
        train.main(args)
    assert len(seen) == 16
    first, last = seen[0], seen[-1]
    assert last['loss'] < first['loss'] / 3, (first['loss'], last['loss'])
    for name, factor in (('loss_U-1', 0.25), ('loss_V-1', 0.25), ('loss_IndexUV-1', 0.9), ('loss_segAnn-1', 0.9),
                         ('loss_keypoints_1', 0.85), ('loss_keypoints_3d_1', 0.85)):
        assert last[name] < factor * first[name], (name, first[name], last[name])


def _weights(path):
    return read_checkpoint(path)['model']


def test_resume_after_interrupt_equals_uninterrupted_run(synth, tmp_path):
    common = ('--num_epochs', '5', '--max_steps', '5', *_eval_args(synth))
    train.main(_args(synth, tmp_path / 'a', *common, misc=['TRAIN.SAVE_EVERY', '0']))

    calls = []
    original = trainer_module.Trainer.train_step

    def interrupted(self, batch):
        result = original(self, batch)
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module.Trainer, 'train_step', interrupted)
        train.main(_args(synth, tmp_path / 'b', *common, misc=['TRAIN.SAVE_EVERY', '0']))
    run_b = _run_dir(tmp_path / 'b')
    stopped = read_checkpoint(run_b / 'checkpoints' / 'model_latest.pt')
    assert (stopped['epoch'], stopped['batch_idx'], stopped['total_step_count']) == (0, 2, 2)
    assert not list((run_b / 'checkpoints').glob('.*.tmp'))

    train.main(['--resume', '--log_dir', str(run_b), '--device', 'cpu', *common])
    assert (run_b / 'cfg_resume.yaml').is_file()
    full = read_checkpoint(_run_dir(tmp_path / 'a') / 'checkpoints' / 'model_latest.pt')
    resumed = read_checkpoint(run_b / 'checkpoints' / 'model_latest.pt')
    assert (resumed['epoch'], resumed['batch_idx'], resumed['total_step_count']) == (1, 2, 5)
    for key, value in full['model'].items():
        assert torch.equal(value, resumed['model'][key]), key
    adam_a, adam_b = full['optimizer']['state'], resumed['optimizer']['state']
    assert adam_a.keys() == adam_b.keys()
    assert all(torch.equal(adam_a[k]['exp_avg'], adam_b[k]['exp_avg']) for k in adam_a)


def test_missing_image_is_skipped_and_named(synth, tmp_path, caplog):
    out, npz = synth
    data = dict(np.load(npz, allow_pickle=True))
    data['imgname'] = data['imgname'].astype(object)
    data['imgname'][4] = 'images/does_not_exist.jpg'
    broken = str(tmp_path / 'broken.npz')
    np.savez(broken, **data)
    def args(name, *misc):
        return ['--single_dataset', '--single_dataname', 'synthetic', '--train_npz', broken, '--train_img_dir',
                str(out), '--log_dir', str(tmp_path), '--exp_name', name, '--device', 'cpu', '--eval_dataset', 'none',
                '--num_epochs', '1', '--misc', 'TRAIN.BATCH_SIZE', '3', 'TRAIN.NUM_WORKERS', '0', 'SEED_VALUE', '1',
                'TRAIN.SAVE_EVERY', '0', *misc]

    with caplog.at_level('WARNING'):
        train.main(args('skip'))
    assert any('does_not_exist.jpg' in r.getMessage() for r in caplog.records)
    latest = read_checkpoint(tmp_path / 'pymaf_res50' / 'skip' / 'checkpoints' / 'model_latest.pt')
    assert latest['skipped'] == 1 and latest['total_step_count'] == 2

    with pytest.raises(trainer_module.BadDataError, match='does_not_exist.jpg'):
        train.main(args('stop', 'TRAIN.BAD_SAMPLE_POLICY', 'stop'))


def test_non_finite_loss_skips_the_step(synth, tmp_path, caplog):
    original = trainer_module.compute_losses
    calls = []

    def poisoned(*args, **kwargs):
        terms = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            terms['loss_cam_1'] = terms['loss_cam_1'] * float('nan')
        return terms

    with pytest.MonkeyPatch.context() as mp, caplog.at_level('WARNING'):
        mp.setattr(trainer_module, 'compute_losses', poisoned)
        train.main(_args(synth, tmp_path, '--num_epochs', '1', '--max_steps', '1', '--eval_dataset', 'none'))
    assert any('non-finite loss (loss_cam_1)' in r.getMessage() for r in caplog.records)
    ckpt = read_checkpoint(_run_dir(tmp_path) / 'checkpoints' / 'model_latest.pt')
    assert ckpt['skipped'] == 1 and ckpt['total_step_count'] == 1
    assert ckpt['optimizer']['state'] == {}  # no optimiser step was taken


def test_gt_iuv_labels_cover_the_body_in_the_image(tmp_path):
    """The rendered DensePose labels (GT mesh, camera fitted to the 2D keypoints) fall on the body's pixels."""
    import cv2

    from core.train_options import parse_train_args
    from datasets.base_dataset import BaseDataset
    from utils import imutils

    out = tmp_path / 'masks'
    npz = synthetic.generate_dataset(str(out), num_samples=3, seed=2, img_width=200, img_height=160, save_masks=True)
    args = parse_train_args(['--single_dataset', '--single_dataname', 'synthetic', '--train_npz', npz,
                             '--train_img_dir', str(out), '--eval_dataset', 'none', '--device', 'cpu',
                             '--misc', 'TRAIN.BATCH_SIZE', '3', 'TRAIN.NUM_WORKERS', '0'])
    from core import cfgs
    from utils.train_utils import init_distributed

    cfg = cfgs.load_cfg(args.cfg_file, args.misc)
    trainer = trainer_module.Trainer(args, cfg, init_distributed(**args.distributed_setup()), log_dir=None)
    dataset = BaseDataset('synthetic', is_train=False, npz_path=npz, img_dir=str(out))
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    iuv = trainer.prepare_targets(batch)['iuv']
    kernel = np.ones((3, 3), np.uint8)
    for i in range(3):
        mask = cv2.imread(str(out / dataset.maskname[i]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        body = imutils.crop(np.repeat(mask[..., None], 3, axis=2), dataset.center[i], float(dataset.scale[i]),
                            [56, 56])[..., 0] > 127
        labels = iuv[i, 0].numpy() > 0
        # Within one pixel of the 56 x 56 map (the labels come from the neutral body, the image from a gendered one).
        near_body = cv2.dilate(body.astype(np.uint8), kernel) > 0
        near_labels = cv2.dilate(labels.astype(np.uint8), kernel) > 0
        assert (labels & near_body).sum() / labels.sum() > 0.95, i
        assert (body & near_labels).sum() / body.sum() > 0.95, i
        shifted = np.roll(labels, 6, axis=1)
        assert (shifted & near_body).sum() / shifted.sum() < 0.8, i


def test_resume_needs_an_experiment_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='experiment folder'):
        train.main(['--resume', '--log_dir', str(tmp_path)])


@pytest.mark.parametrize('regressor, misc', [('pymaf_net', ['TRAIN.AMP', 'bf16', 'TRAIN.CHANNELS_LAST', 'True']),
                                             ('hmr', [])])
def test_bf16_channels_last_and_the_hmr_baseline_train(synth, tmp_path, regressor, misc):
    results = train.main(_args(synth, tmp_path, '--regressor', regressor, '--num_epochs', '1', *_eval_args(synth),
                               misc=['TRAIN.SAVE_EVERY', '0', *misc]))
    assert np.isfinite(results['pa_mpjpe_mm']) and results['num_samples'] == 6
    run = next((tmp_path).glob('*/run'))
    ckpt = read_checkpoint(run / 'checkpoints' / 'model_latest.pt')
    assert ckpt['total_step_count'] == 3 and ckpt['regressor'] == regressor
    assert all(torch.isfinite(v).all() for v in ckpt['model'].values() if v.is_floating_point())


@pytest.mark.parametrize('clip', [0.0, 1e-3])
def test_gradient_clipping(synth, tmp_path, clip):
    """TRAIN.GRAD_CLIP bounds the global gradient norm the optimiser sees; 0 leaves the gradients alone."""
    from core import cfgs
    from core.train_options import parse_train_args
    from core.trainer import Trainer
    from utils.train_utils import init_distributed

    args = parse_train_args(_args(synth, tmp_path, '--eval_dataset', 'none', misc=['TRAIN.GRAD_CLIP', str(clip)]))
    trainer = Trainer(args, cfgs.load_cfg(args.cfg_file, args.misc), init_distributed(**args.distributed_setup()),
                      log_dir=None)
    trainer.sampler.set_epoch(0)
    out = trainer.train_step(next(iter(trainer.train_loader)))
    norm_after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in
                                                       trainer.model.parameters() if p.grad is not None]))
    assert out['grad_norm'] > 1e-2
    if clip:
        assert norm_after == pytest.approx(clip, rel=1e-3)
    else:
        assert norm_after == pytest.approx(out['grad_norm'], rel=1e-4)


def test_validation_with_no_samples_anywhere_gives_no_results(synth, tmp_path, monkeypatch, caplog):
    """Every process's share of the validation set empty: a warning and no results, not a crash."""
    from core import cfgs
    from core.train_options import parse_train_args
    from core.trainer import Trainer
    from utils import distributed
    from utils.train_utils import init_distributed

    args = parse_train_args(_args(synth, tmp_path, *_eval_args(synth)))
    trainer = Trainer(args, cfgs.load_cfg(args.cfg_file, args.misc), init_distributed(**args.distributed_setup()),
                      log_dir=None)
    assert trainer.validate()['pa_mpjpe_mm'] > 0
    monkeypatch.setattr(distributed, 'shard_indices', lambda num_samples, info: range(0))
    with caplog.at_level('WARNING'):
        assert trainer.validate() == {}
    assert 'gave no samples' in caplog.text
