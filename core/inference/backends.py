"""The network's inference engines: one object that maps crops to the final SMPL estimate, chosen by a
backend (``torch`` or ``onnx``) and a precision (``fp32`` or ``bf16``), or automatically (see docs/speed.md).

- ``torch``: the PyTorch network in eval mode; ``bf16`` runs it under bfloat16 autocast (the body model stays
  in fp32), used only where the device computes bf16 natively (`utils.precision.native_bf16`).
- ``onnx``: the same network exported to ONNX (`utils.export.onnx_export`, body model inside) and run by
  ONNX Runtime on the CPU, fp32. The file is made from the weights in use on first need and cached (see
  `onnx_cache_path`): beside the checkpoint, or under ``<data root>/cache/onnx`` when the checkpoint's folder
  is not writable or there is no checkpoint. Its name holds a digest of the network's architecture and
  every weight and body-model array as loaded, so a changed checkpoint, another body model or another
  configuration never reuses a stale file; an unreadable (corrupt) file is rebuilt.

``auto`` (both options): on a CPU, ONNX Runtime fp32 when a checkpoint is in use and ONNX Runtime is
installed, else PyTorch fp32; on a GPU, PyTorch fp32. bf16 is never chosen automatically: its outputs differ
from fp32 by millimetres on person crops and by centimetres on unusual inputs (docs/speed.md).

Every backend returns the fields of the network's final ``smpl_out`` entry (fp32, on the backend's
device): ``theta`` (B, 85) ``[cam, betas, pose_aa]``, ``rotmat`` (B, 24, 3, 3), ``pred_shape`` (B, 10),
``pred_cam`` (B, 3) ``[s, tx, ty]``, ``verts`` (B, 6890, 3) metres, ``kp_3d`` (B, 49, 3) metres and
``kp_2d`` (B, 49, 2) normalised crop coordinates.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

BACKENDS = ('auto', 'torch', 'onnx')
PRECISIONS = ('auto', 'fp32', 'bf16')
# Largest absolute difference from PyTorch fp32 (metres, radians, normalised crop units) accepted when a
# freshly exported ONNX file is checked; measured differences are about 1e-6.
ONNX_CHECK_TOLERANCE = 1e-4
# Bumped when the exported graph changes for the same weights (old cache files are then rebuilt).
ONNX_CACHE_VERSION = '1'
_CACHE_KEY_FIELD = 'cache_key'


class BackendError(ValueError):
    """A backend or precision that cannot run here (the message says why and what to use instead)."""


FINAL_FIELDS = ('theta', 'rotmat', 'pred_shape', 'pred_cam', 'verts', 'kp_3d', 'kp_2d')


def _final_fields(final: dict) -> dict[str, torch.Tensor]:
    """The `FINAL_FIELDS` a final ``smpl_out`` entry holds (all of them for PyMAF and HMR), as fp32."""
    return {key: final[key].float() for key in FINAL_FIELDS if key in final}


class TorchBackend:
    """The PyTorch network (eval mode), optionally under bf16 autocast.

    Args:
        model: the PyMAF network; moved to ``device`` and put in eval mode.
        device: torch device.
        precision: 'fp32' or 'bf16' (the caller checks that bf16 is native; see `make_backend`).
    """

    name = 'torch'

    def __init__(self, model: torch.nn.Module, device: str | torch.device = 'cpu', precision: str = 'fp32') -> None:
        from models.pymaf_net import without_iuv

        if precision not in ('fp32', 'bf16'):
            raise BackendError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = precision
        self._forward_kwargs = without_iuv(model)  # the IUV maps are never read at inference

    def describe(self) -> str:
        return f'torch {self.precision} on {self.device}'

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final estimate of (B, 3, 224, 224) ImageNet-normalised crops (fields in the module docstring)."""
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == 'bf16'
                    else nullcontext())
        with autocast:
            preds, _ = self.model(images.to(self.device, non_blocking=True), **self._forward_kwargs)
        return _final_fields(preds['smpl_out'][-1])


class OnnxBackend:
    """The exported network in ONNX Runtime (CPU, fp32).

    Args:
        path: the .onnx file (`utils.export.onnx_export.export_onnx`).
        threads: intra-op threads (default: torch's thread count, so both engines use the same cores).
    """

    name = 'onnx'
    precision = 'fp32'
    device = torch.device('cpu')

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = onnx_session(self.path, threads)

    def describe(self) -> str:
        return f'onnx fp32 on cpu ({self.path})'

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final estimate of (B, 3, 224, 224) ImageNet-normalised crops (fields in the module docstring)."""
        from utils.export.onnx_export import run_onnx

        out = {k: torch.from_numpy(v) for k, v in run_onnx(self.session, images.detach().cpu().numpy()).items()}
        return {'theta': torch.cat([out['pred_cam'], out['betas'], out['pose_aa']], dim=1), 'rotmat': out['rotmat'],
                'pred_shape': out['betas'], 'pred_cam': out['pred_cam'], 'verts': out['verts'],
                'kp_3d': out['joints3d'], 'kp_2d': out['kp_2d']}


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session whose idle threads sleep (they do not spin on cores other stages need)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def onnx_available() -> bool:
    """Whether ONNX export (onnx, onnxscript) and ONNX Runtime are installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ('onnx', 'onnxscript', 'onnxruntime'))


