"""On-loop execution of cheap batches: what a loop iteration staged runs on the loop when every
instance is idle and it is the batch an instance would have run, else on the instance threads
exactly as before; and the load-time measurement that sets the largest such batch."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from hepfpga.deploy.batching import InferenceRequest, Scheduler
from hepfpga.deploy.metrics import ModelStats
from hepfpga.deploy.model_spec import DynamicBatching, ModelSpec, TensorSpec
from hepfpga.deploy.serve_models import measure_inline_batch

NO_DELAY = DynamicBatching()


class Recorder:
    """A runner that doubles its input and records each batch size and the thread it ran on."""

    def __init__(self, sleep_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.sleep_s = sleep_s
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            self.calls.append((len(arrays[0]), threading.get_ident()))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail:
            raise RuntimeError("the model broke")
        return [arrays[0] * 2]

    def batches(self, on_loop: bool, loop_thread: int) -> list[int]:
        return [n for n, thread in self.calls if (thread == loop_thread) == on_loop]


def make(
    runner: Recorder,
    inline_batch: int,
    batching: DynamicBatching | None = NO_DELAY,
    max_batch: int = 64,
) -> tuple[Scheduler, ModelStats]:
    stats = ModelStats("m", "1")
    scheduler = Scheduler(
        [runner],
        max_batch_size=max_batch,
        dynamic_batching=batching,
        stats=stats,
        inline_batch=inline_batch,
    )
    return scheduler, stats


def request(n: int, value: float, loop: asyncio.AbstractEventLoop) -> InferenceRequest:
    return InferenceRequest([np.full((n, 3), value, np.float32)], n, loop.create_future(), loop)


async def in_one_iteration(scheduler: Scheduler, sizes: list[int]) -> list[np.ndarray]:
    """Submit requests of ``sizes`` without yielding to the loop in between (as a loop
    iteration that read several requests does) and return each first output."""
    loop = asyncio.get_running_loop()
    requests = [request(n, i + 1, loop) for i, n in enumerate(sizes)]
    for r in requests:
        scheduler.submit(r)
    results = await asyncio.gather(*(r.future for r in requests))
    for r, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result[0], r.inputs[0] * 2)
    return [result[0] for result in results]


@pytest.mark.parametrize(
    ("sizes", "on_loop", "on_threads"),
    [
        ([1], [1], []),
        ([1, 2, 3], [6], []),  # one iteration's requests: one batch on the loop
        ([8, 8, 8], [], [24]),  # more than inline_batch in all: the instance thread
        ([20], [], [20]),  # one request over inline_batch is queued directly
    ],
    ids=["lone", "together", "over-total", "over-one"],
)
def test_one_iterations_requests_run_on_the_loop_when_they_fit(
    sizes: list[int], on_loop: list[int], on_threads: list[int]
) -> None:
    runner = Recorder()
    scheduler, stats = make(runner, inline_batch=16)

    async def run() -> int:
        await in_one_iteration(scheduler, sizes)
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    scheduler.close()
    assert runner.batches(True, loop_thread) == on_loop
    assert runner.batches(False, loop_thread) == on_threads
    assert scheduler.inline_executions == len(on_loop)
    assert stats.success.count == len(sizes) and stats.inference_count == sum(sizes)
    assert stats.execution_count == 1 and stats.pending == 0


def test_nothing_runs_on_the_loop_while_an_instance_is_busy() -> None:
    runner = Recorder(sleep_s=0.2)
    scheduler, stats = make(runner, inline_batch=4)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        slow = request(8, 1, loop)  # over inline_batch: the instance thread takes it
        scheduler.submit(slow)
        while not runner.calls:
            await asyncio.sleep(0.001)
        await in_one_iteration(scheduler, [1, 1])  # staged while it runs: queued
        await slow.future
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    scheduler.close()
    assert runner.batches(True, loop_thread) == []
    assert runner.batches(False, loop_thread) == [8, 2]
    assert stats.pending == 0


def test_a_front_end_that_does_not_allow_it_never_runs_on_the_loop() -> None:
    runner = Recorder()
    scheduler, _ = make(runner, inline_batch=16)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        r = request(1, 1, loop)
        r.may_run_on_loop = False  # as the gRPC front end's requests
        scheduler.submit(r)
        await r.future
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    scheduler.close()
    assert runner.batches(False, loop_thread) == [1] and scheduler.inline_executions == 0


def test_a_queue_delay_is_never_cut_short_by_the_loop() -> None:
    runner = Recorder()
    scheduler, _ = make(runner, inline_batch=16, batching=DynamicBatching(max_queue_delay_us=1))
    assert scheduler.inline_batch == 0
    scheduler.close()
    bounded, _ = make(Recorder(), inline_batch=1000, max_batch=8)
    assert bounded.inline_batch == 8  # never over max_batch_size
    bounded.close()


def test_without_dynamic_batching_only_a_lone_request_runs_on_the_loop() -> None:
    runner = Recorder()
    scheduler, stats = make(runner, inline_batch=16, batching=None)

    async def run() -> int:
        await in_one_iteration(scheduler, [2])
        await in_one_iteration(scheduler, [2, 3, 1])  # each alone, on the instance thread
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    scheduler.close()
    assert runner.batches(True, loop_thread) == [2]
    assert runner.batches(False, loop_thread) == [2, 3, 1]
    assert stats.execution_count == 4


@pytest.mark.parametrize(
    ("sizes", "on_loop", "on_threads"),
    [([1, 1], [2], []), ([2, 2, 1], [], [4, 1]), ([2, 2], [4], [])],
    ids=["no-preferred-reached", "preferred-prefix", "preferred"],
)
def test_preferred_sizes_form_the_same_batches_on_the_loop(
    sizes: list[int], on_loop: list[int], on_threads: list[int]
) -> None:
    runner = Recorder()
    scheduler, _ = make(runner, inline_batch=16, batching=DynamicBatching((4,)))

    async def run() -> int:
        await in_one_iteration(scheduler, sizes)
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    scheduler.close()
    assert runner.batches(True, loop_thread) == on_loop
    assert runner.batches(False, loop_thread) == on_threads


def test_a_failing_model_on_the_loop_fails_each_request() -> None:
    scheduler, stats = make(Recorder(fail=True), inline_batch=16)

    async def run() -> list[object]:
        loop = asyncio.get_running_loop()
        requests = [request(1, 1, loop), request(2, 2, loop)]
        for r in requests:
            scheduler.submit(r)
        return await asyncio.gather(*(r.future for r in requests), return_exceptions=True)

    results = asyncio.run(run())
    scheduler.close()
    assert all(isinstance(r, RuntimeError) and "the model broke" in str(r) for r in results)
    assert scheduler.inline_executions == 1
    assert stats.failures["BACKEND"] == 2 and stats.pending == 0


def test_what_was_staged_still_runs_when_the_model_closes() -> None:
    runner = Recorder()
    scheduler, stats = make(runner, inline_batch=16)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        staged = request(3, 1, loop)
        scheduler.submit(staged)
        scheduler.close()  # the instance threads stop before the loop runs what was staged
        np.testing.assert_array_equal((await staged.future)[0], staged.inputs[0] * 2)
        with pytest.raises(RuntimeError, match="unloaded"):
            scheduler.submit(request(1, 2, loop))

    asyncio.run(run())
    assert stats.success.count == 1 and stats.pending == 0


# -- the largest batch run on the loop, measured at load -------------------------------------


def spec(dims: tuple[int, ...] = (3,), max_batch: int = 64) -> ModelSpec:
    return ModelSpec(
        "m", max_batch, (TensorSpec("input", "FP32", dims),), (TensorSpec("y", "FP32", dims),)
    )


class Costly:
    """A runner taking ``fast_s`` up to ``limit`` events and ``slow_s`` above."""

    def __init__(self, limit: int, fast_s: float = 0.0, slow_s: float = 0.05) -> None:
        self.limit, self.fast_s, self.slow_s = limit, fast_s, slow_s
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        self.shapes.append(arrays[0].shape)
        time.sleep(self.fast_s if len(arrays[0]) <= self.limit else self.slow_s)
        return [arrays[0]]


@pytest.mark.parametrize(
    ("limit", "max_batch", "expected"),
    [(4, 64, 4), (1000, 64, 64), (0, 64, 0), (1000, 0, 1)],
    ids=["slower-above-4", "all-fast", "batch-1-too-slow", "no-batch-dimension"],
)
def test_the_inline_batch_is_the_largest_power_of_two_within_the_budget(
    limit: int, max_batch: int, expected: int
) -> None:
    runner = Costly(limit)
    assert measure_inline_batch([runner], spec(max_batch=max_batch), budget_us=20_000) == expected
    assert runner.shapes[0] == ((1, 3) if max_batch else (3,))  # warmed up first


@pytest.mark.parametrize(
    ("model_spec", "budget_us", "runner"),
    [
        (spec(), 0.0, Costly(1000)),  # turned off
        (spec(dims=(-1,)), 20_000.0, Costly(1000)),  # nothing to time with
        (spec(), 20_000.0, Recorder(fail=True)),  # the model refuses zeros
    ],
    ids=["budget-0", "variable-dims", "model-fails"],
)
def test_no_inline_batch(model_spec: ModelSpec, budget_us: float, runner: object) -> None:
    assert measure_inline_batch([runner], model_spec, budget_us) == 0


# -- end to end: the same answers whether a batch runs on the loop or on a thread ------------


@pytest.mark.parametrize("inline_max_us", [0.0, 1e6], ids=["threads-only", "on-loop"])
@pytest.mark.parametrize("batching", [True, False], ids=["batching", "no-batching"])
def test_served_answers_do_not_depend_on_where_the_model_ran(
    tmp_path, write_tiny_onnx, inline_max_us: float, batching: bool
) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    import tritonclient.http.aio as httpaio

    from hepfpga.deploy.serve import InferenceServer
    from hepfpga.deploy.service import InferenceService
    from hepfpga.deploy.triton_repo import discover_models, export_triton_repository

    write_tiny_onnx(tmp_path / "model.onnx", 3)
    export_triton_repository(
        tmp_path / "model.onnx",
        tmp_path / "repo",
        name="m",
        max_batch_size=16,
        dynamic_batching=batching,
    )
    reference = ort.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    service = InferenceService(discover_models(tmp_path / "repo"), inline_max_us=inline_max_us)
    model = service.model("m")
    assert model.inline_batch == (16 if inline_max_us else 0)
    sizes = [1, 3, 2, 1, 5, 1]

    async def run() -> list[np.ndarray]:
        server = InferenceServer(service, http_port=0, grpc_port=None)
        addresses = await server.start()
        client = httpaio.InferenceServerClient(addresses.http_url)

        async def one(i: int, n: int) -> np.ndarray:
            tensor = httpaio.InferInput("input", [n, 16], "FP32")
            tensor.set_data_from_numpy(np.full((n, 16), i - 2.5, np.float32))
            return (await client.infer("m", [tensor])).as_numpy("softmax")

        try:
            first = [await one(0, 1)]  # alone: on the loop when allowed
            return first + list(await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes))))
        finally:
            await client.close()
            await server.stop()

    answers = asyncio.run(run())
    for i, (n, answer) in enumerate(zip([1, *sizes], answers, strict=True)):
        x = np.full((n, 16), (i - 1 if i else 0) - 2.5, np.float32)
        np.testing.assert_array_equal(answer, reference.run(None, {"input": x})[0])
    assert (model.scheduler.inline_executions > 0) == bool(inline_max_us)
    assert model.stats.success.count == len(sizes) + 1 and model.stats.pending == 0


def test_a_model_far_over_the_budget_is_called_only_twice_at_load() -> None:
    runner = Costly(limit=0, slow_s=0.05)  # 50 ms a call against a 1 ms budget
    assert measure_inline_batch([runner], spec(), budget_us=1000) == 0
    assert runner.shapes == [(1, 3), (1, 3)]  # the warm-up and one probe
