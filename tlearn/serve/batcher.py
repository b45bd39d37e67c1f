"""Micro-batching: concurrent requests that arrive while the model is busy share its next forward pass."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class MicroBatcher:
    """Queue image arrays; one worker runs the model on up to max_batch images at a time, off the event loop."""

    def __init__(self, infer: Callable[[np.ndarray], np.ndarray], max_batch: int = 8, wait_ms: float = 2.0):
        self.infer = infer
        self.max_batch = max(1, int(max_batch))
        self.wait = max(0.0, wait_ms) / 1000.0
        self.batches = 0
        self.images = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlearn-infer")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, arrays: np.ndarray) -> np.ndarray:
        """uint8 (k, S, S, 3) -> probabilities (k, C), computed in whichever batch it lands in."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((arrays, future))
        return await future

    async def _collect(self) -> list:
        items = [await self._queue.get()]
        n = len(items[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while n < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            items.append(item)
            n += len(item[0])
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            live = [(a, f) for a, f in items if not f.done()]  # clients that went away are dropped
            if not live:
                continue
            try:
                probs = await loop.run_in_executor(self._executor, self.infer, np.concatenate([a for a, _ in live]))
            except Exception as exc:  # the model failed: every waiting request gets the error, the worker lives on
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            self.batches += 1
            self.images += len(probs)
            start = 0
            for arrays, f in live:
                if not f.done():
                    f.set_result(probs[start:start + len(arrays)])
                start += len(arrays)
