"""Request scheduling: a queue per model version served by its instance threads.

The loop parses a request and hands it to the scheduler; an instance thread runs it
(onnxruntime releases the GIL while it computes) and gives the results back to the loop in one
``call_soon_threadsafe`` per batch. Without dynamic batching an instance takes one request at a
time (Triton's default scheduler). With it, an instance takes every queued request that fits
``max_batch_size``, waiting up to ``max_queue_delay_us`` after the oldest one for more unless a
preferred batch size is reached, concatenates their inputs along the batch dimension, runs the
model once and splits the outputs back per request.

**On-loop execution of a lone cheap request** (opt-in, for the requests of front ends that
allow it: HTTP). The hand-off to an instance thread and back costs two thread wake-ups (tens of
microseconds each on a VM, more under load): for a small model at batch 1 that is more than
the model call itself. So when ``inline_batch`` is set (the largest batch the model runs
within the server's on-loop budget, measured at load:
:func:`hepfpga.deploy.serve_models.measure_inline_batch`), the requests a loop hands over in
one iteration of that loop are staged, and at the end of the iteration a *lone* request runs
on the loop when no instance is busy, nothing is queued and its batch fits ``inline_batch``
(and no queue delay is configured). Requests that arrive together are queued for the instance
threads as before: under concurrent load the model then computes on one core while the loop
parses and answers on the other, which measured faster than running them on the loop (and
``grpc.aio`` hands its loop one request per iteration, so gRPC requests never run there).
The loop is blocked for at most about the budget, and only while every instance is idle;
results, statistics and errors are those of an instance-thread run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hepfpga.deploy.metrics import ModelStats
from hepfpga.deploy.model_spec import DynamicBatching

__all__ = ["InferenceRequest", "Runner", "Scheduler", "onnxruntime_reason"]

log = logging.getLogger("hepfpga.serve")

_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MAX_REASON = 400


def onnxruntime_reason(exc: BaseException) -> str:
    """An onnxruntime (or numpy) error as one line for a client or a log: its code name and
    message without the ``[ONNXRuntimeError] : N :`` prefix, whitespace and colour codes
    collapsed, at most 400 characters."""
    text = " ".join(_ANSI.sub("", str(exc)).split()) or type(exc).__name__
    text = _ORT_PREFIX.sub("", text).replace(" : ", ": ", 1)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


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
    #: the front end lets it run on the loop (see the module's docstring)
    may_run_on_loop: bool = True


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
        inline_batch: int = 0,
    ) -> None:
        self._queue: deque[InferenceRequest] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._max_batch = max(max_batch_size, 1)
        self._batching = dynamic_batching if max_batch_size > 0 else None
        self._stats = stats
        self._name = name
        self._runners = list(runners)
        self._busy = 0  # instances running a batch (an on-loop run holds one too)
        delay = self._batching.max_queue_delay_us if self._batching is not None else 0
        #: largest batch run on the loop (0: never); never with a queue delay to honour
        self.inline_batch = min(inline_batch, self._max_batch) if delay <= 0 else 0
        #: batches run on the loop so far
        self.inline_executions = 0
        self._staged: dict[asyncio.AbstractEventLoop, list[InferenceRequest]] = {}
        self._threads = [
            threading.Thread(
                target=self._work, args=(runner,), name=f"{name}-instance-{i}", daemon=True
            )
            for i, runner in enumerate(runners)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, request: InferenceRequest) -> None:
        """Queue ``request``; its future is resolved on its loop when the batch has run.
        Called on ``request.loop``'s thread."""
        request.enqueued_ns = time.perf_counter_ns()
        if (
            self.inline_batch
            and request.may_run_on_loop
            and request.batch_size <= self.inline_batch
        ):
            if self._closing:
                raise RuntimeError("the model is being unloaded")
            self._stats.add_pending()
            staged = self._staged.get(request.loop)
            if staged is None:
                self._staged[request.loop] = [request]
                request.loop.call_soon(self._run_staged, request.loop)
            else:
                staged.append(request)
            return
        with self._cond:
            if self._closing:
                raise RuntimeError("the model is being unloaded")
            self._stats.add_pending()
            self._queue.append(request)
            self._cond.notify()

    def _run_staged(self, loop: asyncio.AbstractEventLoop) -> None:
        """End of a loop iteration: run what it staged on the loop when that is the batch an
        idle instance would run now and it fits ``inline_batch``, else queue it."""
        staged = self._staged.pop(loop, [])
        if not staged:
            return
        with self._cond:
            # while closing, the instance threads may already have stopped: run them here
            inline = self._closing or (
                not self._queue and self._busy == 0 and self._inlinable(staged)
            )
            if inline:
                self._busy += 1
            else:
                self._queue.extend(staged)
                self._cond.notify(len(staged))
        if not inline:
            return
        try:
            for batch in self._batches(staged) if len(staged) > 1 else (staged,):
                self.inline_executions += 1
                self._execute(self._runners[0], batch, on_loop=True)
        finally:
            with self._cond:
                self._busy -= 1
                if self._queue:
                    self._cond.notify()

    def _inlinable(self, staged: list[InferenceRequest]) -> bool:
        return len(staged) == 1  # staged only when it fits inline_batch; no prefix to form

    def _batches(self, requests: list[InferenceRequest]) -> list[list[InferenceRequest]]:
        """``requests`` in order as the batches an instance would run (each alone without
        dynamic batching, else as many as fit ``max_batch_size``)."""
        if self._batching is None:
            return [[r] for r in requests]
        batches: list[list[InferenceRequest]] = []
        total = self._max_batch
        for r in requests:
            if total + r.batch_size > self._max_batch:
                batches.append([])
                total = 0
            batches[-1].append(r)
            total += r.batch_size
        return batches

    def _preferred_prefix(self, requests: Iterable[InferenceRequest], total: int) -> int | None:
        """How many of ``requests`` (oldest first, ``total`` events in all) form the batch to
        send once no more may be waited for: Triton forms the largest preferred batch it can,
        else everything (None: no preferred size, or ``total`` is one)."""
        preferred = self._batching.preferred_batch_sizes if self._batching is not None else ()
        if not preferred or total in preferred:
            return None
        sums = np.cumsum([r.batch_size for r in requests])
        hits = [i for i, s in enumerate(sums) if s in preferred]
        return hits[-1] + 1 if hits else None

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
        n = self._preferred_prefix(itertools.islice(queue, n), total) or n
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
        batch: list[InferenceRequest] | None = None
        while True:
            with self._cond:
                if batch is not None:
                    self._busy -= 1
                batch = self._take()
                if batch is None:
                    return
                self._busy += 1
            self._execute(runner, batch)

    def _execute(
        self, runner: Runner, batch: list[InferenceRequest], on_loop: bool = False
    ) -> None:
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
            if len(batch) > 1:
                # one request whose values or variable dimensions the model refuses (or that
                # do not join the others) fails alone: run each request of the batch alone
                for r in batch:
                    self._execute(runner, [r], on_loop)
                return
            log.warning("%s: onnxruntime failed: %s", self._name, onnxruntime_reason(exc))
            now = time.perf_counter_ns()
            for r in batch:
                self._stats.record_failure("BACKEND", now - r.received_ns, queued=True)
            failed = [(r.future, exc, False) for r in batch]
            _resolve(failed) if on_loop else self._dispatch(failed, batch)  # type: ignore[arg-type]
            return
        n = len(batch)
        self._stats.record_execution(
            batch_size=batch[0].batch_size if n == 1 else sum(r.batch_size for r in batch),
            n_requests=n,
            queue_ns=start * n - sum(r.enqueued_ns for r in batch),
            input_ns=t_input - start,
            infer_ns=t_infer - t_input,
            output_ns=end_ns - t_infer,
            request_ns=end_ns * n - sum(r.received_ns for r in batch),
        )
        if on_loop:
            _resolve(results)
        else:
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
