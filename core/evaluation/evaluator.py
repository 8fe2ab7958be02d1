"""The evaluators of the benchmark protocol (see docs/evaluation.md) and the loop that feeds them.

`Evaluator` scores 3D joints and meshes (MPJPE, PA-MPJPE, PVE, PCK/AUC); `SegmentationEvaluator` scores
LSP silhouettes and part maps. Both take the network's final ``smpl_out`` entry and a dataset batch, so
eval.py, the trainer's validation and tests feed them the same way.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from core import constants
from core.evaluation import metrics
from core.evaluation.protocol import GENDERED_MESH_GT
from utils.geometry import compute_similarity_transform

logger = logging.getLogger(__name__)


def _action_of(imgname: str) -> str:
    """Human3.6M action name from an image name such as ``S9_Walking 1.54138969_000001.jpg``."""
    parts = os.path.basename(imgname).split('_')
    return parts[1].split(' ')[0].split('.')[0] if len(parts) > 1 else 'unknown'


def _h36m_id(imgname: str, index: int) -> int:
    """Sample id of the original's .mat output: subject number * 10000 + frame number (index if unparsable)."""
    base = os.path.splitext(os.path.basename(imgname))[0]
    try:
        subject = int(base.split('_')[0].lstrip('S'))
        return subject * 10000 + int(base.split('_')[-1])
    except ValueError:
        return index


