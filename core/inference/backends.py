"""The network's inference engines: one object that maps crops to the final SMPL estimate, chosen by a
backend (``torch`` or ``onnx``) and a precision (``fp32`` or ``bf16``), or automatically (see docs/speed.md).

- ``torch fp32``: the network's lean forward (`core.inference.lean`: batch norms folded, intermediate feedback
  steps posing only the vertices they read; on the CPU packed oneDNN convolutions, `core.inference.onednn`).
  Outputs equal the network's to float rounding; ``TorchBackend(model)`` runs the network as it is, the
  reference every engine is compared with.
- ``torch bf16``: the lean forward with bf16 channels-last feature maps and the extractors, regressors and body
  model in fp32; only where the device computes bf16 natively (`utils.precision.native_bf16`). Outputs within
  `BF16_TOLERANCE` of fp32 on person crops.
- ``onnx fp32``: the lean forward in fp32 exported to ONNX (`utils.export.onnx_export`, body model inside)
  and run by ONNX Runtime (CPU, or CUDA with onnxruntime-gpu). Outputs within `ONNX_CHECK_TOLERANCE` of
  PyTorch fp32. The file is made from the weights in use on first need (a few seconds) and cached (see
  `onnx_cache_path`): beside the checkpoint, or under ``<data root>/cache/onnx`` when the checkpoint's folder
  is not writable or there is no checkpoint. Its name holds a digest of the network's architecture and
  every weight and body-model array as loaded, so a changed checkpoint, another body model or another
  configuration never reuses a stale file; an unreadable (corrupt) file is rebuilt.

``auto`` picks the fastest engine within tolerance for the device (`resolve_choice`); `check_backend` refuses
impossible combinations up front with one line.

Every backend returns the fields of the network's final ``smpl_out`` entry (fp32, on the backend's
device): ``theta`` (B, 85) ``[cam, betas, pose_aa]``, ``rotmat`` (B, 24, 3, 3), ``pred_shape`` (B, 10),
``pred_cam`` (B, 3) ``[s, tx, ty]``, ``verts`` (B, 6890, 3) metres, ``kp_3d`` (B, 49, 3) metres and
``kp_2d`` (B, 49, 2) normalised crop coordinates.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import re
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from utils.cli import InputError

logger = logging.getLogger(__name__)

BACKENDS = ('auto', 'torch', 'onnx')
PRECISIONS = ('auto', 'fp32', 'bf16')
# Largest absolute difference from PyTorch fp32 (metres, radians, normalised crop units) accepted when a
# freshly exported ONNX file is checked; measured differences are about 1e-6.
ONNX_CHECK_TOLERANCE = 1e-4
# Largest absolute difference of torch bf16 from torch fp32 expected on person crops (metres for vertices and
# joints, crop units for 2D joints and cameras, radians for poses): the feature maps keep 8 bits of mantissa;
# measured up to 2e-3 in vertices and joints and 5e-3 in poses with the demo weights (docs/speed.md). Inputs
# far from any person (noise) can move further.
BF16_TOLERANCE = 1e-2
# Bumped when the exported graph changes for the same weights (old cache files are then rebuilt).
ONNX_CACHE_VERSION = '3'
_CACHE_KEY_FIELD = 'cache_key'


class BackendError(InputError):
    """A backend or precision that cannot run here (one line: why, and what to use instead)."""


FINAL_FIELDS = ('theta', 'rotmat', 'pred_shape', 'pred_cam', 'verts', 'kp_3d', 'kp_2d')


def _final_fields(final: dict) -> dict[str, torch.Tensor]:
    """The `FINAL_FIELDS` a final ``smpl_out`` entry holds (all of them for PyMAF and HMR), as fp32."""
    return {key: final[key].float() for key in FINAL_FIELDS if key in final}


class TorchBackend:
    """The network in PyTorch (eval mode): as it is, or through its lean forward (`core.inference.lean`).

    ``lean=False`` runs the network itself: the reference every engine is compared with (fp32). ``lean=True``
    runs `core.inference.lean.LeanPyMAF`: batch norms folded, intermediate feedback steps posing only the
    vertices they read, on the CPU packed oneDNN convolutions (`core.inference.onednn`); in fp32 its outputs
    equal the network's to float rounding, in bf16 the feature maps are bf16 (channels-last) and the
    extractors, regressors and body model stay fp32. Networks the lean forward does not cover (HMR, test
    doubles) run as they are, in bf16 under autocast.

    Args:
        model: the PyMAF network; moved to ``device`` and put in eval mode.
        device: torch device.
        precision: 'fp32' or 'bf16' (the caller checks that bf16 is native; see `make_backend`).
        lean: run the lean forward where it applies (`make_backend` does); bf16 always does.
    """

    name = 'torch'

    def __init__(self, model: torch.nn.Module, device: str | torch.device = 'cpu', precision: str = 'fp32',
                 lean: bool = False) -> None:
        from core.inference import lean as lean_forward
        from models.pymaf_net import without_iuv

        if precision not in ('fp32', 'bf16'):
            raise BackendError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = precision
        self._forward_kwargs = without_iuv(model)  # the IUV maps are never read at inference
        self._network = self.model
        self._autocast = False
        if (lean or precision == 'bf16') and lean_forward.supports(self.model):
            dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
            on_cpu = self.device.type == 'cpu'
            self._network = lean_forward.LeanPyMAF(self.model, dtype, channels_last=on_cpu or precision == 'bf16',
                                                   packed=on_cpu).eval()
        else:
            self._autocast = precision == 'bf16'
        self.lean = self._network is not self.model

    def describe(self) -> str:
        how = ' lean' if self.lean else ' (autocast)' if self._autocast else ''
        return f'torch {self.precision}{how} on {self.device}'

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final estimate of (B, 3, 224, 224) ImageNet-normalised crops (fields in the module docstring)."""
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self._autocast else nullcontext())
        with autocast:
            preds, _ = self._network(images.to(self.device, non_blocking=True), **self._forward_kwargs)
        return _final_fields(preds['smpl_out'][-1])


