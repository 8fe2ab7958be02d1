"""train.py under torchrun, with SIGTERM sent to one process (a test harness, not a test module).

The process of rank ``$SIGTERM_RANK`` sends SIGTERM to itself right after its ``$SIGTERM_AFTER_STEP``-th
training step, as a scheduler that signals one process would; everything else is train.py as it is.
"""
from __future__ import annotations

import os
import signal
import sys

import train
from core import trainer

RANK = int(os.environ['SIGTERM_RANK'])
AFTER_STEP = int(os.environ['SIGTERM_AFTER_STEP'])
_original_step = trainer.Trainer.train_step
_steps_done = []


def _step_then_signal(self, batch):
    out = _original_step(self, batch)
    _steps_done.append(1)
    if self.info.rank == RANK and len(_steps_done) == AFTER_STEP:
        os.kill(os.getpid(), signal.SIGTERM)
    return out


if __name__ == '__main__':
    trainer.Trainer.train_step = _step_then_signal
    sys.exit(train.console())