class Evaluator:
    """Accumulates the protocol's metrics over batches of predictions and ground truth.

    Args:
        dataset: benchmark name (selects the joints and the ground truth).
        smpl_models: dict with 'neutral', 'male' and 'female' SMPL modules on the evaluation device.
        j_regressor_h36m: (17, 6890) H36M joint regressor on the evaluation device.
        eval_pve: compute PVE (always on for 3dpw).
    """

    def __init__(self, dataset: str, smpl_models: dict, j_regressor_h36m: torch.Tensor, eval_pve: bool) -> None:
        self.dataset = dataset
        self.smpl = smpl_models
        self.j_regressor = j_regressor_h36m
        self.eval_pve = eval_pve or dataset in GENDERED_MESH_GT
        self.joint_ids = constants.H36M_TO_J17 if dataset == 'mpi-inf-3dhp' else constants.H36M_TO_J14
        self.gt_ids = constants.J24_TO_J17 if dataset == 'mpi-inf-3dhp' else constants.J24_TO_J14
        self.metrics = defaultdict(metrics.RunningAverage)
        self.per_action = defaultdict(metrics.RunningAverage)
        self.saved = defaultdict(list)

    def _gt_vertices(self, batch: dict, device: torch.device) -> torch.Tensor:
        """Ground-truth mesh: gendered SMPL on 3DPW and synthetic data (female where gender == 1), else neutral."""
        pose = batch['pose'].to(device).float()
        betas = batch['betas'].to(device).float()
        if self.dataset not in GENDERED_MESH_GT:
            return self.smpl['neutral'](betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
        verts = self.smpl['male'](betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
        female = batch['gender'].to(device) == 1
        if female.any():
            verts_f = self.smpl['female'](betas=betas[female], body_pose=pose[female, 3:],
                                          global_orient=pose[female, :3]).vertices
            verts = verts.clone()
            verts[female] = verts_f
        return verts

    @torch.no_grad()
    def update(self, pred: dict, batch: dict) -> None:
        """Add one batch: ``pred`` is the model's final ``smpl_out`` entry, ``batch`` the dataset batch."""
        rotmat, betas = pred['rotmat'], pred['pred_shape']
        device = rotmat.device
        pred_verts = self.smpl['neutral'](betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                                          pose2rot=False).vertices
        pred_joints = metrics.regressed_joints(pred_verts, self.j_regressor, self.joint_ids)
        gt_verts = None
        if self.dataset in GENDERED_MESH_GT:
            gt_verts = self._gt_vertices(batch, device)
            gt_joints = metrics.regressed_joints(gt_verts, self.j_regressor, self.joint_ids)
        else:
            gt_joints = batch['pose_3d'][:, self.gt_ids, :3].to(device).float()

        err = metrics.mpjpe(pred_joints, gt_joints) * 1000
        err_pa = metrics.pa_mpjpe(pred_joints, gt_joints) * 1000
        self.metrics['mpjpe'].update(err)
        self.metrics['pa_mpjpe'].update(err_pa)
        if self.eval_pve:
            has_smpl = torch.as_tensor(batch['has_smpl']).to(device) > 0
            if has_smpl.any():
                gt_verts = gt_verts if gt_verts is not None else self._gt_vertices(batch, device)
                self.metrics['pve'].update(metrics.pve(pred_verts[has_smpl], gt_verts[has_smpl]) * 1000)
        if self.dataset == 'mpi-inf-3dhp':
            self.metrics['pck'].update(metrics.pck(pred_joints, gt_joints))
            self.metrics['auc'].update(metrics.auc(pred_joints, gt_joints))
        if self.dataset == 'h36m-p2':
            for name, value in zip(batch['imgname'], err_pa.cpu().numpy()):
                self.per_action[_action_of(name)].update(np.array([value]))

        all_joints = torch.einsum('jv,bvc->bjc', self.j_regressor.to(pred_verts), pred_verts)
        self.saved['pred_joints'].append(all_joints.cpu().numpy())
        self.saved['pose'].append(pred['theta'][:, 13:85].cpu().numpy())
        self.saved['betas'].append(betas.cpu().numpy())
        self.saved['camera'].append(pred['pred_cam'].cpu().numpy())
        self.saved['pred_j14'].append(pred_joints.cpu().numpy())
        self.saved['gt_j14'].append(gt_joints.cpu().numpy())
        self.saved['imgname'].extend(batch['imgname'])

    def results(self) -> dict:
        """Final metrics: means over all samples (mm, or fractions for PCK/AUC)."""
        out = {f'{k}_mm' if k in ('mpjpe', 'pa_mpjpe', 'pve') else k: v.mean for k, v in self.metrics.items()}
        out['num_samples'] = self.metrics['mpjpe'].count
        return out

    def save_predictions(self, result_file: str) -> None:
        """Write the original's outputs: an npz of predictions and a .mat of J14 errors inputs."""
        from scipy.io import savemat

        cat = {k: np.concatenate(v) for k, v in self.saved.items() if k != 'imgname'}
        np.savez(result_file, pred_joints=cat['pred_joints'], pose=cat['pose'], betas=cat['betas'],
                 camera=cat['camera'])
        pred_pa = compute_similarity_transform(torch.from_numpy(cat['pred_j14']).double(),
                                           torch.from_numpy(cat['gt_j14']).double()).numpy()
        ids = np.array([_h36m_id(name, i) for i, name in enumerate(self.saved['imgname'])])
        savemat(result_file + '.mat', {'id': ids, 'pred': cat['pred_j14'], 'pred_pa': pred_pa, 'gt': cat['gt_j14']})


def render_silhouettes(verts: torch.Tensor, cam_crop: torch.Tensor, faces: torch.Tensor,
                       res: int = constants.IMG_RES) -> torch.Tensor:
    """Body masks in the 224 crop: the mesh seen by the crop's perspective camera (f = 5000 px).

    Args:
        verts: (B, V, 3) vertices, metres, camera axes.
        cam_crop: (B, 3) weak-perspective crop camera [s, tx, ty]; depth t_z = 2 f / (res s).
        faces: (F, 3) faces.
        res: crop side in pixels.

    Returns:
        (B, res, res) bool masks.
    """
    from utils.part_utils import render_face_index

    return render_face_index(verts, cam_crop, faces, res) >= 0


class SegmentationEvaluator:
    """LSP segmentation: predicted silhouettes and part maps uncropped to the image against UP-3D labels.

    Foreground: pixel accuracy and mean F1 over {background, body}. Parts (samples with a ``partname``):
    pixel accuracy and mean F1 over 7 classes (6 parts + background); ground-truth pixels labelled 255 are
    left out of the F1 counts and count as background in the accuracy, as in the original.

    Args:
        smpl_neutral: neutral SMPL module.
        mask_dir: root the ``maskname`` and ``partname`` entries are relative to (the UP-3D ``upi-s1h``
            folder).
        face_parts: (F,) part id of every face (`utils.part_utils.load_face_parts`); needed only when
            samples carry a ``partname``.
    """

    def __init__(self, smpl_neutral: torch.nn.Module, mask_dir: str, face_parts: torch.Tensor | None = None) -> None:
        self.smpl = smpl_neutral
        self.faces = smpl_neutral.faces_tensor.long()
        self.mask_dir = mask_dir
        self.face_parts = face_parts
        self.fg = metrics.SegmentationScore(num_classes=2)
        self.parts = metrics.SegmentationScore(num_classes=7, ignore_index=255, accuracy_ignore_label=0)
        self.count = 0
        self.per_action = {}
        # Called with a message for a sample whose mask or part label cannot be read (it is then left out);
        # None: such a sample is an error. `run_evaluation` sets it to the bad-sample policy's counter.
        self.on_bad_sample: Callable[[str], None] | None = None

    def _read_label_image(self, name: str, what: str) -> np.ndarray:
        """(H, W) uint8 label image ``name`` under ``mask_dir``."""
        import cv2

        path = os.path.join(self.mask_dir, name)
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise FileNotFoundError(f'{what} not found: {path} (UP-3D upi-s1h labels; set --mask_dir)')
        return image

    @torch.no_grad()
    def update(self, pred: dict, batch: dict) -> None:
        """Add one batch (see :meth:`Evaluator.update`)."""
        from utils.imutils import uncrop
        from utils.part_utils import parts_of_faces, render_face_index

        rotmat = pred['rotmat']
        verts = self.smpl(betas=pred['pred_shape'], body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                          pose2rot=False).vertices
        face_idx = render_face_index(verts, pred['pred_cam'], self.faces)
        masks = (face_idx >= 0).cpu().numpy().astype(np.uint8)
        partnames = batch.get('partname', [''] * len(masks))
        part_maps = None
        if any(partnames):
            if self.face_parts is None:
                raise ValueError('the annotation has part labels (partname) but no face part table was given')
            part_maps = parts_of_faces(face_idx, self.face_parts).cpu().numpy().astype(np.uint8)
        for i, name in enumerate(batch['maskname']):
            orig_shape = tuple(int(v) for v in batch['orig_shape'][i])
            center, scale = batch['center'][i].numpy(), float(batch['scale'][i])
            try:
                gt = self._read_label_image(name, 'foreground mask')
                gt_parts = self._read_label_image(partnames[i], 'part label image') if partnames[i] else None
            except FileNotFoundError as err:
                if self.on_bad_sample is None:
                    raise
                self.on_bad_sample(str(err))
                continue
            self.fg.update(uncrop(masks[i], center, scale, orig_shape) > 0, gt > 0)
            if gt_parts is not None:
                self.parts.update(uncrop(part_maps[i], center, scale, orig_shape), gt_parts)
            self.count += 1

    def results(self) -> dict:
        """Foreground (and part, when labelled) accuracy and mean F1 (fractions)."""
        out = {'fg_accuracy': self.fg.accuracy, 'fg_f1': self.fg.mean_f1}
        if self.parts.valid:
            out.update(parts_accuracy=self.parts.accuracy, parts_f1=self.parts.mean_f1)
        out['num_samples'] = self.count
        return out


def run_evaluation(model, dataset_name: str, dataset: torch.utils.data.Dataset,
                   device: torch.device, evaluator: Evaluator | SegmentationEvaluator, batch_size: int = 32,
                   num_workers: int = 0, shuffle: bool = False, log_freq: int = 50,
                   bad_sample_policy: str = 'skip') -> dict:
    """Run the network over ``dataset`` and return the evaluator's results (with ``skipped_samples``).

    ``model`` is an inference backend (`core.inference.backends.make_backend`: PyTorch or ONNX Runtime, fp32
    or bf16) or a network, which then runs in PyTorch fp32 on ``device``. A sample that cannot be used is
    skipped and counted, or stops the run, by ``bad_sample_policy``.
    """
    from tqdm import tqdm

    from core.inference.backends import as_backend

    backend = as_backend(model, device)
    loader, bad = guarded_loader(dataset, batch_size, bad_sample_policy, shuffle=shuffle, num_workers=num_workers)
    if isinstance(evaluator, SegmentationEvaluator):
        evaluator.on_bad_sample = bad.report
    for step, batch in enumerate(tqdm(loader, desc=f'eval {dataset_name}'), start=1):
        for message in batch['bad_samples']:
            bad.report(message)
        if 'img' not in batch:
            continue
        pred = {k: v.to(device) for k, v in backend(batch['img']).items()}
        evaluator.update(pred, batch)
        if log_freq > 0 and step % log_freq == 0:
            running = evaluator.results()
            tqdm.write(f'step {step}: ' + '  '.join(f'{k} {v:.4g}' for k, v in running.items() if k != 'num_samples'))
    scored = evaluator.count if isinstance(evaluator, SegmentationEvaluator) else evaluator.metrics['mpjpe'].count
    return finish_guarded(bad, evaluator.results(), scored)


def guarded_loader(dataset, batch_size: int, policy: str, shuffle: bool = False, num_workers: int = 0):
    """A loader whose batches list unusable samples under ``bad_samples`` instead of failing, and the policy's
    counter (`datasets.sampling.BadSampleCounter`, the rule training applies)."""
    from datasets.sampling import BadSampleCounter, GuardedSamples, collate_skipping_bad

    loader = torch.utils.data.DataLoader(GuardedSamples(dataset), batch_size=batch_size, shuffle=shuffle,
                                         num_workers=num_workers, collate_fn=collate_skipping_bad)
    return loader, BadSampleCounter(policy, what='--bad_sample_policy')


def finish_guarded(bad, results: dict, scored: int) -> dict:
    """Add the skip count (and the first skipped samples) to ``results``; nothing scored at all is an error."""
    from datasets.sampling import BadDataError

    if scored == 0:
        first = bad.examples[0] if bad.examples else 'the dataset is empty'
        raise BadDataError(f'no sample could be evaluated ({bad.skipped} skipped; first: {first})',
                           'check --dataset_file and --image_dir')
    results['skipped_samples'] = bad.skipped
    if bad.skipped:
        results['skipped_examples'] = list(bad.examples)
        logger.warning('%d sample(s) were skipped as unusable (see the warnings above); the metrics cover the '
                       'other %d', bad.skipped, scored)
    return results


def build_evaluator(dataset: str, smpl_models: dict, j_regressor_h36m: torch.Tensor, eval_pve: bool = False,
                    mask_dir: str | os.PathLike | None = None, with_parts: bool = False
                    ) -> Evaluator | SegmentationEvaluator:
    """The evaluator of a benchmark: `SegmentationEvaluator` on LSP, `Evaluator` on the 3D benchmarks.

    Args:
        dataset: benchmark name (`core.evaluation.protocol.DATASETS`).
        smpl_models, j_regressor_h36m: from `core.evaluation.protocol.load_eval_assets`.
        eval_pve: also report PVE (3D benchmarks).
        mask_dir: LSP only: root of the UP-3D masks and part labels (default: the ``upi-s1h`` folder of
            ``core.path_config``).
        with_parts: LSP only: the annotation has part labels, so the face part table is loaded.
    """
    if dataset != 'lsp':
        return Evaluator(dataset, smpl_models, j_regressor_h36m, eval_pve)
    from core import path_config
    from utils.part_utils import load_face_parts

    neutral = smpl_models['neutral']
    mask_dir = mask_dir if mask_dir is not None else path_config.DATASET_FOLDERS['upi-s1h']
    face_parts = None
    if with_parts:
        paths = path_config.body_model_paths()
        face_parts = load_face_parts(paths.vertex_texture, paths.cube_parts,
                                     num_faces=len(neutral.faces_tensor)).to(neutral.faces_tensor.device)
    return SegmentationEvaluator(neutral, mask_dir, face_parts=face_parts)
