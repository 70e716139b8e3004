"""The scheduler alone: dynamic batching, preferred sizes, queue delay, results split back."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from hepfpga.deploy.batching import InferenceRequest, Scheduler
from hepfpga.deploy.metrics import ModelStats, render_prometheus
from hepfpga.deploy.model_spec import DynamicBatching

NO_DELAY = DynamicBatching()


class Recorder:
    """A runner that doubles its input and records the batch sizes it saw."""

    def __init__(self, sleep_s: float = 0.0, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.sleep_s = sleep_s
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            self.batches.append(len(arrays[0]))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail:
            raise RuntimeError("the model broke")
        return [arrays[0] * 2, arrays[0].sum(axis=1)]


async def submit_all(
    scheduler: Scheduler, sizes: list[int], gap_s: float = 0.0
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    loop = asyncio.get_running_loop()
    inputs = [np.full((n, 3), i, np.float32) for i, n in enumerate(sizes)]
    futures = []
    for x in inputs:
        future = loop.create_future()
        scheduler.submit(InferenceRequest([x], len(x), future, loop))
        futures.append(future)
        if gap_s:
            await asyncio.sleep(gap_s)
    return inputs, await asyncio.gather(*futures, return_exceptions=True)


def make(runners, max_batch: int = 64, batching: DynamicBatching | None = NO_DELAY):  # type: ignore[no-untyped-def]
    stats = ModelStats("m", "1")
    return Scheduler(
        runners, max_batch_size=max_batch, dynamic_batching=batching, stats=stats
    ), stats


def check_split(inputs: list[np.ndarray], outputs: list[list[np.ndarray]]) -> None:
    for x, (doubled, summed) in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(doubled, x * 2)
        np.testing.assert_array_equal(summed, x.sum(axis=1))


def test_queued_requests_are_batched_and_split_back() -> None:
    runner = Recorder()
    scheduler, stats = make([runner], batching=DynamicBatching(max_queue_delay_us=200_000))
    sizes = [1, 3, 2, 5, 4]
    inputs, outputs = asyncio.run(submit_all(scheduler, sizes))
    scheduler.close()
    check_split(inputs, outputs)
    assert sum(runner.batches) == sum(sizes) and len(runner.batches) < len(sizes)
    assert stats.inference_count == sum(sizes)
    assert stats.success.count == len(sizes) and stats.execution_count == len(runner.batches)
    assert stats.pending == 0


def test_a_preferred_size_goes_without_waiting_for_the_delay() -> None:
    runner = Recorder()
    scheduler, _ = make([runner], batching=DynamicBatching((4,), max_queue_delay_us=5_000_000))
    start = time.perf_counter()
    inputs, outputs = asyncio.run(submit_all(scheduler, [1, 1, 2]))
    assert time.perf_counter() - start < 2.0  # far less than the 5 s delay
    scheduler.close()
    check_split(inputs, outputs)
    assert runner.batches == [4]


def test_the_largest_preferred_batch_is_formed_when_the_delay_runs_out() -> None:
    runner = Recorder()
    scheduler, _ = make([runner], batching=DynamicBatching((2, 4), max_queue_delay_us=100_000))
    inputs, outputs = asyncio.run(submit_all(scheduler, [1, 1, 1]))
    scheduler.close()
    check_split(inputs, outputs)
    assert runner.batches == [2, 1]


def test_batches_never_exceed_max_batch_size() -> None:
    runner = Recorder()
    scheduler, _ = make([runner], max_batch=8, batching=DynamicBatching(max_queue_delay_us=50_000))
    sizes = [5, 5, 3, 8, 1, 1]
    inputs, outputs = asyncio.run(submit_all(scheduler, sizes))
    scheduler.close()
    check_split(inputs, outputs)
    assert max(runner.batches) <= 8 and sum(runner.batches) == sum(sizes)


def test_without_dynamic_batching_each_request_runs_alone() -> None:
    runner = Recorder(sleep_s=0.01)
    scheduler, stats = make([runner], batching=None)
    inputs, outputs = asyncio.run(submit_all(scheduler, [2, 2, 2, 2]))
    scheduler.close()
    check_split(inputs, outputs)
    assert runner.batches == [2, 2, 2, 2]
    assert stats.queue.ns > 0  # later requests waited for the instance


@pytest.mark.parametrize("delay_us", [0, 2_000])
def test_several_instances_share_one_queue(delay_us: int) -> None:
    runners = [Recorder(sleep_s=0.001), Recorder(sleep_s=0.001)]
    scheduler, stats = make(
        runners, max_batch=16, batching=DynamicBatching(max_queue_delay_us=delay_us)
    )
    sizes = [1, 2, 3, 4] * 25
    inputs, outputs = asyncio.run(submit_all(scheduler, sizes, gap_s=0.0001))
    scheduler.close()
    check_split(inputs, outputs)
    assert sum(sum(r.batches) for r in runners) == sum(sizes)
    assert stats.pending == 0


def test_a_failing_model_fails_every_request_of_the_batch() -> None:
    scheduler, stats = make(
        [Recorder(fail=True)], batching=DynamicBatching(max_queue_delay_us=100_000)
    )
    _, outputs = asyncio.run(submit_all(scheduler, [1, 2]))
    scheduler.close()
    assert all(isinstance(o, RuntimeError) for o in outputs)
    assert stats.failures["BACKEND"] == 2 and stats.pending == 0
    assert 'nv_inference_request_failure{model="m",version="1",reason="BACKEND"} 2' in (
        render_prometheus([stats])
    )


def test_close_runs_what_is_queued_then_refuses() -> None:
    runner = Recorder(sleep_s=0.02)
    scheduler, _ = make([runner], batching=None)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for i in range(3):
            future = loop.create_future()
            scheduler.submit(InferenceRequest([np.ones((1, 3), np.float32) * i], 1, future, loop))
            futures.append(future)
        closing = loop.run_in_executor(None, scheduler.close)
        results = await asyncio.gather(*futures)
        await closing
        assert [float(r[0][0, 0]) for r in results] == [0.0, 2.0, 4.0]
        with pytest.raises(RuntimeError, match="unloaded"):
            scheduler.submit(
                InferenceRequest([np.ones((1, 3), np.float32)], 1, loop.create_future(), loop)
            )

    asyncio.run(run())