def network_digest(model: torch.nn.Module) -> str:
    """Hex digest of a network's architecture (its module tree, which holds the backbone and the
    configuration's layer sizes and activations) and of every parameter and buffer as loaded, the body model's
    arrays included: equal digests mean the same computation."""
    digest = hashlib.sha256(f'v{ONNX_CACHE_VERSION}\n{model!r}\n'.encode())
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{tensor.dtype}:{tuple(tensor.shape)}\n'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def onnx_cache_path(key: str, checkpoint: str | os.PathLike | None, cache_dir: str | os.PathLike | None = None
                    ) -> Path:
    """Where the ONNX file of digest ``key`` lives: ``<checkpoint stem>.<key[:16]>.onnx`` beside the checkpoint
    when its folder is writable, else (or without a checkpoint) ``<cache_dir>/<stem>.<key[:16]>.onnx`` with
    ``cache_dir`` defaulting to ``<data root>/cache/onnx``."""
    stem = Path(checkpoint).stem if checkpoint else 'pymaf'
    name = f'{stem}.{key[:16]}.onnx'
    if checkpoint is not None:
        folder = Path(checkpoint).resolve().parent
        if os.access(folder, os.W_OK):
            return folder / name
    if cache_dir is None:
        from core.path_config import DATA_DIR

        cache_dir = DATA_DIR / 'cache' / 'onnx'
    return Path(cache_dir) / name


def _cached_session(path: Path, key: str, threads: int | None):
    """The session of an existing cache file made for ``key``, or None when it is missing, unreadable or
    made for other weights."""
    if not path.is_file():
        return None
    try:
        backend = OnnxBackend(path, threads)
    except Exception as err:  # onnxruntime raises its own exception types for a damaged file
        logger.warning('ONNX cache %s is unreadable (%s); rebuilding it', path, str(err).splitlines()[0][:200])
        return None
    stored = backend.session.get_modelmeta().custom_metadata_map.get(_CACHE_KEY_FIELD)
    if stored != key:
        logger.warning('ONNX cache %s was made for other weights; rebuilding it', path)
        return None
    return backend


def _export_checked(model: torch.nn.Module, path: Path, key: str, metadata: dict) -> None:
    """Export ``model`` to ``path`` (written whole, then renamed) and check it against PyTorch fp32."""
    from utils.export.onnx_export import compare_with_torch, export_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        export_onnx(model, tmp, metadata={**metadata, _CACHE_KEY_FIELD: key})
        worst = compare_with_torch(tmp, model, batch_sizes=(2,))
        if max(worst.values()) > ONNX_CHECK_TOLERANCE:
            raise BackendError('the exported ONNX model differs from PyTorch by more than '
                               f'{ONNX_CHECK_TOLERANCE} ({worst}); use --backend torch')
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    stem = path.name[:-len('.onnx') - 17]
    for old in path.parent.glob(f'{stem}.*.onnx'):
        if old != path and re.fullmatch(re.escape(stem) + r'\.[0-9a-f]{16}\.onnx', old.name):
            logger.info('removing stale ONNX cache %s', old)
            old.unlink(missing_ok=True)


def cached_onnx_backend(model: torch.nn.Module, checkpoint: str | os.PathLike | None = None,
                        cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                        metadata: dict | None = None) -> OnnxBackend:
    """An `OnnxBackend` of ``model``, exported on first need and cached (see `onnx_cache_path`).

    Args:
        model: the network with its weights loaded, on the CPU (exported in fp32).
        checkpoint: the file the weights came from (decides where the cache goes); None: ``cache_dir``.
        cache_dir: the cache folder used without a (writable) checkpoint folder.
        threads: ONNX Runtime intra-op threads.
        metadata: extra entries for the file's metadata (e.g. which weights).

    Raises:
        BackendError: the export failed or its outputs differ from PyTorch.
    """
    key = network_digest(model)
    path = onnx_cache_path(key, checkpoint, cache_dir)
    backend = _cached_session(path, key, threads)
    if backend is not None:
        logger.info('ONNX model from cache %s', path)
        return backend
    logger.warning('exporting the network to ONNX (once for these weights): %s', path)
    try:
        try:
            _export_checked(model, path, key, metadata or {})
        except PermissionError:
            if checkpoint is None:
                raise
            path = onnx_cache_path(key, None, cache_dir)
            _export_checked(model, path, key, metadata or {})
    except BackendError:
        raise
    except Exception as err:
        raise BackendError(f'could not export the network to ONNX ({type(err).__name__}: {err}); '
                           'use --backend torch') from err
    return OnnxBackend(path, threads)


