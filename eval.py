"""Evaluate a PyMAF checkpoint on a 3D benchmark with the original's protocol (see docs/evaluation.md).

    python eval.py --checkpoint data/pretrained_model/PyMAF_model_checkpoint.pt --dataset 3dpw
    python eval.py --checkpoint data/pretrained_model/PyMAF_model_checkpoint.pt --dataset h36m-p2 --device cpu
    python eval.py --checkpoint model.pt --dataset 3dpw --dataset_file my_3dpw.npz --image_dir /data/3DPW

Predictions are the final loop's rotation matrices and betas re-run through the local neutral SMPL; joints
are the H36M-regressor joints of the mesh, pelvis-centred, 14 LSP joints (17 for MPI-INF-3DHP). MPJPE,
PA-MPJPE (per-sample similarity Procrustes) and PVE (no alignment; gendered ground truth on 3DPW) are
reported in millimetres, PCK/AUC at 150 mm on MPI-INF-3DHP, and written to a JSON file. On LSP the
predicted silhouette and 6-part map are scored against the UP-3D foreground masks and part labels.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from collections import defaultdict

import numpy as np
import torch

from core import constants
from utils import pose_utils
from utils.geometry import compute_similarity_transform

DATASETS = ['h36m-p1', 'h36m-p2', 'h36m-p2-mosh', '3dpw', 'mpi-inf-3dhp', 'lsp', '3doh50k', 'synthetic']
# Benchmarks whose ground truth is the gendered SMPL mesh of the annotated pose and shape.
GENDERED_MESH_GT = ('3dpw', 'synthetic')

PROTOCOL_TEXT = {
    'joints': 'H36M-regressor joints of the mesh (J_regressor_h36m), pelvis (H36M joint 0) subtracted',
    'alignment_pa': 'per-sample similarity Procrustes (scale, rotation without reflection, translation)',
    'pve': 'mean vertex distance, no root alignment and no translation',
    'prediction': 'final loop rotmat and betas re-run through the local neutral SMPL',
    'units': 'millimetres (PCK and AUC as fractions)',
}

logger = logging.getLogger('eval')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=None, help='checkpoint (.pt) holding the model state under "model"')
    parser.add_argument('--dataset', default='h36m-p2', choices=DATASETS, help='benchmark to evaluate on')
    parser.add_argument('--dataset_file', default=None,
                        help='annotation npz overriding the one from core.path_config (e.g. a synthetic set)')
    parser.add_argument('--image_dir', default=None, help='image root overriding the one from core.path_config')
    parser.add_argument('--batch_size', type=int, default=32, help='images per batch')
    parser.add_argument('--log_freq', type=int, default=50, help='print running errors every this many batches')
    parser.add_argument('--result_file', default=None,
                        help='also save predictions: npz (pred_joints, pose, betas, camera) plus a .mat')
    parser.add_argument('--mask_dir', default=None,
                        help='lsp only: root of the UP-3D masks and part labels (default: the upi-s1h root of '
                             'core.path_config)')
    parser.add_argument('--json_file', default=None,
                        help='results JSON (default: results/eval_<dataset>.json)')
    parser.add_argument('--eval_pve', action='store_true',
                        help='report PVE; for h36m-p2 this switches to the MoSh file h36m_mosh_valid_p2.npz')
    parser.add_argument('--shuffle', action='store_true', help='shuffle the samples')
    add_model_run_args(parser)
    return parser.parse_args(argv)


def add_model_run_args(parser: argparse.ArgumentParser) -> None:
    """The flags every evaluation script shares: data-loader workers, model config and overrides, device."""
    parser.add_argument('--num_workers', type=int, default=min(8, os.cpu_count() or 1), help='data loader workers')
    parser.add_argument('--cfg_file', default=None,
                        help='model configuration (yaml; default configs/pymaf_config.yaml of the repository)')
    parser.add_argument('--misc', nargs='*', default=None, help='config overrides as KEY VALUE pairs')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='torch device (default: cuda when available, else cpu)')


def build_model(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """Build the network the checkpoint was trained as (its config, or --cfg_file) and load it strictly."""
    from models.build import build_from_checkpoint
    from utils.saver import read_checkpoint

    data = None
    if args.checkpoint:
        if not os.path.isfile(args.checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
        data = read_checkpoint(args.checkpoint, map_location=device)
    else:
        logger.warning('no --checkpoint given: evaluating a randomly initialised model')
    model = build_from_checkpoint(data, args.checkpoint, cfg_file=args.cfg_file, misc=args.misc)
    return model.to(device).eval()


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
        self.metrics = defaultdict(pose_utils.RunningAverage)
        self.per_action = defaultdict(pose_utils.RunningAverage)
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
        pred_joints = pose_utils.regressed_joints(pred_verts, self.j_regressor, self.joint_ids)
        gt_verts = None
        if self.dataset in GENDERED_MESH_GT:
            gt_verts = self._gt_vertices(batch, device)
            gt_joints = pose_utils.regressed_joints(gt_verts, self.j_regressor, self.joint_ids)
        else:
            gt_joints = batch['pose_3d'][:, self.gt_ids, :3].to(device).float()

        err = pose_utils.mpjpe(pred_joints, gt_joints) * 1000
        err_pa = pose_utils.pa_mpjpe(pred_joints, gt_joints) * 1000
        self.metrics['mpjpe'].update(err)
        self.metrics['pa_mpjpe'].update(err_pa)
        if self.eval_pve:
            has_smpl = torch.as_tensor(batch['has_smpl']).to(device) > 0
            if has_smpl.any():
                gt_verts = gt_verts if gt_verts is not None else self._gt_vertices(batch, device)
                self.metrics['pve'].update(pose_utils.pve(pred_verts[has_smpl], gt_verts[has_smpl]) * 1000)
        if self.dataset == 'mpi-inf-3dhp':
            self.metrics['pck'].update(pose_utils.pck(pred_joints, gt_joints))
            self.metrics['auc'].update(pose_utils.auc(pred_joints, gt_joints))
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
        self.fg = pose_utils.SegmentationScore(num_classes=2)
        self.parts = pose_utils.SegmentationScore(num_classes=7, ignore_index=255, accuracy_ignore_label=0)
        self.count = 0
        self.per_action = {}

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
            gt = self._read_label_image(name, 'foreground mask')
            self.fg.update(uncrop(masks[i], center, scale, orig_shape) > 0, gt > 0)
            if partnames[i]:
                gt_parts = self._read_label_image(partnames[i], 'part label image')
                self.parts.update(uncrop(part_maps[i], center, scale, orig_shape), gt_parts)
            self.count += 1

    def results(self) -> dict:
        """Foreground (and part, when labelled) accuracy and mean F1 (fractions)."""
        out = {'fg_accuracy': self.fg.accuracy, 'fg_f1': self.fg.mean_f1}
        if self.parts.valid:
            out.update(parts_accuracy=self.parts.accuracy, parts_f1=self.parts.mean_f1)
        out['num_samples'] = self.count
        return out


def load_eval_assets(device: torch.device) -> tuple[dict, torch.Tensor]:
    """Neutral, male and female SMPL and the H36M regressor, from ``core.path_config``."""
    from core import path_config
    from models.smpl import SMPL

    paths = path_config.body_model_paths()
    smpl_models = {g: SMPL(paths.smpl_dir, gender=g, batch_size=1).to(device).eval()
                   for g in ('neutral', 'male', 'female')}
    if not os.path.isfile(paths.joint_regressor_h36m):
        raise FileNotFoundError(f'H36M joint regressor not found: {paths.joint_regressor_h36m} '
                                '(run fetch_data.sh, see the README)')
    j_regressor = torch.from_numpy(np.load(paths.joint_regressor_h36m)).float().to(device)
    return smpl_models, j_regressor


def run_evaluation(model: torch.nn.Module, dataset_name: str, dataset: torch.utils.data.Dataset,
                   device: torch.device, evaluator: Evaluator | SegmentationEvaluator, batch_size: int = 32,
                   num_workers: int = 0, shuffle: bool = False, log_freq: int = 50) -> dict:
    """Run the model over ``dataset`` and return the evaluator's results."""
    from tqdm import tqdm

    from models.pymaf_net import without_iuv

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers)
    for step, batch in enumerate(tqdm(loader, desc=f'eval {dataset_name}'), start=1):
        with torch.no_grad():
            preds_dict, _ = model(batch['img'].to(device), **without_iuv(model))
        evaluator.update(preds_dict['smpl_out'][-1], batch)
        if log_freq > 0 and step % log_freq == 0:
            running = evaluator.results()
            tqdm.write(f'step {step}: ' + '  '.join(f'{k} {v:.4g}' for k, v in running.items() if k != 'num_samples'))
    return evaluator.results()


