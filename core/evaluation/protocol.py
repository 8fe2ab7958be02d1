"""The benchmark protocol: which benchmarks exist, their ground truth, the body models and regressor the
metrics use, the model under test, and the protocol in words for the results file (see docs/evaluation.md).

Predictions are the final loop's rotation matrices and betas re-run through the local neutral SMPL; joints
are the H36M-regressor joints of the mesh, pelvis-centred, 14 LSP joints (17 for MPI-INF-3DHP). MPJPE,
PA-MPJPE (per-sample similarity Procrustes) and PVE (no alignment; gendered ground truth on 3DPW) are
reported in millimetres, PCK/AUC at 150 mm on MPI-INF-3DHP. On LSP the predicted silhouette and 6-part map
are scored against the UP-3D foreground masks and part labels.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

logger = logging.getLogger(__name__)

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


def eval_data_name(dataset: str, eval_pve: bool) -> str:
    """The annotation set a benchmark is scored on: Human3.6M protocol 2 has no meshes, so PVE on it uses
    the MoSh fits of the same frames (``h36m-p2-mosh``)."""
    return 'h36m-p2-mosh' if (dataset == 'h36m-p2' and eval_pve) else dataset


def load_model(checkpoint: str | os.PathLike | None, device: torch.device, cfg_file: str | None = None,
               misc: list[str] | None = None) -> torch.nn.Module:
    """Build the network the checkpoint was trained as (its config, or ``cfg_file``) and load it strictly.

    Args:
        checkpoint: path of the checkpoint; None evaluates a randomly initialised model (with a warning).
        device: where the model goes (in eval mode).
        cfg_file, misc: config overrides (see `models.build.checkpoint_cfg`).

    Raises:
        FileNotFoundError: no file at ``checkpoint``.
    """
    from models.build import build_from_checkpoint
    from utils.saver import read_checkpoint

    data = None
    if checkpoint:
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        data = read_checkpoint(checkpoint, map_location=device)
    else:
        logger.warning('no --checkpoint given: evaluating a randomly initialised model')
    model = build_from_checkpoint(data, checkpoint, cfg_file=cfg_file, misc=misc)
    return model.to(device).eval()


def model_record(checkpoint: str | os.PathLike | None, cfg_file: str | None = None,
                 misc: list[str] | None = None) -> dict:
    """What the numbers were computed with, for the results file.

    Returns:
        ``checkpoint``: path, SHA-256, size and training position (None without a checkpoint); ``config``:
        the YAML of the config the network was built with (as `load_model` builds it); ``body_model``: the
        body model the network was trained with and the one the metrics are computed with, 'smpl'
        (official) or 'standin' (the project's stand-in body: such numbers are not comparable with the
        paper's), and ``official_smpl`` when both are the official SMPL.
    """
    from core import path_config
    from models.build import checkpoint_cfg, checkpoint_holds_body_model
    from models.smpl import SMPL
    from utils.saver import file_sha256, read_checkpoint

    data = read_checkpoint(checkpoint, mmap=True) if checkpoint else None
    paths = path_config.body_model_paths()
    evaluation_body = 'standin' if paths.is_standin else 'smpl'
    network_body = evaluation_body
    if data is not None and data.get('body_model'):
        network_body = data['body_model']
    elif data is not None and checkpoint_holds_body_model(data):
        # Arrays carried by the checkpoint (the released one holds the official SMPL's): the local body or the other.
        same = torch.equal(data['model']['regressor.0.smpl.v_template'].float(), SMPL(paths.smpl_dir).v_template)
        network_body = evaluation_body if same else {'smpl': 'standin', 'standin': 'smpl'}[evaluation_body]
    record = None
    if data is not None:
        record = {'path': str(checkpoint), 'sha256': file_sha256(checkpoint), 'size_bytes': os.path.getsize(checkpoint),
                  'epoch': data.get('epoch'), 'total_step_count': data.get('total_step_count')}
    return {'checkpoint': record, 'config': checkpoint_cfg(data, cfg_file, misc).dump(),
            'body_model': {'network': network_body, 'evaluation': evaluation_body,
                           'official_smpl': network_body == evaluation_body == 'smpl'}}


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


def format_table(dataset: str, results: dict) -> str:
    """The final printout: one metric per line."""
    names = [('mpjpe_mm', 'MPJPE'), ('pa_mpjpe_mm', 'PA-MPJPE (Reconstruction Error)'), ('pve_mm', 'PVE'),
             ('pck', 'PCK@150mm'), ('auc', 'AUC'), ('fg_accuracy', 'FG accuracy'), ('fg_f1', 'FG F1'),
             ('parts_accuracy', 'Parts accuracy'), ('parts_f1', 'Parts F1 (6 parts + BG)')]
    skipped = f'  skipped: {results["skipped_samples"]}' if results.get('skipped_samples') else ''
    lines = ['*** Final Results ***', f'dataset: {dataset}  samples: {results["num_samples"]}{skipped}']
    lines += [f'{label:32s} {results[key]:.2f}' if key.endswith('_mm') else f'{label:32s} {results[key]:.3f}'
              for key, label in names if key in results]
    return '\n'.join(lines)


def protocol_description(dataset: str) -> dict:
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
