"""A pipeline of stages, each in its own thread, joined by bounded queues: while one stage works on a frame
the next works on the one before, so several cores are busy; items leave in the order they came in.

The heavy work of every stage of the demo (video decoding, the landmark and detector networks, the
regression network, the fit's and the renderer's tensor operations, PNG and video encoding) runs in
native code that releases Python's interpreter lock, so threads overlap without copying frames between
processes.

A stage is an object with a ``name``, ``process(item) -> iterable of items`` and ``finish() -> iterable of
items`` (what it still holds at the end). A stage may hold items back (a lookahead, a batch) and give
several out later; it must give them out in order.

Errors: the first exception in any stage stops every thread and is raised by `run_pipeline`'s iterator in
the caller's thread; closing the iterator early (the caller stops, Ctrl-C) stops the threads too.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Stage(Protocol):
    """One step of a pipeline (see the module docstring)."""

    name: str

    def process(self, item: Any) -> Iterable[Any]: ...

    def finish(self) -> Iterable[Any]: ...


_END = object()      # the marker that follows the last item through the queues


class StageClock:
    """Busy time per stage (seconds spent in its own code, waiting on queues excluded) and items given out."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.items: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float, items: int) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.items[name] = self.items.get(name, 0) + items

    def lines(self) -> list[str]:
        """One line per stage: busy seconds and items per busy second."""
        out = []
        for name, sec in self.seconds.items():
            n = self.items[name]
            rate = f'{n / sec:7.2f} frames/s' if sec > 0 and n else '      -'
            out.append(f'  {name:<22s} {sec:8.2f} s  {rate}')
        return out


class _StopError(Exception):
    """Raised inside a worker when the pipeline is being stopped."""


def run_pipeline(source: Iterable[Any], stages: Sequence[Stage], queue_size: int = 4,
                 clock: StageClock | None = None, source_name: str = 'decoding') -> Iterator[Any]:
    """Run ``stages`` over ``source`` in threads; yields what the last stage gives out, in order.

    Args:
        source: the items (iterated in a thread of its own, so e.g. video decoding overlaps the rest).
        stages: applied in order.
        queue_size: items waiting between two stages at most (bounds memory: frames are large).
        clock: receives each stage's busy time; the source is timed as ``source_name``.
    """
    stop = threading.Event()
    errors: list[BaseException] = []
    queues = [queue.Queue(maxsize=queue_size) for _ in range(len(stages) + 1)]

    def put(q: queue.Queue, item: Any) -> None:
        while True:
            if stop.is_set():
                raise _StopError
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def get(q: queue.Queue) -> Any:
        while True:
            if stop.is_set():
                raise _StopError
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue

    def timed(name: str, produce, *args) -> list:
        start = time.perf_counter()
        out = list(produce(*args))
        if clock is not None:
            clock.add(name, time.perf_counter() - start, len(out))
        return out

    def feed() -> None:
        try:
            iterator = iter(source)
            while True:
                start = time.perf_counter()
                item = next(iterator, _END)
                if clock is not None and item is not _END:
                    clock.add(source_name, time.perf_counter() - start, 1)
                put(queues[0], item)
                if item is _END:
                    return
        except _StopError:
            return
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            errors.append(err)
            stop.set()

    def work(stage: Stage, inbox: queue.Queue, outbox: queue.Queue) -> None:
        try:
            while True:
                item = get(inbox)
                if item is _END:
                    for out in timed(stage.name, stage.finish):
                        put(outbox, out)
                    put(outbox, _END)
                    return
                for out in timed(stage.name, stage.process, item):
                    put(outbox, out)
        except _StopError:
            return
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=feed, name=f'pipeline-{source_name}', daemon=True)]
    threads += [threading.Thread(target=work, args=(stage, queues[k], queues[k + 1]),
                                 name=f'pipeline-{stage.name}', daemon=True) for k, stage in enumerate(stages)]
    for thread in threads:
        thread.start()
    try:
        while True:
            try:
                item = get(queues[-1])
            except _StopError:
                break
            if item is _END:
                break
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