def format_table(dataset: str, results: dict) -> str:
    """The final printout: one metric per line."""
    names = [('mpjpe_mm', 'MPJPE'), ('pa_mpjpe_mm', 'PA-MPJPE (Reconstruction Error)'), ('pve_mm', 'PVE'),
             ('pck', 'PCK@150mm'), ('auc', 'AUC'), ('fg_accuracy', 'FG accuracy'), ('fg_f1', 'FG F1'),
             ('parts_accuracy', 'Parts accuracy'), ('parts_f1', 'Parts F1 (6 parts + BG)')]
    lines = ['*** Final Results ***', f'dataset: {dataset}  samples: {results["num_samples"]}']
    lines += [f'{label:32s} {results[key]:.2f}' if key.endswith('_mm') else f'{label:32s} {results[key]:.3f}'
              for key, label in names if key in results]
    return '\n'.join(lines)


def _protocol(dataset: str) -> dict:
    """The protocol in words, for the results file."""
    if dataset == 'lsp':
        return {'segmentation': 'predicted mesh silhouette (crop camera, f = 5000 px) uncropped to the image, '
                                'pixel accuracy and mean F1 over background/body against the UP-3D masks',
                'parts': 'part map of the same render (each face\'s part from vertex_texture.npy through '
                         'cube_parts.npy, floor(100 * colour) lookup) uncropped to the image, against the '
                         'UP-3D 6-part labels: pixel accuracy over all pixels (GT 255 counted as background) '
                         'and mean F1 over 7 classes (6 parts + background, GT 255 pixels left out)',
                'prediction': PROTOCOL_TEXT['prediction']}
    return dict(PROTOCOL_TEXT,
                joints_selected='J17 (H36M_TO_J17)' if dataset == 'mpi-inf-3dhp' else 'J14 (H36M_TO_J14)',
                ground_truth='gendered SMPL meshes (male/female) through the H36M regressor'
                if dataset in GENDERED_MESH_GT else 'pose_3d joints of the annotation file (J24_TO_J14/J17)')


