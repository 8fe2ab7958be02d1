"""OpenMP threads that sleep while they wait, for programs that share the CPU with other work.

PyTorch's CPU operations run on OpenMP threads. GNU OpenMP's threads spin for a while at the end of every
parallel operation, waiting for each other; when other processes or the program's own threads (the demo's
pipeline stages, data loaders) keep the cores busy, a spinning thread holds the core that the thread it waits
for needs, and every operation stalls for a scheduler time slice. On the project's 2-core CPU under load,
ResNet-50 PyMAF at batch 1 took 1.25 s per crop with spinning threads and 0.18 s with sleeping ones
(docs/speed.md). ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep at once. The OpenMP runtime reads it
when it starts, that is when torch is imported, so scripts call `prefer_passive_wait` before importing torch.
"""
from __future__ import annotations

import os
import sys

POLICY_VARIABLE = 'OMP_WAIT_POLICY'


def prefer_passive_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process unless the user chose a policy, or torch is already
    imported (too late to take effect). Returns whether PASSIVE is the policy in effect."""
    if POLICY_VARIABLE not in os.environ and 'torch' not in sys.modules:
        os.environ[POLICY_VARIABLE] = 'PASSIVE'
    return os.environ.get(POLICY_VARIABLE, '').upper() == 'PASSIVE'


def wait_policy() -> str:
    """The OpenMP wait policy of this process, in words (for benchmark headers)."""
    return os.environ.get(POLICY_VARIABLE, 'unset (GNU OpenMP spins, then sleeps)')
