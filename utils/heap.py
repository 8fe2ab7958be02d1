"""Giving freed memory back to the operating system while a long video runs.

The demo's pipeline allocates and frees large, varied blocks on several threads (frames, crops, network
activations, meshes). glibc's allocator keeps much of what is freed inside its heaps for reuse, and with
varied sizes on several threads that reserve grows: on a 534-frame 1080p clip the demo's resident memory
rose by about 0.4 MB a frame although the data it holds stays small (docs/speed.md), which would be gigabytes
on a long video. `HeapTrimmer` asks glibc (``malloc_trim``) to return the free memory at most every few
seconds; each call takes 2-40 ms. Where the C library is not glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

_libc = None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where it is not available."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        except OSError:
            _libc = False
    return getattr(_libc, 'malloc_trim', None) if _libc else None


def trim_heap() -> bool:
    """Return the allocator's free memory to the operating system; True when glibc did so (it returns
    whether any memory was released), False when nothing was released or the call is not available."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


class HeapTrimmer:
    """Call it as often as convenient (e.g. once per frame); it trims the heap (`trim_heap`) at most once
    every ``every`` seconds.

    Args:
        every: seconds between trims.
        clock: monotonic time in seconds (tests pass their own).
    """

    def __init__(self, every: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = float(every)
        self.clock = clock
        self.last = clock()
        self.trims = 0

    def __call__(self) -> None:
        now = self.clock()
        if now - self.last >= self.every:
            trim_heap()
            self.trims += 1
            self.last = now
