"""utils/heap.py: the heap is trimmed at most once per interval, and trimming gives freed memory back."""
from __future__ import annotations

import numpy as np

from utils import heap


def _rss_mb() -> float:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024


def test_trimmer_trims_at_most_once_per_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, 'trim_heap', lambda: calls.append(1) or True)
    now = [100.0]
    trimmer = heap.HeapTrimmer(every=2.0, clock=lambda: now[0])
    for _ in range(50):          # 0.1 s apart: 5 s in all
        now[0] += 0.1
        trimmer()
    assert len(calls) == trimmer.trims == 2


def test_trim_heap_gives_freed_memory_back():
    """200 MB in 100 kB blocks (kept in glibc's heap, below its mmap threshold), every 50th kept: freeing
    the rest leaves the memory resident (the kept blocks pin the heap) until the heap is trimmed."""
    assert heap._malloc_trim() is not None, 'this project runs on Linux with glibc'
    blocks = [np.ones(12_500) for _ in range(2000)]
    kept = blocks[::50]
    del blocks
    before = _rss_mb()
    assert heap.trim_heap()
    assert before - _rss_mb() > 100
    assert sum(block.sum() for block in kept) == 40 * 12_500