def resolve_choice(backend: str, precision: str, device: torch.device, has_checkpoint: bool
                   ) -> tuple[str, str, list[str]]:
    """The concrete ``(backend, precision)`` for the options on ``device``, and notes on what was changed.

    Rules (docs/speed.md): ``auto`` backend: ``onnx`` on a CPU when ONNX Runtime is installed and a checkpoint is
    in use (untrained weights are not worth exporting), else ``torch``. ``auto`` precision: ``fp32``. An
    explicit ``bf16`` where the device has no native bf16 falls back to ``fp32`` with a note (emulated bf16 is
    several times slower).

    Raises:
        BackendError: an unknown option, ``onnx`` on a GPU, ``onnx`` without ONNX Runtime, or ``onnx`` with
            ``bf16``.
    """
    from utils.precision import CPU_BF16_FLAGS, native_bf16

    if backend not in BACKENDS:
        raise BackendError(f'unknown backend {backend!r}; choose one of {", ".join(BACKENDS)}')
    if precision not in PRECISIONS:
        raise BackendError(f'unknown precision {precision!r}; choose one of {", ".join(PRECISIONS)}')
    device = torch.device(device)
    notes = []
    if backend == 'onnx':
        if device.type != 'cpu':
            raise BackendError(f'--backend onnx runs on the CPU (ONNX Runtime\'s CPU provider), not on {device}; '
                               'use --backend torch or --device cpu')
        if precision == 'bf16':
            raise BackendError('--backend onnx runs fp32 only; use --backend torch --precision bf16')
        if not onnx_available():
            raise BackendError('--backend onnx needs onnx, onnxscript and onnxruntime: pip install -r requirements.txt')
        return 'onnx', 'fp32', notes
    if backend == 'auto':
        use_onnx = (device.type == 'cpu' and precision != 'bf16' and has_checkpoint and onnx_available())
        backend = 'onnx' if use_onnx else 'torch'
        if backend == 'onnx':
            return backend, 'fp32', notes
    if precision == 'auto':
        precision = 'fp32'
    elif precision == 'bf16' and not native_bf16(device):
        what = ('this GPU has no native bf16' if device.type == 'cuda' else
                f'this CPU has none of the bf16 instructions {", ".join(CPU_BF16_FLAGS)}')
        notes.append(f'--precision bf16: {what} (emulated bf16 is slower than fp32); running fp32 instead')
        precision = 'fp32'
    return backend, precision, notes


def make_backend(model: torch.nn.Module, device: str | torch.device = 'cpu', backend: str = 'torch',
                 precision: str = 'fp32', checkpoint: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, metadata: dict | None = None
                 ) -> TorchBackend | OnnxBackend:
    """The inference engine for ``model`` chosen by ``backend`` and ``precision`` (see `resolve_choice`).

    Notes (a bf16 fallback, an automatic ONNX choice whose export failed) are logged as warnings. With
    ``backend='auto'`` a failed export falls back to PyTorch fp32; with ``'onnx'`` it raises `BackendError`.
    """
    device = torch.device(device)
    chosen, precision_chosen, notes = resolve_choice(backend, precision, device, checkpoint is not None)
    for note in notes:
        logger.warning(note)
    if chosen == 'onnx':
        try:
            return cached_onnx_backend(model, checkpoint, cache_dir, metadata=metadata)
        except BackendError as err:
            if backend == 'onnx':
                raise
            logger.warning('%s; running PyTorch fp32 instead', err)
            precision_chosen = 'fp32'
    return TorchBackend(model, device, precision_chosen)


def add_backend_args(parser) -> None:
    """Add ``--backend`` and ``--precision`` (defaults 'auto') to an argparse parser or argument group; their
    values go to `make_backend`."""
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='network inference engine: torch, onnx (ONNX Runtime on the CPU, exported once and '
                             'cached beside the checkpoint) or auto (onnx on a CPU with a checkpoint, else torch); '
                             'docs/speed.md')
    parser.add_argument('--precision', default='auto', choices=PRECISIONS,
                        help='fp32, bf16 (torch only; where the CPU or GPU has no native bf16, fp32 with a note) or '
                             'auto (fp32: bf16 moves meshes by millimetres)')


def as_backend(model_or_backend, device: str | torch.device = 'cpu') -> TorchBackend | OnnxBackend:
    """A backend as is; a network wrapped in a PyTorch fp32 `TorchBackend`."""
    if isinstance(model_or_backend, torch.nn.Module):
        return TorchBackend(model_or_backend, device)
    return model_or_backend


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute difference per field of two backend outputs."""
    return {k: float(np.abs(a[k].cpu().numpy() - b[k].cpu().numpy()).max()) for k in a}
