"""Per-model inference statistics, served as Triton's statistics JSON and Prometheus metrics.

The metric names and labels are Triton's (2.51), so dashboards written for Triton work:
``nv_inference_request_success``, ``nv_inference_request_failure`` (label ``reason``),
``nv_inference_count`` (inferences: the sum of batch sizes), ``nv_inference_exec_count``
(model executions: one per dynamic batch), the cumulative durations in microseconds
``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``,
``nv_inference_compute_input_duration_us``, ``nv_inference_compute_infer_duration_us``,
``nv_inference_compute_output_duration_us``, and the gauge ``nv_inference_pending_request_count``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["FAILURE_REASONS", "ModelStats", "render_prometheus"]

#: ``reason`` label values of ``nv_inference_request_failure`` (Triton's).
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")


@dataclass
class _Duration:
    count: int = 0
    ns: int = 0

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Counters of one model version; updated from the event loop and the instance threads."""

    name: str
    version: str
    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    queue: _Duration = field(default_factory=_Duration)
    compute_input: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    compute_output: _Duration = field(default_factory=_Duration)
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_REASONS, 0))
    inference_count: int = 0
    execution_count: int = 0
    pending: int = 0
    last_inference_ms: int = 0
    batches: dict[int, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_execution(
        self,
        batch_size: int,
        n_requests: int,
        queue_ns: int,
        input_ns: int,
        infer_ns: int,
        output_ns: int,
        request_ns: int,
    ) -> None:
        """One model execution of ``n_requests`` requests totalling ``batch_size``;
        ``queue_ns`` and ``request_ns`` are summed over its requests."""
        with self.lock:
            self.execution_count += 1
            self.inference_count += batch_size
            self.success.count += n_requests
            self.success.ns += request_ns
            self.queue.count += n_requests
            self.queue.ns += queue_ns
            for d, ns in (
                (self.compute_input, input_ns),
                (self.compute_infer, infer_ns),
                (self.compute_output, output_ns),
            ):
                d.count += n_requests
                d.ns += ns * n_requests
            entry = self.batches.setdefault(batch_size, [0, 0, 0, 0])
            entry[0] += 1
            entry[1] += input_ns
            entry[2] += infer_ns
            entry[3] += output_ns
            self.pending -= n_requests
            self.last_inference_ms = int(time.time() * 1000)

    def record_failure(self, reason: str, duration_ns: int = 0, *, queued: bool = False) -> None:
        """A failed request; ``queued`` when it had been counted as pending."""
        with self.lock:
            self.fail.count += 1
            self.fail.ns += duration_ns
            self.failures[reason] = self.failures.get(reason, 0) + 1
            if queued:
                self.pending -= 1

    def add_pending(self, n: int = 1) -> None:
        with self.lock:
            self.pending += n

    def to_json(self) -> dict[str, object]:
        """Triton's ``ModelStatistics`` as the HTTP statistics extension writes it."""
        with self.lock:
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": self.success.to_json(),
                    "fail": self.fail.to_json(),
                    "queue": self.queue.to_json(),
                    "compute_input": self.compute_input.to_json(),
                    "compute_infer": self.compute_infer.to_json(),
                    "compute_output": self.compute_output.to_json(),
                    "cache_hit": {"count": 0, "ns": 0},
                    "cache_miss": {"count": 0, "ns": 0},
                },
                "response_stats": {},
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": {"count": e[0], "ns": e[1]},
                        "compute_infer": {"count": e[0], "ns": e[2]},
                        "compute_output": {"count": e[0], "ns": e[3]},
                    }
                    for size, e in sorted(self.batches.items())
                ],
                "memory_usage": [],
            }


_NOT_CACHED = " (does not include cached requests)"
_METRICS = (
    ("nv_inference_request_success", "counter",
     "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "counter",
     "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "counter", "Number of inferences performed" + _NOT_CACHED),
    ("nv_inference_exec_count", "counter", "Number of model executions performed" + _NOT_CACHED),
    ("nv_inference_request_duration_us", "counter",
     "Cumulative inference request duration in microseconds (includes cached requests)"),
    ("nv_inference_queue_duration_us", "counter",
     "Cumulative inference queuing duration in microseconds (includes cached requests)"),
    ("nv_inference_compute_input_duration_us", "counter",
     "Cumulative compute input duration in microseconds" + _NOT_CACHED),
    ("nv_inference_compute_infer_duration_us", "counter",
     "Cumulative compute inference duration in microseconds" + _NOT_CACHED),
    ("nv_inference_compute_output_duration_us", "counter",
     "Cumulative inference compute output duration in microseconds" + _NOT_CACHED),
    ("nv_inference_pending_request_count", "gauge",
     "Instantaneous number of pending requests awaiting execution per-model."),
)  # fmt: skip


def render_prometheus(stats: Iterable[ModelStats]) -> str:
    """The Prometheus text exposition (format 0.0.4) of every model's counters."""
    stats = list(stats)
    values: dict[str, list[str]] = {name: [] for name, _, _ in _METRICS}
    for s in stats:
        label = f'model="{s.name}",version="{s.version}"'
        with s.lock:
            values["nv_inference_request_success"].append(f"{{{label}}} {s.success.count}")
            for reason, n in s.failures.items():
                values["nv_inference_request_failure"].append(f'{{{label},reason="{reason}"}} {n}')
            values["nv_inference_count"].append(f"{{{label}}} {s.inference_count}")
            values["nv_inference_exec_count"].append(f"{{{label}}} {s.execution_count}")
            for metric, d in (
                ("nv_inference_request_duration_us", s.success.ns + s.fail.ns),
                ("nv_inference_queue_duration_us", s.queue.ns),
                ("nv_inference_compute_input_duration_us", s.compute_input.ns),
                ("nv_inference_compute_infer_duration_us", s.compute_infer.ns),
                ("nv_inference_compute_output_duration_us", s.compute_output.ns),
            ):
                values[metric].append(f"{{{label}}} {d // 1000}")
            values["nv_inference_pending_request_count"].append(f"{{{label}}} {max(s.pending, 0)}")
    lines = []
    for name, kind, help_text in _METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{v}" for v in values[name])
    return "\n".join(lines) + "\n"
