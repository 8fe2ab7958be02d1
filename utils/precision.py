"""Mixed precision only where the hardware computes it natively.

bfloat16 autocast pays off only where matrix products and convolutions run in bf16 in hardware: CUDA
GPUs with bf16 units (Ampere and later) and x86 CPUs with the AVX512-BF16 or AMX-BF16 instructions. On
other CPUs (AVX2 or plain AVX-512) PyTorch emulates bf16 through conversions to and from fp32, and a
training step becomes many times slower than in fp32. `autocast_dtype` therefore falls back to fp32
there and says so once.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

# x86 CPU features (names as in /proc/cpuinfo) that compute bf16 dot products in hardware.
CPU_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')

_warned: set[tuple[str, str]] = set()


def cpu_flags() -> set[str]:
    """This CPU's feature flags: torch's own detection where it has one, else the flags of /proc/cpuinfo."""
    capabilities = getattr(torch.cpu, 'get_capabilities', None)
    if capabilities is not None:
        return {name for name, value in capabilities().items() if value is True}
    cpuinfo = Path('/proc/cpuinfo')
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith('flags'):
            return set(line.split(':', 1)[1].split())
    return set()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products and convolutions in hardware (not emulated).

    CUDA: the GPU supports bf16 without emulation. CPU: one of `CPU_BF16_FLAGS` is present (AVX512-BF16,
    AMX-BF16) and torch's kernels are not limited below AVX-512 (``ATEN_CPU_CAPABILITY=avx2`` or a build
    without AVX-512 kernels). Other devices: False.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == 'cpu':
        kernels = torch.backends.cpu.get_cpu_capability()
        return bool(cpu_flags() & set(CPU_BF16_FLAGS)) and kernels.startswith('AVX512')
    return False


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a ``TRAIN.AMP`` setting on ``device``; None means fp32 (no autocast).

    Args:
        amp: 'none', 'bf16' or 'fp16'.
        device: the training device.

    'bf16' on a device without native bf16 (`native_bf16`) falls back to fp32, with one warning per
    process; 'fp16' needs a GPU.
    """
    device = torch.device(device)
    if amp not in ('none', 'bf16', 'fp16'):
        raise ValueError(f"TRAIN.AMP must be 'none', 'bf16' or 'fp16', got {amp!r}")
    if amp == 'none':
        return None
    if amp == 'fp16':
        if device.type != 'cuda':
            raise ValueError('TRAIN.AMP fp16 needs a GPU; on CPU use bf16 (used where the CPU has AVX512-BF16 or '
                             'AMX) or none')
        return torch.float16
    if native_bf16(device):
        return torch.bfloat16
    if (amp, device.type) not in _warned:
        _warned.add((amp, device.type))
        what = ('this GPU has no bf16 units' if device.type == 'cuda' else
                f'this CPU has none of the bf16 instructions {", ".join(CPU_BF16_FLAGS)} (emulated bf16 runs '
                'many times slower than fp32)')
        logger.warning('TRAIN.AMP bf16: %s; training in fp32 instead', what)
    return None
