"""Request scheduling: a queue per model version served by its instance threads.

Every inference runs on an instance thread, never on the event loop: the loop parses a
request, queues it and goes on; onnxruntime releases the GIL while it computes. Without
dynamic batching an instance takes one request at a time (Triton's default scheduler). With
it, an instance takes every queued request that fits ``max_batch_size``, waiting up to
``max_queue_delay_us`` after the oldest one for more unless a preferred batch size is reached,
concatenates their inputs along the batch dimension, runs the model once and splits the
outputs back per request. Results go back to the loop in one ``call_soon_threadsafe`` per
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hepfpga.deploy.metrics import ModelStats
from hepfpga.deploy.model_spec import DynamicBatching

__all__ = ["InferenceRequest", "Runner", "Scheduler"]

#: Runs a model on a list of input arrays (in the model's input order) and returns its outputs.
Runner = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(eq=False)
class InferenceRequest:
    """One queued request: inputs in the model's order, their batch size, and where the
    outputs go (an asyncio future resolved on its own loop)."""

    inputs: list[np.ndarray]
    batch_size: int
    future: asyncio.Future[list[np.ndarray]]
    loop: asyncio.AbstractEventLoop
    received_ns: int = field(default_factory=time.perf_counter_ns)
    enqueued_ns: int = 0


def _resolve(items: list[tuple[asyncio.Future[list[np.ndarray]], object, bool]]) -> None:
    for future, value, ok in items:
        if future.done():  # cancelled: the client went away
            continue
        if ok:
            future.set_result(value)  # type: ignore[arg-type]
        else:
            future.set_exception(value)  # type: ignore[arg-type]


class Scheduler:
    """The queue of one model version and its instance threads (one runner each)."""

    def __init__(
        self,
        runners: Sequence[Runner],
        *,
        max_batch_size: int,
        dynamic_batching: DynamicBatching | None,
        stats: ModelStats,
        name: str = "model",
    ) -> None:
        self._queue: deque[InferenceRequest] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._max_batch = max(max_batch_size, 1)
        self._batching = dynamic_batching if max_batch_size > 0 else None
        self._stats = stats
        self._threads = [
            threading.Thread(
                target=self._work, args=(runner,), name=f"{name}-instance-{i}", daemon=True
            )
            for i, runner in enumerate(runners)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, request: InferenceRequest) -> None:
        """Queue ``request``; its future is resolved on its loop when the batch has run."""
        request.enqueued_ns = time.perf_counter_ns()
        with self._cond:
            if self._closing:
                raise RuntimeError("the model is being unloaded")
            self._stats.add_pending()
            self._queue.append(request)
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the instance threads."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- instance threads -------------------------------------------------------------------

    def _take(self) -> list[InferenceRequest] | None:
        """Called with the lock held: the next batch, or None when closing and empty."""
        queue = self._queue
        batching = self._batching
        while True:
            while not queue:
                if self._closing:
                    return None
                self._cond.wait()
            if batching is None:
                return [queue.popleft()]
            n, total = self._fitting()
            preferred = batching.preferred_batch_sizes
            target = max(preferred) if preferred else self._max_batch
            delay_ns = batching.max_queue_delay_us * 1000
            if delay_ns <= 0 or total >= target or total in preferred or self._closing:
                break
            remaining = queue[0].enqueued_ns + delay_ns - time.perf_counter_ns()
            if remaining <= 0:
                break
            # more requests may come; another instance may also take these meanwhile
            self._cond.wait(remaining / 1e9)
        if preferred and total not in preferred:
            # Triton forms the largest preferred batch it can, else everything that fits
            sums = np.cumsum([r.batch_size for r in itertools.islice(queue, n)])
            hits = [i for i, s in enumerate(sums) if s in preferred]
            if hits:
                n = hits[-1] + 1
        return [queue.popleft() for _ in range(n)]

    def _fitting(self) -> tuple[int, int]:
        """How many of the oldest queued requests fit one batch, and their total size."""
        total = 0
        n = 0
        for request in self._queue:
            if total + request.batch_size > self._max_batch:
                break
            total += request.batch_size
            n += 1
        if n == 0:  # never happens: a request over max_batch_size is refused on entry
            return 1, self._queue[0].batch_size
        return n, total

    def _work(self, runner: Runner) -> None:
        while True:
            with self._cond:
                batch = self._take()
            if batch is None:
                return
            self._execute(runner, batch)

    def _execute(self, runner: Runner, batch: list[InferenceRequest]) -> None:
        start = time.perf_counter_ns()
        try:
            if len(batch) == 1:
                inputs = batch[0].inputs
            else:
                inputs = [
                    np.concatenate([r.inputs[i] for r in batch])
                    for i in range(len(batch[0].inputs))
                ]
            t_input = time.perf_counter_ns()
            outputs = runner(inputs)
            t_infer = time.perf_counter_ns()
            results: list[tuple[asyncio.Future[list[np.ndarray]], object, bool]] = []
            if len(batch) == 1:
                results.append((batch[0].future, outputs, True))
            else:
                offset = 0
                for r in batch:
                    end = offset + r.batch_size
                    results.append((r.future, [o[offset:end] for o in outputs], True))
                    offset = end
            end_ns = time.perf_counter_ns()
        except Exception as exc:  # onnxruntime errors are reported to every request
            now = time.perf_counter_ns()
            for r in batch:
                self._stats.record_failure("BACKEND", now - r.received_ns, queued=True)
            self._dispatch([(r.future, exc, False) for r in batch], batch)
            return
        self._stats.record_execution(
            batch_size=sum(r.batch_size for r in batch),
            n_requests=len(batch),
            queue_ns=sum(start - r.enqueued_ns for r in batch),
            input_ns=t_input - start,
            infer_ns=t_infer - t_input,
            output_ns=end_ns - t_infer,
            request_ns=sum(end_ns - r.received_ns for r in batch),
        )
        self._dispatch(results, batch)

    @staticmethod
    def _dispatch(
        results: list[tuple[asyncio.Future[list[np.ndarray]], object, bool]],
        batch: list[InferenceRequest],
    ) -> None:
        loop = batch[0].loop
        if all(r.loop is loop for r in batch):
            _try_call(loop, results)
            return
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[np.ndarray]], object, bool]]
        ] = {}
        for r, item in zip(batch, results, strict=False):
            by_loop.setdefault(r.loop, []).append(item)
        for loop, items in by_loop.items():
            _try_call(loop, items)


def _try_call(
    loop: asyncio.AbstractEventLoop,
    items: list[tuple[asyncio.Future[list[np.ndarray]], object, bool]],
) -> None:
    # a closed loop raises RuntimeError: nobody waits for these answers any more
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, items)