def main(args: argparse.Namespace) -> dict:
    from datasets.base_dataset import BaseDataset

    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    device = torch.device(args.device)
    data_name = 'h36m-p2-mosh' if (args.dataset == 'h36m-p2' and args.eval_pve) else args.dataset
    if args.dataset == 'h36m-p2' and args.eval_pve:
        print('Note: PVE is not available for h36m-p2; evaluating on h36m-p2-mosh instead.')
    dataset = BaseDataset(data_name, is_train=False, npz_path=args.dataset_file, img_dir=args.image_dir)
    model = build_model(args, device)
    smpl_models, j_regressor = load_eval_assets(device)
    if args.dataset == 'lsp':
        from core import path_config
        from utils.part_utils import load_face_parts

        mask_dir = args.mask_dir if args.mask_dir is not None else path_config.DATASET_FOLDERS['upi-s1h']
        face_parts = None
        if dataset.partname is not None:
            paths = path_config.body_model_paths()
            face_parts = load_face_parts(paths.vertex_texture, paths.cube_parts,
                                         num_faces=len(smpl_models['neutral'].faces_tensor)).to(device)
        evaluator = SegmentationEvaluator(smpl_models['neutral'], mask_dir, face_parts=face_parts)
    else:
        evaluator = Evaluator(args.dataset, smpl_models, j_regressor, args.eval_pve)
    results = run_evaluation(model, args.dataset, dataset, device, evaluator, batch_size=args.batch_size,
                             num_workers=args.num_workers, shuffle=args.shuffle, log_freq=args.log_freq)
    print(format_table(args.dataset, results))
    if evaluator.per_action:
        print('per-action PA-MPJPE (mm):')
        for action, avg in sorted(evaluator.per_action.items()):
            print(f'  {action:16s} {avg.mean:.2f}')

    report = {
        'dataset': args.dataset,
        'annotation_file': str(dataset.npz_path),
        'checkpoint': str(args.checkpoint) if args.checkpoint else None,
        'protocol': _protocol(args.dataset),
        'results': results,
        'per_action_pa_mpjpe_mm': {k: v.mean for k, v in evaluator.per_action.items()},
    }
    json_file = args.json_file or os.path.join('results', f'eval_{args.dataset}.json')
    os.makedirs(os.path.dirname(os.path.abspath(json_file)), exist_ok=True)
    with open(json_file, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'results written to {json_file}')
    if args.result_file:
        if not isinstance(evaluator, Evaluator):
            raise ValueError('--result_file is only available for the 3D benchmarks')
        evaluator.save_predictions(args.result_file)
    return report


if __name__ == '__main__':
    main(parse_args())
