"""Micro-batching: latents of concurrent requests are classified together in one ``predict_proba`` call.

One worker coroutine per process takes the first waiting request, keeps collecting for up to ``window_s``
(or until ``max_rows`` clips), then classifies the stack in a single background thread and hands every
request its rows back. While a batch is being classified, new requests queue up and form the next batch,
so under load the batches grow by themselves.

The window is not waited out for nothing: requests announce themselves when they start (:meth:`ticket`,
before their latents are decoded), and the batch goes as soon as every announced request has joined it. A
lone request on an idle server is therefore classified at once; the window only holds a batch while other
requests are known to be on their way. ``window_s = 0`` turns batching off: each request is classified on
its own (the baseline of the benchmark).

A batch whose ``predict_proba`` raises is classified again request by request, so a request that breaks the
classifier fails alone and never takes the other requests (of other devices) of its batch with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tinyact.cloud.registry import LoadedModel, ModelRegistry


class NoModelError(RuntimeError):
    """No classifier is loaded yet."""


class Ticket:
    """A request's announcement that it will call :meth:`MicroBatcher.classify` soon."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = False


class MicroBatcher:
    """Gathers ``classify`` calls into batches; use from one event loop (``start`` / ``stop`` in lifespan)."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        window_s: float = 0.002,
        max_rows: int = 1024,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.window_s = window_s
        self.max_rows = max_rows
        self.on_batch = on_batch  # (requests, clips, seconds) per classified batch, for metrics
        # One thread: batches run one after another (the estimators use their own threads inside).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinyact-classify")
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self._coming = 0  # requests announced but not queued yet

    @contextlib.contextmanager
    def ticket(self):
        """Announce a request for the duration of the block; pass the ticket to :meth:`classify`."""
        ticket = Ticket()
        self._coming += 1
        try:
            yield ticket
        finally:
            if not ticket.used:
                self._coming -= 1

    def start(self) -> None:
        if self.window_s > 0 and self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="tinyact-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def classify(self, latents: np.ndarray, ticket: Ticket | None = None) -> tuple[np.ndarray, LoadedModel]:
        """float32 ``[N, D]`` -> (float64 probabilities ``[N, classes]``, the model that produced them)."""
        if ticket is not None and not ticket.used:
            ticket.used = True
            self._coming -= 1
        if self._queue is None:  # batching off
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, [latents])
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((latents, future))
        return await future

    def _predict(self, parts: list[np.ndarray]) -> tuple[np.ndarray, LoadedModel]:
        model = self.registry.current
        if model is None:
            raise NoModelError("no classifier loaded")
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)  # [sum N_i, D]
        start = time.perf_counter()
        probabilities = model.predict_proba(batch)
        if self.on_batch is not None:
            self.on_batch(len(parts), len(batch), time.perf_counter() - start)
        return probabilities, model

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            items = [first]
            rows = len(first[0])
            deadline = loop.time() + self.window_s
            while rows < self.max_rows:
                if self._coming <= 0 and self._queue.empty():
                    break  # nobody else is on the way: don't wait out the window
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                items.append(item)
                rows += len(item[0])
            while rows < self.max_rows and not self._queue.empty():  # whatever queued meanwhile rides along
                item = self._queue.get_nowait()
                items.append(item)
                rows += len(item[0])
            live = [(x, f) for x, f in items if not f.done()]  # a client may have gone away
            if not live:
                continue
            try:
                probabilities, model = await loop.run_in_executor(self._executor, self._predict, [x for x, _ in live])
            except Exception as error:
                if len(live) == 1 or isinstance(error, NoModelError):
                    for _, future in live:
                        if not future.done():
                            future.set_exception(error)
                    continue
                # One request's latents broke the batch: classify each request alone, so that only the
                # guilty one fails and the other devices in the batch get their results.
                for x, future in live:
                    try:
                        alone = await loop.run_in_executor(self._executor, self._predict, [x])
                    except Exception as single:
                        if not future.done():
                            future.set_exception(single)
                    else:
                        if not future.done():
                            future.set_result(alone)
                continue
            offset = 0
            for x, future in live:
                if not future.done():
                    future.set_result((probabilities[offset : offset + len(x)], model))
                offset += len(x)
