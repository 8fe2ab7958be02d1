"""PyMAF training: the original's step (docs/training.md), resumable to the sample, on one CPU or many GPUs.

One `Trainer` runs one process of a run: it builds the model, optimiser and data, renders the DensePose
labels on the fly (`utils.render.iuv_renderer`, no compiled renderer), computes the losses (`core.losses`),
validates after every epoch with eval.py's protocol, writes TensorBoard summaries and checkpoints. Under
torchrun each process runs a `Trainer`: every process trains on its shard of each epoch and validates its
shard of the validation set; rank 0 logs and writes the files. Every decision that leads to a collective
(stop, skip a step, save, which checkpoint is best) is taken from values agreed by all processes
(`utils.distributed`), so no process waits for a collective that another never reaches.

A run is resumable exactly: checkpoints hold the model, optimiser, scheduler, epoch, the batch reached in
the epoch, the run seed and every process's RNG states, and each sample's augmentation is seeded by its
position in the epoch (`datasets.sampling`). Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves
``model_latest.pt`` and exits; checkpoints are written atomically, so a crash never leaves a torn file.
"""
from __future__ import annotations

import logging
import signal
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from core import constants, losses, path_config
from core.train_options import TrainOptions
from datasets.base_dataset import AugmentOptions, BaseDataset
from datasets.mixed_dataset import MixedDataset, apply_fits
from datasets.sampling import BadDataError, ResumableSampler, SeededSamples, collate_skipping_bad, loader_seed_generator
from models.pymaf_net import smpl_outputs, without_iuv
from utils import distributed, precision, train_utils
from utils.cli import InputError, UserError
from utils.geometry import estimate_translation
from utils.iuvmap import iuv_img2map, iuv_map2img
from utils.saver import load_checkpoint, load_state, read_checkpoint, remove_stale_temporaries, save_checkpoint

logger = logging.getLogger(__name__)

CHECKPOINT_LATEST = 'model_latest.pt'
CHECKPOINT_BEST = 'model_best.pt'

# What `_resume` reads from a checkpoint; weights-only files (model_best.pt, per-epoch copies, demo
# weights) lack them.
TRAINING_STATE_KEYS = ('optimizer', 'scheduler', 'rng', 'seed', 'epoch', 'batch_idx', 'total_step_count')


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, 'module') else model


OPTIMIZERS = ('Adam', 'SGD')


def build_optimizer(params, solver_cfg) -> torch.optim.Optimizer:
    """The optimiser ``SOLVER.TYPE`` names, at ``SOLVER.BASE_LR``, without weight decay: 'Adam' (the
    original's, default betas) or 'SGD' (momentum ``SOLVER.MOMENTUM``).

    Raises:
        ValueError: an unknown ``SOLVER.TYPE``.
    """
    if solver_cfg.TYPE == 'Adam':
        return torch.optim.Adam(params, lr=solver_cfg.BASE_LR, weight_decay=0)
    if solver_cfg.TYPE == 'SGD':
        return torch.optim.SGD(params, lr=solver_cfg.BASE_LR, momentum=solver_cfg.MOMENTUM, weight_decay=0)
    raise ValueError(f'SOLVER.TYPE {solver_cfg.TYPE!r} is not available; choose one of {", ".join(OPTIMIZERS)}')


