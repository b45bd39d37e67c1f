"""Batches made ahead by threads of this process: decoding overlaps the model's forward pass without a worker
process, which would add its own resident memory (a forked process maps the parent's pages) and a copy of every
batch. Pillow decodes and resizes, and torch normalises, with the GIL released, so the threads run in parallel
with the forward. Only for deterministic per-item work: threads share torch's global random generator.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor


class ThreadedBatches:
    """collate([dataset[i] for i in batch]) for each batch, in order, made by `threads` threads at most `ahead`
    batches in advance. Iterable like a DataLoader (len, .dataset)."""

    def __init__(self, dataset, batches: Sequence[Sequence[int]], collate: Callable, threads: int = 1,
                 ahead: int = 2, niceness: int = 0):
        self.dataset, self.batches, self.collate = dataset, list(batches), collate
        self.threads, self.ahead, self.niceness = max(1, threads), max(1, ahead), niceness

    def _lower_priority(self) -> None:
        """niceness > 0: the decode threads run when the model's threads wait (Linux: per-thread priority)."""
        if self.niceness > 0 and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
            except OSError:
                pass

    def __len__(self) -> int:
        return len(self.batches)

    def _make(self, batch: Sequence[int]):
        return self.collate([self.dataset[i] for i in batch])

    def __iter__(self) -> Iterator:
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tlearn-decode", initializer=self._lower_priority)
        try:
            todo = iter(self.batches)
            pending = deque(pool.submit(self._make, b) for _, b in zip(range(self.ahead), todo))
            while pending:
                result = pending.popleft().result()
                pending.extend(pool.submit(self._make, b) for _, b in zip(range(1), todo))
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a consumer that stops early waits for no more batches


def batches_of(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