class OnnxBackend:
    """The exported network in ONNX Runtime, fp32: on the CPU, or on a CUDA GPU where ONNX Runtime has its
    CUDA provider (onnxruntime-gpu).

    Args:
        path: the .onnx file (`utils.export.onnx_export.export_onnx`).
        threads: intra-op threads (default: torch's thread count, so both engines use the same cores).
        device: 'cpu' or a CUDA device (outputs are returned there).
    """

    name = 'onnx'
    precision = 'fp32'

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str | torch.device = 'cpu'
                 ) -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        self.session = onnx_session(self.path, threads, self.device)

    def describe(self) -> str:
        return f'onnx fp32 on {self.device} ({self.path})'

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Final estimate of (B, 3, 224, 224) ImageNet-normalised crops (fields in the module docstring)."""
        from utils.export.onnx_export import run_onnx

        out = {k: torch.from_numpy(v).to(self.device)
               for k, v in run_onnx(self.session, images.detach().cpu().numpy()).items()}
        return {'theta': torch.cat([out['pred_cam'], out['betas'], out['pose_aa']], dim=1), 'rotmat': out['rotmat'],
                'pred_shape': out['betas'], 'pred_cam': out['pred_cam'], 'verts': out['verts'],
                'kp_3d': out['joints3d'], 'kp_2d': out['kp_2d']}


def onnx_session(path: str | os.PathLike, threads: int | None = None, device: str | torch.device = 'cpu'):
    """An ONNX Runtime session (all graph optimisations, the default) whose idle CPU threads sleep: they do not
    spin on cores other stages need. On a CUDA device it runs on ONNX Runtime's CUDA provider."""
    import onnxruntime as ort

    device = torch.device(device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    providers = ['CPUExecutionProvider']
    if device.type == 'cuda':
        providers.insert(0, ('CUDAExecutionProvider', {'device_id': device.index or 0}))
    return ort.InferenceSession(str(path), options, providers=providers)


def onnx_available() -> bool:
    """Whether ONNX export (onnx) and ONNX Runtime are installed (onnxscript is needed only where torch has no
    tracing exporter any more; see `utils.export.onnx_export.export_onnx`)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ('onnx', 'onnxruntime'))


def onnx_cuda_available() -> bool:
    """Whether ONNX Runtime has its CUDA provider (the onnxruntime-gpu package)."""
    import onnxruntime as ort

    return 'CUDAExecutionProvider' in ort.get_available_providers()


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


def _cached_session(path: Path, key: str, threads: int | None, device: str | torch.device = 'cpu'):
    """The backend of an existing cache file made for ``key``, or None when it is missing, unreadable or
    made for other weights."""
    if not path.is_file():
        return None
    try:
        backend = OnnxBackend(path, threads, device)
    except Exception as err:  # onnxruntime raises its own exception types for a damaged file
        logger.warning('ONNX cache %s is unreadable (%s); rebuilding it', path, str(err).splitlines()[0][:200])
        return None
    stored = backend.session.get_modelmeta().custom_metadata_map.get(_CACHE_KEY_FIELD)
    if stored != key:
        logger.warning('ONNX cache %s was made for other weights; rebuilding it', path)
        return None
    return backend


def _export_checked(model: torch.nn.Module, path: Path, key: str, metadata: dict) -> None:
    """Export ``model``'s lean forward (`core.inference.lean`, where it applies) to ``path`` (written whole, then
    renamed) and check it against the network in PyTorch fp32 at two batch sizes (the batch is dynamic)."""
    from core.inference import lean
    from utils.export.onnx_export import compare_with_torch, export_onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{threading.get_ident()}.tmp')
    try:
        exported = lean.LeanPyMAF(model) if lean.supports(model) else model
        export_onnx(exported, tmp, metadata={**metadata, _CACHE_KEY_FIELD: key})
        worst = compare_with_torch(tmp, model, batch_sizes=(1, 3))
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
                        metadata: dict | None = None, device: str | torch.device = 'cpu') -> OnnxBackend:
    """An `OnnxBackend` of ``model``, exported on first need and cached (see `onnx_cache_path`).

    Args:
        model: the network with its weights loaded (exported in fp32, through its lean forward).
        checkpoint: the file the weights came from (decides where the cache goes); None: ``cache_dir``.
        cache_dir: the cache folder used without a (writable) checkpoint folder.
        threads: ONNX Runtime intra-op threads.
        metadata: extra entries for the file's metadata (e.g. which weights).
        device: where ONNX Runtime runs ('cpu', or 'cuda' with its CUDA provider).

    Raises:
        BackendError: the export failed or its outputs differ from PyTorch.
    """
    key = network_digest(model)
    path = onnx_cache_path(key, checkpoint, cache_dir)
    backend = _cached_session(path, key, threads, device)
    if backend is not None:
        logger.info('ONNX model from cache %s', path)
        return backend
    logger.warning('exporting the network to ONNX (once for these weights, a few seconds): %s', path)
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
        raise BackendError(f'could not export the network to ONNX ({type(err).__name__}: {err})',
                           'use --backend torch') from err
    return OnnxBackend(path, threads, device)


def check_backend(backend: str, precision: str, device: str | torch.device) -> None:
    """Check a ``--backend`` / ``--precision`` / device combination before any work.

    Raises:
        BackendError (a `utils.cli.UserError`: one line, what is wrong and what to use instead): an unknown
            name; ``onnx`` without ONNX Runtime, with ``bf16``, or on a CUDA device without ONNX Runtime's CUDA
            provider; ``bf16`` on a device that does not compute it natively (emulated bf16 is several times
            slower than fp32); a device other than CPU and CUDA.
    """
    from utils.precision import CPU_BF16_FLAGS, native_bf16

    if backend not in BACKENDS:
        raise BackendError(f'unknown backend {backend!r}', f'choose one of {", ".join(BACKENDS)}')
    if precision not in PRECISIONS:
        raise BackendError(f'unknown precision {precision!r}', f'choose one of {", ".join(PRECISIONS)}')
    device = torch.device(device)
    if device.type not in ('cpu', 'cuda'):
        raise BackendError(f'the inference backends run on cpu or cuda, not on {device}', 'use --device cpu')
    if backend == 'onnx':
        if precision == 'bf16':
            raise BackendError('--backend onnx runs fp32 only (ONNX Runtime has no bf16 convolutions)',
                               'use --backend torch --precision bf16, or --precision fp32')
        if not onnx_available():
            raise BackendError('--backend onnx needs onnx and onnxruntime', 'pip install -r requirements.txt')
        if device.type == 'cuda' and not onnx_cuda_available():
            raise BackendError(f'--backend onnx on {device} needs ONNX Runtime\'s CUDA provider (the onnxruntime-gpu '
                               'package), which is not installed', 'use --backend torch, or --device cpu')
    if precision == 'bf16' and not native_bf16(device):
        what = (('no CUDA GPU is available' if not torch.cuda.is_available() else 'this GPU has no native bf16')
                if device.type == 'cuda' else
                f'this CPU has none of the bf16 instructions {"/".join(CPU_BF16_FLAGS)} (or torch runs without its '
                'AVX-512 kernels)')
        raise BackendError(f'--precision bf16: {what}, so bf16 would be emulated, several times slower than fp32',
                           'use --precision fp32 or auto')


def resolve_choice(backend: str, precision: str, device: str | torch.device, has_checkpoint: bool
                   ) -> tuple[str, str]:
    """The concrete ``(backend, precision)`` for the options on ``device`` (after `check_backend`).

    ``auto`` picks the fastest engine whose outputs are within tolerance (docs/speed.md):

    - a CPU with native bf16 (`utils.precision.native_bf16`: AVX512-BF16 or AMX-BF16 with torch's AVX-512
      kernels): ``torch bf16`` (the lean forward with bf16 feature maps, about 2x PyTorch fp32 on the project's
      CPU at batch 1 and 32; outputs within `BF16_TOLERANCE` of fp32 on person crops);
    - another CPU: ``onnx fp32`` when ONNX Runtime is installed and a checkpoint is in use (the export is
      cached beside it; untrained weights are not worth exporting), else ``torch fp32``;
    - a GPU: ``torch fp32`` (no GPU measurements yet).

    An explicit backend or precision is kept and the other option filled in by the same rule (``onnx`` is fp32;
    ``bf16`` runs on ``torch``).

    Raises:
        BackendError: see `check_backend`.
    """
    from utils.precision import native_bf16

    check_backend(backend, precision, device)
    device = torch.device(device)
    if backend == 'onnx':
        return 'onnx', 'fp32'
    bf16 = device.type == 'cpu' and native_bf16(device)
    if precision == 'auto':
        precision = 'bf16' if bf16 and backend in ('auto', 'torch') else 'fp32'
    if backend == 'auto':
        use_onnx = device.type == 'cpu' and precision == 'fp32' and has_checkpoint and onnx_available()
        backend = 'onnx' if use_onnx else 'torch'
    return backend, precision


def make_backend(model: torch.nn.Module, device: str | torch.device = 'cpu', backend: str = 'torch',
                 precision: str = 'fp32', checkpoint: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, metadata: dict | None = None
                 ) -> TorchBackend | OnnxBackend:
    """The inference engine for ``model`` chosen by ``backend`` and ``precision`` (see `resolve_choice`).

    With ``backend='auto'`` a failed ONNX export is logged as a warning and PyTorch fp32 runs instead; with
    ``'onnx'`` it raises `BackendError`.
    """
    device = torch.device(device)
    chosen, precision_chosen = resolve_choice(backend, precision, device, checkpoint is not None)
    if chosen == 'onnx':
        try:
            return cached_onnx_backend(model, checkpoint, cache_dir, metadata=metadata, device=device)
        except BackendError as err:
            if backend == 'onnx':
                raise
            logger.warning('%s; running PyTorch fp32 instead', err)
            precision_chosen = 'fp32'
    engine = TorchBackend(model, device, precision_chosen, lean=True)
    logger.info('network inference: %s', engine.describe())
    return engine


def make_backend_async(model: torch.nn.Module, device: str | torch.device = 'cpu', backend: str = 'torch',
                       precision: str = 'fp32', checkpoint: str | os.PathLike | None = None,
                       cache_dir: str | os.PathLike | None = None, metadata: dict | None = None
                       ) -> concurrent.futures.Future:
    """`make_backend` in a background thread: returns at once with a future of the backend, so that a first
    ONNX export or the bf16 copy of the feature layers overlaps other work (reading the video, finding people).

    The options are checked here first (`check_backend`), so a wrong combination raises at once; errors of the
    build itself (a failed explicit ONNX export) come out of ``future.result()``.
    """
    check_backend(backend, precision, device)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='backend')
    try:
        return executor.submit(make_backend, model, device, backend, precision, checkpoint, cache_dir, metadata)
    finally:
        executor.shutdown(wait=False)


def add_backend_args(parser, precision: str = 'auto') -> None:
    """Add ``--backend`` (default 'auto') and ``--precision`` (default ``precision``) to an argparse parser or
    argument group; their values go to `check_backend` and `make_backend`. The evaluation scripts default to
    'fp32', so that their metrics are exactly those of the network; the demo to 'auto'."""
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='network inference engine: torch, onnx (ONNX Runtime, exported once and cached beside '
                             'the checkpoint) or auto (the fastest within tolerance here: torch bf16 on a CPU with '
                             'native bf16, else onnx on a CPU with a checkpoint, else torch fp32); docs/speed.md')
    parser.add_argument('--precision', default=precision, choices=PRECISIONS,
                        help='fp32, bf16 (torch only, where the CPU or GPU computes bf16 natively; meshes move by '
                             'about a millimetre) or auto (see --backend)')


def as_backend(model_or_backend, device: str | torch.device = 'cpu') -> TorchBackend | OnnxBackend:
    """A backend as is; a network wrapped in a PyTorch fp32 `TorchBackend`."""
    if isinstance(model_or_backend, torch.nn.Module):
        return TorchBackend(model_or_backend, device)
    return model_or_backend


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute difference per field of two backend outputs."""
    return {k: float(np.abs(a[k].cpu().numpy() - b[k].cpu().numpy()).max()) for k in a}