def compute_losses(preds: list[dict], dp_out: list[dict], targets: dict, cfg, openpose_weight: float,
                   gt_weight: float) -> dict[str, torch.Tensor]:
    """Weighted loss terms of one batch (the original's terms and weights, docs/training.md); their plain sum
    is the training loss.

    Args:
        preds: the feedback loop's outputs to supervise (PyMAF: ``smpl_out[1:]``; HMR: its one output).
        dp_out: the IUV head's outputs (empty without the auxiliary head).
        targets: from `Trainer.prepare_targets`.
        cfg: the run's config (``LOSS`` weights).
        openpose_weight, gt_weight: 2D keypoint set weights.

    Returns:
        ``{name: weighted scalar}`` with the original's names (``loss_keypoints_1``, ``loss_IndexUV-1``...).
    """
    w = cfg.LOSS
    out = {}
    has_smpl = targets['has_smpl']
    for level, pred in enumerate(preds, start=1):
        pose_loss, betas_loss = losses.smpl_losses(pred['rotmat'], pred['pred_shape'], targets['pose'],
                                                   targets['betas'], has_smpl)
        out[f'loss_regr_pose_{level}'] = w.POSE_W * pose_loss
        out[f'loss_regr_betas_{level}'] = w.SHAPE_W * betas_loss
        out[f'loss_keypoints_{level}'] = w.KP_2D_W * losses.keypoint_2d_loss(
            pred['kp_2d'], targets['keypoints'], openpose_weight, gt_weight)
        out[f'loss_keypoints_3d_{level}'] = w.KP_3D_W * losses.keypoint_3d_loss(
            pred['kp_3d'], targets['pose_3d'], targets['has_pose_3d'])
        if w.VERT_W > 0:
            out[f'loss_shape_{level}'] = w.VERT_W * losses.vertex_loss(pred['verts'], targets['verts'], has_smpl)
        out[f'loss_cam_{level}'] = losses.camera_loss(pred['pred_cam'])
    for i, head in enumerate(dp_out):
        suffix = i - len(dp_out)
        valid = has_smpl > 0
        if valid.any():
            maps = targets['iuv_maps']
            size = head['predict_u'].shape[-2:]
            pred_valid = {k: v[valid] for k, v in head.items()}
            if maps[0].shape[-2:] != size:
                maps = iuv_img2map(torch.nn.functional.interpolate(targets['iuv'], size=size, mode='nearest'))
            index_gt, ann_gt, u_gt, v_gt = (m[valid] for m in maps)
            terms = losses.body_uv_losses(pred_valid, index_gt, ann_gt, u_gt, v_gt, w.POINT_REGRESSION_WEIGHTS)
        else:
            zero = sum(v.sum() for v in head.values()) * 0.0
            terms = {'index': zero, 'ann': zero, 'u': zero, 'v': zero}
        index_w, part_w = (w.INDEX_WEIGHTS, w.PART_WEIGHTS) if w.APPLY_IUV_CE_WEIGHTS else (1.0, 1.0)
        out[f'loss_IndexUV{suffix}'] = index_w * terms['index']
        out[f'loss_segAnn{suffix}'] = part_w * terms['ann']
        out[f'loss_U{suffix}'] = terms['u']
        out[f'loss_V{suffix}'] = terms['v']
    return out


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to save and stop; a second one interrupts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handler, the default behaviour stays
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning('%s received: finishing this step, saving %s and stopping (again to abort at once)',
                       signal.Signals(signum).name, CHECKPOINT_LATEST)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One process of a training run (see the module docstring).

    Args:
        options: train.py's options (`core.train_options.TrainOptions`).
        cfg: the run's config node (`core.cfgs.load_cfg`); the network is built from it.
        info: this process's place in the run (`utils.train_utils.init_distributed`).
        log_dir: experiment folder (rank 0; None on the others).
    """

    def __init__(self, options: TrainOptions, cfg, info: train_utils.DistInfo, log_dir: Path | None) -> None:
        self.options = options
        self.cfg = cfg
        self.info = info
        self.device = info.device
        self.log_dir = log_dir
        self.stop = StopRequest()
        self.resume_path = log_dir_checkpoint(options.log_dir) if options.resume else None
        if log_dir is not None:
            remove_stale_temporaries(Path(log_dir) / 'checkpoints')
        resume_state = read_checkpoint(self.resume_path, map_location='cpu') if options.resume else None
        if resume_state is not None:
            check_training_state(resume_state, self.resume_path)
        self.seed = resume_state['seed'] if resume_state else train_utils.shared_seed(cfg.SEED_VALUE, info)
        train_utils.seed_everything(self.seed)

        if cfg.TRAIN.BAD_SAMPLE_POLICY not in ('skip', 'stop'):
            raise InputError(f"TRAIN.BAD_SAMPLE_POLICY must be 'skip' or 'stop', got {cfg.TRAIN.BAD_SAMPLE_POLICY!r}",
                             'set --misc TRAIN.BAD_SAMPLE_POLICY skip')
        if cfg.TRAIN.BATCH_SIZE < info.world_size:
            raise InputError(f'TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} is smaller than the {info.world_size} '
                             'process(es): every process needs at least one sample per batch',
                             f'set --misc TRAIN.BATCH_SIZE {max(info.world_size, 1)} or more')
        self.amp_dtype = precision.autocast_dtype(cfg.TRAIN.AMP, self.device)
        self.batch_size = max(1, cfg.TRAIN.BATCH_SIZE // info.world_size)
        self.body_paths = path_config.body_model_paths()
        self._build_model()
        self._build_data()
        self.smpl = self._gt_body_model()
        self.iuv_renderer = self._iuv_renderer() if self.aux_supervision else None
        self.scaler = torch.amp.GradScaler('cuda') if self.amp_dtype == torch.float16 else None

        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.skipped = 0
        self.stopping = False  # a stop was requested on some process (agreed by all in `train_step`)
        self.samples_read, self.samples_bad = 0, 0  # this run's readable and bad samples (all-bad is an error)
        self.first_bad = ''
        self.best_pa_mpjpe = float('inf')
        if resume_state:
            self._resume(resume_state)
        elif options.pretrained_checkpoint:
            load_checkpoint(unwrap(self.model), options.pretrained_checkpoint, strict=True, map_location='cpu')
            logger.info('initialised from %s', options.pretrained_checkpoint)
        self._wrap_distributed()
        self.writer = self._summary_writer()
        self.timings = defaultdict(float)

    # ----------------------------------------------------------------------------------------------- setup
    def _build_model(self) -> None:
        from models import hmr, pymaf_net

        torch.manual_seed(self.seed)
        if self.options.regressor == 'pymaf_net':
            model = pymaf_net(path_config.SMPL_MEAN_PARAMS, pretrained=self.cfg.POSE_RES_MODEL.INIT_WEIGHTS,
                              cfg=self.cfg)
            self.aux_supervision = bool(model.aux_supv_on)
        else:
            model = hmr(path_config.SMPL_MEAN_PARAMS, pretrained=self.cfg.POSE_RES_MODEL.INIT_WEIGHTS)
            self.aux_supervision = False
        # smplx's per-model pose/shape parameters are in the checkpoint but never used: not trained.
        for name, param in model.named_parameters():
            if '.smpl.' in f'.{name}':
                param.requires_grad_(False)
        model = model.to(self.device)
        if self.cfg.TRAIN.CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], self.cfg.SOLVER)
        milestones = list(self.cfg.SOLVER.EPOCHS[1:])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=milestones,
                                                              gamma=self.cfg.SOLVER.GAMMA)
        torch.manual_seed(self.seed + self.info.rank)

    def _wrap_distributed(self) -> None:
        if not self.info.distributed:
            return
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == 'cuda' and self.cfg.TRAIN.SYNC_BN:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        elif self.cfg.TRAIN.SYNC_BN:
            logger.info('synchronised batch norm needs GPUs; CPU processes keep per-process batch norm')
        from models.build import is_body_model_key

        # The body-model arrays are constants read from the same files by every process: broadcasting them
        # before every forward pass, as DDP does with buffers, would move tens of MB per step for nothing.
        body_buffers = [name for name, _ in self.model.named_buffers() if is_body_model_key(name)]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.model, body_buffers)
        device_ids = [self.device.index] if self.device.type == 'cuda' else None
        self.model = DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=True)

    def _options(self) -> AugmentOptions:
        a = self.options
        return AugmentOptions(img_res=a.img_res, rot_factor=a.rot_factor, noise_factor=a.noise_factor,
                              scale_factor=a.scale_factor)

    def _build_data(self) -> None:
        opts = self.options
        if opts.single_dataset or opts.train_npz:
            dataset = BaseDataset(opts.single_dataname, is_train=True, options=self._options(),
                                  npz_path=opts.train_npz, img_dir=opts.train_img_dir)
            if self.cfg.TRAIN.FITS_DIR and opts.single_dataname != 'h36m':
                apply_fits(dataset, self.cfg.TRAIN.FITS_DIR)
        else:
            dataset = MixedDataset(self.cfg.TRAIN.MIXED_PARTITION, options=self._options(),
                                   fits_dir=self.cfg.TRAIN.FITS_DIR)
        self.train_ds = dataset
        self.sampler = ResumableSampler(len(dataset), self.batch_size, seed=self.seed, shuffle=True,
                                        num_replicas=self.info.world_size, rank=self.info.rank)
        workers = max(0, self.cfg.TRAIN.NUM_WORKERS // self.info.world_size)
        self.train_loader = DataLoader(SeededSamples(dataset), batch_size=self.batch_size, sampler=self.sampler,
                                       num_workers=workers, collate_fn=collate_skipping_bad,
                                       pin_memory=self.cfg.TRAIN.PIN_MEMORY and self.device.type == 'cuda',
                                       generator=loader_seed_generator(self.seed), drop_last=True)
        self.val_ds = None
        if opts.eval_dataset and opts.eval_dataset.lower() != 'none':
            self.val_ds = BaseDataset(opts.eval_dataset, is_train=False, options=AugmentOptions(img_res=opts.img_res),
                                      npz_path=opts.eval_npz, img_dir=opts.eval_img_dir)
            self._load_eval_assets()

    def _load_eval_assets(self) -> None:
        from core.evaluation.protocol import load_eval_assets

        self.eval_smpl, self.j_regressor_h36m = load_eval_assets(self.device)

    def _gt_body_model(self) -> torch.nn.Module:
        from models.smpl import SMPL

        smpl = SMPL(self.body_paths.smpl_dir, batch_size=1, joint_regressor_extra=self.body_paths.joint_regressor_extra)
        return smpl.to(self.device).eval()

    def _iuv_renderer(self):
        from utils.render.iuv_renderer import IUV_Renderer

        return IUV_Renderer(self.body_paths.uv_processed, focal_length=constants.FOCAL_LENGTH,
                            orig_size=self.options.img_res, output_size=self.cfg.MODEL.PyMAF.DP_HEATMAP_SIZE,
                            device=self.device)

    def _summary_writer(self):
        if not self.info.is_main or self.log_dir is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.log_dir / 'tb_summary'), purge_step=self.step if self.step else None)
        writer.add_text('command_args', '  \n'.join(f'{k}: {v}' for k, v in self.options.as_dict().items()), self.step)
        return writer

    # ------------------------------------------------------------------------------------------ one step
    @torch.no_grad()
    def prepare_targets(self, batch: dict) -> dict:
        """Ground truth of a batch on the training device: labels, GT mesh and joints, GT camera, IUV maps.

        The GT camera is the translation that best projects the GT SMPL joints onto the GT 2D keypoints
        (focal 5000 px in the crop); the IUV maps are rendered with it from the GT mesh for samples with SMPL
        labels and are empty (background) for the others.
        """
        dev = self.device
        pose = batch['pose'].to(dev).float()
        betas = batch['betas'].to(dev).float()
        gt = self.smpl(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3])
        keypoints = batch['keypoints'].to(dev).float()
        kp_px = keypoints.clone()
        kp_px[..., :2] = 0.5 * self.options.img_res * (kp_px[..., :2] + 1)
        cam_t = estimate_translation(gt.joints, kp_px, constants.FOCAL_LENGTH, self.options.img_res)
        cam = torch.stack([2 * constants.FOCAL_LENGTH / (self.options.img_res * cam_t[:, 2] + 1e-9),
                           cam_t[:, 0], cam_t[:, 1]], dim=-1)
        targets = {'pose': pose, 'betas': betas, 'keypoints': keypoints, 'verts': gt.vertices, 'cam': cam,
                   'pose_3d': batch['pose_3d'].to(dev).float(), 'has_smpl': batch['has_smpl'].to(dev).float(),
                   'has_pose_3d': batch['has_pose_3d'].to(dev).float()}
        if self.iuv_renderer is not None:
            start = time.perf_counter()
            size = self.cfg.MODEL.PyMAF.DP_HEATMAP_SIZE
            iuv = torch.zeros(len(pose), 3, size, size, device=dev)
            valid = targets['has_smpl'] > 0
            if valid.any():
                iuv[valid] = self.iuv_renderer(gt.vertices[valid], cam[valid])
            targets['iuv'] = iuv
            targets['iuv_maps'] = iuv_img2map(iuv)
            self.timings['iuv_render_s'] += time.perf_counter() - start
        return targets

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def forward(self, images: torch.Tensor) -> tuple[list[dict], list[dict]]:
        """``(supervised smpl outputs, IUV head outputs)`` of a batch of crops, in fp32."""
        with self._autocast():
            if self.options.regressor == 'pymaf_net':
                preds_dict, _ = self.model(images)
                smpl_out, dp_out = preds_dict['smpl_out'][1:], preds_dict['dp_out']
            else:
                rotmat, betas, cam = self.model(images)
                smpl_out, dp_out = [(rotmat, betas, cam)], []
        if self.options.regressor != 'pymaf_net':
            rotmat, betas, cam = (t.float() for t in smpl_out[0])
            smpl_out = [smpl_outputs(self.smpl, rotmat, betas, cam)]

        def as_fp32(d: dict) -> dict:
            return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in d.items()}
        return [as_fp32(p) for p in smpl_out], [as_fp32(d) for d in dp_out]

    def train_step(self, batch: dict) -> dict | None:
        """One optimisation step; returns the loss values and what visualisation needs, or None if skipped.

        Sets ``self.stopping`` and takes no step when any process has been asked to stop (`StopRequest`).
        """
        stop_votes, bad_total, empty_batches = distributed.sum_across_ranks(
            [self.stop.requested, len(batch['bad_samples']), 'img' not in batch], self.info)
        if stop_votes:
            self.stopping = True
            return None
        self._check_bad_samples(batch['bad_samples'], int(bad_total))
        if empty_batches:
            self._skip(f'step {self.step}: no readable sample in a batch of some process')
            return None
        images = batch['img'].to(self.device, non_blocking=True)
        if self.cfg.TRAIN.CHANNELS_LAST:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = self.prepare_targets(batch)
        self.model.train()
        preds, dp_out = self.forward(images)
        loss_terms = compute_losses(preds, dp_out, targets, self.cfg, self.options.openpose_train_weight,
                                    self.options.gt_train_weight)
        loss = sum(loss_terms.values())
        finite = bool(torch.isfinite(loss).item())
        if not distributed.all_ranks_agree(finite, self.info):
            bad_terms = [k for k, v in loss_terms.items() if not torch.isfinite(v)]
            names = ', '.join(str(n) for n in batch['imgname'])
            self._skip(f'step {self.step}: non-finite loss ({", ".join(bad_terms) or "on another process"}) '
                       f'on samples {names}')
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        grad_norm = self._clip_gradients()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        values = {k: float(v.detach()) for k, v in loss_terms.items()}
        values['loss'] = float(loss.detach())
        return {'losses': values, 'grad_norm': grad_norm, 'images': images, 'targets': targets, 'preds': preds,
                'dp_out': dp_out}

    def _clip_gradients(self) -> float:
        """Global L2 norm of the (unscaled) gradients before clipping; clipped to TRAIN.GRAD_CLIP when that is > 0."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.cfg.TRAIN.GRAD_CLIP if self.cfg.TRAIN.GRAD_CLIP > 0 else float('inf')
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    def _skip(self, message: str, count: int = 1) -> None:
        """Apply the bad-data policy to ``count`` bad samples or steps (the same count on every process)."""
        if self.cfg.TRAIN.BAD_SAMPLE_POLICY == 'stop':
            raise BadDataError(message + " (TRAIN.BAD_SAMPLE_POLICY is 'stop')",
                               'fix the data, or set --misc TRAIN.BAD_SAMPLE_POLICY skip')
        self.skipped += count
        logger.warning('skipped: %s (%d skipped so far)', message, self.skipped)
        limit = self.cfg.TRAIN.MAX_SKIPPED
        if 0 <= limit < self.skipped:
            raise BadDataError(f'more than TRAIN.MAX_SKIPPED={limit} bad samples or steps; last: {message}',
                               'fix the data or its paths')

    def _check_all_skipped(self) -> None:
        """Stop with an error when this run has read samples but every one of them was bad, on every process
        (the good samples are counted over all processes, so that all of them stop or none does)."""
        samples_read = distributed.sum_across_ranks([self.samples_read], self.info)[0]
        if self.samples_bad and not samples_read:
            raise BadDataError(f'every training sample read so far ({self.samples_bad}) was skipped as bad; '
                               f'first: {self.first_bad}', 'check the annotation file and the image folder '
                               '(--train_npz, --train_img_dir, PYMAF_DATA_DIR)')

    def _check_bad_samples(self, bad: list[str], total: int) -> None:
        """Report this process's bad samples by name; ``total`` counts those of all processes."""
        if total and not self.samples_bad:
            self.first_bad = bad[0] if bad else 'on another process'
        self.samples_bad += total
        for message in bad:
            self._skip(f'bad sample in {self.train_ds.__class__.__name__} '
                       f'{getattr(self.train_ds, "dataset", "")}: {message}')
        if total > len(bad):
            self._skip(f'{total - len(bad)} bad sample(s) on other processes', count=total - len(bad))

    # ------------------------------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        """Train until ``--num_epochs`` or ``--max_steps``; returns the last validation results (rank 0)."""
        results = {}
        with self.stop:
            while self.epoch < self.options.num_epochs and not self._done():
                if not self.train_epoch():
                    break
                results = self.end_of_epoch()
        if self.writer is not None:
            self.writer.flush()
        return results

    def _done(self) -> bool:
        """Whether to stop; the same answer on every process (``stopping`` is agreed, the step count shared)."""
        return self.stopping or (self.options.max_steps > 0 and self.step >= self.options.max_steps)

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; False when stopped early (checkpoint saved)."""
        from tqdm import tqdm

        self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
        loader = iter(self.train_loader)
        total = self.sampler.batches_per_epoch
        bar = tqdm(total=total, initial=self.batch_in_epoch, desc=f'epoch {self.epoch}', dynamic_ncols=True,
                   disable=not self.info.is_main)
        while self.batch_in_epoch < total:
            if self._done():
                bar.close()
                self._check_all_skipped()
                self.save(CHECKPOINT_LATEST)
                return False
            start = time.perf_counter()
            batch = next(loader)
            self.timings['data_s'] += time.perf_counter() - start
            self.samples_read += len(batch.get('imgname', []))
            out = self.train_step(batch)
            if self.stopping:  # this batch was not trained on; a resumed run starts with it
                continue
            self.timings['step_s'] += time.perf_counter() - start
            self.timings['samples'] += len(batch.get('imgname', []))
            self.batch_in_epoch += 1
            self.step += 1
            bar.update(1)
            if out is not None:
                bar.set_postfix(loss=f'{out["losses"]["loss"]:.4f}')
                self.log_step(out)
        bar.close()
        self._check_all_skipped()
        return True

    def end_of_epoch(self) -> dict:
        """Validate (all processes, results reduced over them), step the LR schedule, save latest/epoch/best
        checkpoints."""
        results = self.validate() if self.val_ds is not None else {}
        self.epoch += 1
        self.batch_in_epoch = 0
        self.scheduler.step()
        if self.writer is not None:
            self.writer.add_scalar('lr/model_lr_epoch', self.optimizer.param_groups[0]['lr'], self.epoch)
        is_best = bool(results) and results['pa_mpjpe_mm'] < self.best_pa_mpjpe
        if is_best:
            self.best_pa_mpjpe = results['pa_mpjpe_mm']
        self.save(CHECKPOINT_LATEST)
        if is_best:
            self.save(CHECKPOINT_BEST, full=False)
        every = self.cfg.TRAIN.SAVE_EVERY
        if every > 0 and self.epoch % every == 0 and not self.options.overwrite:
            self.save(f'model_epoch_{self.epoch:03d}.pt', full=False)
        return results

    # ---------------------------------------------------------------------------------------- logging
    def log_step(self, out: dict) -> None:
        """Scalars every ``TRAIN.LOG_FREQ`` steps and an image grid every ``TRAIN_VIS_ITER_FERQ`` steps."""
        if self.writer is None:
            return
        if self.step % self.cfg.TRAIN.LOG_FREQ == 0 or self.step == 1:
            for name, value in out['losses'].items():
                self.writer.add_scalar(f'losses/{name}', value, self.step)
            self.writer.add_scalar('lr/model_lr_step', self.optimizer.param_groups[0]['lr'], self.step)
            self.writer.add_scalar('grad/norm', out['grad_norm'], self.step)
            self.writer.add_scalar('data/skipped', self.skipped, self.step)
        if self.step % self.cfg.TRAIN_VIS_ITER_FERQ == 0:
            self.writer.add_image('train/mesh_pred', self.training_grid(out), self.step, dataformats='HWC')

    def _mesh_grid(self):
        from utils.render.train_vis import MeshGrid

        if not hasattr(self, '_grid'):
            self._grid = MeshGrid(self.smpl.faces, self.options.img_res)
        return self._grid

    def training_grid(self, out: dict) -> np.ndarray:
        """input | GT mesh | GT IUV | predicted IUV | predicted mesh, for up to ``TRAIN.VIS_SAMPLES`` samples."""
        targets, final = out['targets'], out['preds'][-1]
        gt_iuv = pred_iuv = None
        if out['dp_out']:
            head = out['dp_out'][-1]
            gt_iuv = targets['iuv']
            pred_iuv = iuv_map2img(head['predict_u'], head['predict_v'], head['predict_uv_index'],
                                   head['predict_ann_index']).detach()
        return self._mesh_grid().training_grid(out['images'], targets['verts'], targets['cam'], final['verts'],
                                               final['pred_cam'], gt_iuv, pred_iuv, self.cfg.TRAIN.VIS_SAMPLES)

    # ------------------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> dict:
        """eval.py's metrics on ``--eval_dataset`` for the final loop output (and every loop with
        ``TRAIN.VAL_LOOP``); logged as ``eval_error/<metric>_<loop>`` (loop -1 = final). Returns the final
        loop's results (mm).

        Each process evaluates every ``world_size``-th sample; the sums and counts of the metrics are then
        added over the processes, so every process returns the same results, those of the whole set.
        """
        from tqdm import tqdm

        from core.evaluation.evaluator import Evaluator

        model = unwrap(self.model)
        model.eval()
        shard = torch.utils.data.Subset(self.val_ds, distributed.shard_indices(len(self.val_ds), self.info))
        loader = DataLoader(shard, batch_size=self.cfg.TEST.BATCH_SIZE, shuffle=False,
                            num_workers=min(self.cfg.TRAIN.NUM_WORKERS // self.info.world_size, 4))
        evaluators = {}
        for batch_idx, batch in enumerate(tqdm(loader, desc=f'validate {self.options.eval_dataset}', leave=False,
                                               disable=not self.info.is_main)):
            images = batch['img'].to(self.device)
            if self.options.regressor == 'pymaf_net':
                outputs = model(images, **without_iuv(model))[0]['smpl_out']
            else:
                outputs = [smpl_outputs(self.smpl, *model(images))]
            loops = range(-len(outputs), 0) if self.cfg.TRAIN.VAL_LOOP else [-1]
            for loop in loops:
                if loop not in evaluators:
                    evaluators[loop] = Evaluator(self.options.eval_dataset, self.eval_smpl, self.j_regressor_h36m,
                                                 self.options.eval_pve)
                evaluators[loop].update(outputs[loop], batch)
            if self.writer is not None and batch_idx % self.cfg.VAL_VIS_BATCH_FREQ == 0:
                grid = self._mesh_grid().prediction_grid(images, outputs[-1]['verts'], outputs[-1]['pred_cam'],
                                                         self.cfg.TRAIN.VIS_SAMPLES)
                self.writer.add_image(f'valid/mesh_pred_{batch_idx}', grid, self.epoch, dataformats='HWC')
        results = self._merge_validation(evaluators)
        if -1 not in results:
            logger.warning('validation on %s gave no samples on any process: no results this epoch (is the set '
                           'empty?)', self.options.eval_dataset)
            return {}
        if self.writer is not None:
            names = {'mpjpe_mm': 'mpjpe', 'pa_mpjpe_mm': 'pa-mpjpe', 'pve_mm': 'pve'}
            for loop, res in results.items():
                for key, tag in names.items():
                    if key in res:
                        self.writer.add_scalar(f'eval_error/{tag}_{loop}', res[key], self.epoch)
        final = results[-1]
        logger.info('Epoch %d, step %d  MPJPE: %.2f, PA-MPJPE: %.2f, PVE: %s', self.epoch, self.step,
                    final['mpjpe_mm'], final['pa_mpjpe_mm'],
                    f'{final["pve_mm"]:.2f}' if 'pve_mm' in final else 'n/a')
        return final

    def _merge_validation(self, evaluators: dict) -> dict:
        """``{loop: results}`` of the whole validation set from every process's evaluators (a collective)."""
        from core.evaluation.evaluator import Evaluator
        from core.evaluation.metrics import RunningAverage

        local = {loop: {name: (avg.total, avg.count) for name, avg in ev.metrics.items()}
                 for loop, ev in evaluators.items()}
        results = {}
        for loop, totals in distributed.sum_running_totals(local, self.info).items():
            merged = Evaluator(self.options.eval_dataset, self.eval_smpl, self.j_regressor_h36m, self.options.eval_pve)
            for name, (total, count) in totals.items():
                merged.metrics[name] = RunningAverage()
                merged.metrics[name].total, merged.metrics[name].count = total, count
            results[loop] = merged.results()
        return results

    # ------------------------------------------------------------------------------------- checkpoints
    def save(self, name: str, full: bool = True) -> Path | None:
        """Write ``checkpoints/<name>`` (rank 0; every process calls it): with ``full``, everything an exact
        resume needs, every process's RNG states included; otherwise the weights, config and position only
        (the per-epoch and best files, without the optimiser state)."""
        rng = distributed.gather_objects(train_utils.rng_state(), self.info) if full else None
        if not self.info.is_main or self.log_dir is None:
            return None
        extra = {'seed': self.seed, 'skipped': self.skipped, 'best_pa_mpjpe': self.best_pa_mpjpe,
                 'regressor': self.options.regressor, 'img_res': self.options.img_res,
                 'world_size': self.info.world_size,
                 'body_model': 'standin' if self.body_paths.is_standin else 'smpl'}
        if full:
            extra.update(rng=rng, scheduler=self.scheduler.state_dict())
            if self.scaler is not None:
                extra['scaler'] = self.scaler.state_dict()
        path = save_checkpoint(self.log_dir / 'checkpoints' / name, self.model, self.optimizer if full else None,
                               epoch=self.epoch,
                               step=self.step, cfg=self.cfg, extra=extra, batch_size=self.cfg.TRAIN.BATCH_SIZE,
                               batch_idx=self.batch_in_epoch)
        logger.info('saved %s (epoch %d, batch %d, step %d)', path, self.epoch, self.batch_in_epoch, self.step)
        return path

    def _resume(self, state: dict) -> None:
        load_state(unwrap(self.model), state, self.resume_path, strict=True, optimizer=self.optimizer)
        self.scheduler.load_state_dict(state['scheduler'])
        if self.scaler is not None and 'scaler' in state:
            self.scaler.load_state_dict(state['scaler'])
        self.epoch, self.batch_in_epoch, self.step = state['epoch'], state['batch_idx'], state['total_step_count']
        self.skipped = state.get('skipped', 0)
        self.best_pa_mpjpe = state.get('best_pa_mpjpe', float('inf'))
        if state.get('world_size', 1) == self.info.world_size:
            rng = state['rng']  # one state per process (a dict in single-process checkpoints of older versions)
            train_utils.set_rng_state(rng[self.info.rank] if isinstance(rng, list) else rng)
        else:
            logger.warning('resuming with %d processes instead of %d: the data order continues, the RNG '
                           'streams do not', self.info.world_size, state.get('world_size', 1))
        logger.info('resumed at epoch %d, batch %d, step %d', self.epoch, self.batch_in_epoch, self.step)


def check_training_state(state: dict, path: str | Path) -> None:
    """A ``--resume`` checkpoint must hold the training state (`TRAINING_STATE_KEYS`), not only weights."""
    missing = [k for k in TRAINING_STATE_KEYS if state.get(k) is None]
    if missing:
        raise UserError(f'{path} holds weights only, no training state to resume from (no {missing[0]})',
                        'resume a run that train.py saved, or start a new run from these weights with '
                        '--pretrained_checkpoint')


def log_dir_checkpoint(log_dir: str | Path) -> Path:
    """The checkpoint a ``--resume`` continues from: ``<log_dir>/checkpoints/model_latest.pt``."""
    path = Path(log_dir) / 'checkpoints' / CHECKPOINT_LATEST
    if not path.is_file():
        raise FileNotFoundError(f'--resume: no {CHECKPOINT_LATEST} in {Path(log_dir) / "checkpoints"}; '
                                '--log_dir must be the experiment folder of the run to continue')
    return path
