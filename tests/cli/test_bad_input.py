"""Bad input to every command: one clear line, the right exit status, nothing written.

Each case runs ``hepfpga.cli.main`` in-process (as hls4ml's and Triton's suites test their
front ends: one table of hostile inputs, one shared set of assertions) and asserts

* the exit status (2 for bad input, 1 for a failed check),
* exactly one line on stderr saying ``error`` that names what was wrong, where, and what is
  accepted (the ``needles`` of the case),
* no ``Traceback`` anywhere in the output,
* nothing new, changed or half-written in the case's temporary folder (every destination of
  the case lives there).

The files the cases read (tiny models of awkward shapes, events, jet samples) are written
once per module.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from hepfpga.cli import main

#: a "billion laughs" YAML: nine levels of nine aliases stand for 9**9 strings in 600 bytes
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
#: a folder no process can write into, root included (sysfs)
UNWRITABLE = Path("/sys/hepfpga-bad-input")


@dataclass(frozen=True)
class Files:
    """Files the cases read, shared by the module (never written by a case)."""

    qkeras: Path
    float: Path
    two_outputs: Path
    rank1_output: Path
    two_inputs: Path
    zero_inputs: Path
    onnx: Path
    events: Path
    one_class: Path
    group_features: Path
    not_a_model: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, make_jets_module: Callable) -> Files:
    import h5py
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    from hepfpga.deploy.onnx_export import export_onnx
    from hepfpga.train.io import save_sample

    root = tmp_path_factory.mktemp("bad-input-files")
    tf.keras.utils.set_random_seed(0)
    paths: dict[str, Path] = {}

    def save(name: str, model: keras.Model) -> None:
        paths[name] = root / f"{name}.h5"
        model.save(paths[name])

    x = keras.Input((4,), name="input")
    h = QActivation(quantized_bits(10, 4, alpha=1), name="q_in")(x)
    h = QDense(
        3,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="dense",
    )(h)
    qkeras = keras.Model(x, keras.layers.Activation("softmax", name="sm")(h))
    save("qkeras", qkeras)
    x = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="relu")(x)
    save("float", keras.Model(x, keras.layers.Dense(3, activation="softmax")(hidden)))
    x = keras.Input((4,))
    mu, log_var = keras.layers.Dense(2, name="mu")(x), keras.layers.Dense(2, name="log_var")(x)
    save("two_outputs", keras.Model(x, [mu, log_var]))
    x = keras.Input((4,))
    save("rank1_output", keras.Model(x, keras.layers.Reshape(())(keras.layers.Dense(1)(x))))
    a, b = keras.Input((4,)), keras.Input((3,))
    joined = keras.layers.Concatenate()([a, b])
    save("two_inputs", keras.Model([a, b], keras.layers.Dense(2)(joined)))
    x = keras.Input((0,))
    save("zero_inputs", keras.Model(x, keras.layers.Dense(2)(x)))
    onnx = root / "model.onnx"
    export_onnx(qkeras, onnx)

    events = root / "events.npz"
    np.savez(events, x=np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))
    sample = make_jets_module(60)
    one_class = root / "one_class.npz"
    save_sample(dataclasses.replace(sample, labels=np.zeros(60, dtype=np.int64)), one_class)
    group = root / "group_features.h5"
    save_sample(sample, group)
    with h5py.File(group, "a") as h5:
        del h5["features"]
        h5.create_group("features").create_dataset("x", data=np.zeros(3))
    not_a_model = root / "not_a_model.h5"
    not_a_model.write_text('{"hello": "world"}')
    return Files(
        onnx=onnx,
        events=events,
        one_class=one_class,
        group_features=group,
        not_a_model=not_a_model,
        **paths,
    )


@dataclass(frozen=True)
class Ctx:
    """What a case builds its command line from: the shared files and its own folder."""

    files: Files
    tmp: Path

    def config(self, text: str, name: str = "c.yaml") -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def file(self, name: str, content: str = "old") -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return str(path)

    def folder(self, name: str, *, full: bool = False) -> str:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        if full:
            (path / "old.txt").write_text("old")
        return str(path)


@dataclass(frozen=True)
class Case:
    id: str
    #: the command line (``run`` cases get ``--output-dir`` under the case's folder)
    argv: Callable[[Ctx], list[str]]
    #: substrings of the one error line (compared case-insensitively)
    needles: tuple[str, ...]
    code: int = 2
    env: Callable[[Ctx], dict[str, str]] = field(default=lambda ctx: {})

    def __str__(self) -> str:
        return self.id


def _run(ctx: Ctx) -> list[str]:
    return ["run", "--output-dir", str(ctx.tmp / "runs")]


# --- configurations: each is given to `config check` and to `run` ---------------------------
CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "clock-period-inf": ("firmware:\n  clock_period: .inf\n", ("firmware.clock_period",)),
    "learning-rate-nan": (
        "training:\n  learning_rate: .nan\n",
        ("training.learning_rate", "finite"),
    ),
    "learning-rate-negative": ("training:\n  learning_rate: -0.1\n", ("learning_rate", "> 0")),
    "onnx-tolerance-negative": ("onnx:\n  tolerance: -1.0e-6\n", ("onnx.tolerance", ">= 0")),
    "onnx-tolerance-inf": ("onnx:\n  tolerance: .inf\n", ("onnx.tolerance", "finite")),
    "accuracy-drop-inf": (
        "verification:\n  max_accuracy_drop: .inf\n",
        ("verification.max_accuracy_drop", "finite"),
    ),
    "accuracy-drop-5": (
        "verification:\n  max_accuracy_drop: 5\n",
        ("verification.max_accuracy_drop", "[-1, 1]"),
    ),
    "seed-negative": ("seed: -1\n", ("'seed'", "0 to 2**32 - 1")),
    "seed-2**70": (f"seed: {2**70}\n", ("'seed'", "64 bits")),
    "seed-2**40": (f"seed: {2**40}\n", ("'seed'", "2**32 - 1")),
    "input-type-100000-bits": (
        "firmware:\n  input_type: ap_fixed<100000,5>\n",
        ("input_type", "1..1024"),
    ),
    "input-type-5000-integer-bits": (
        "firmware:\n  input_type: ap_fixed<16,5000>\n",
        ("input_type", "integer bits"),
    ),
    "hidden-width-1e8": ("model:\n  hidden_units: [100000000]\n", ("hidden_units[0]", "4096")),
    "hidden-width-0": ("model:\n  hidden_units: [0]\n", ("hidden_units[0]", "positive")),
    "split-nan": (
        "data:\n  split: {train: .nan, validation: 0.2, test: 0.2}\n",
        ("data.split.train", "finite"),
    ),
    "l2-minus-inf": ("model:\n  l2: -.inf\n", ("model.l2", "finite")),
    "dropout-nan": ("model:\n  dropout: .nan\n", ("model.dropout", "finite")),
    "momentum-inf": ("quantization:\n  momentum: .inf\n", ("quantization.momentum", "finite")),
    "min-delta-negative": (
        "training:\n  early_stopping:\n    min_delta: -1\n",
        ("training.early_stopping.min_delta", ">= 0"),
    ),
    "batch-size-2**70": (f"training:\n  batch_size: {2**70}\n", ("batch_size", "64 bits")),
    "softmax-table-2**40": (
        f"firmware:\n  softmax_table_size: {2**40}\n",
        ("firmware.softmax_table_size", "65536"),
    ),
    "reuse-factor-2**70": (f"firmware:\n  reuse_factor: {2**70}\n", ("reuse_factor", "64 bits")),
    "opset-99": ("onnx:\n  opset: 99\n", ("onnx.opset", "9..21")),
    "misspelt-key": (
        "quantization:\n  weight_bit: 6\n",
        ("quantization.weight_bit", "weight_bits"),
    ),
    "list-not-mapping": ("- 1\n- 2\n", ("mapping",)),
    "run-name-escapes": ("name: ../evil\n", ("'name'", "letters")),
    "huge-value-in-message": ("seed: '" + "x" * 200_000 + "'\n", ("'seed'", "integer")),
    "5000-digit-integer": ("seed: " + "1" * 5000 + "\n", ("c.yaml", "4300 digits")),
    "python-tag": (
        'seed: !!python/object/apply:os.system ["echo hi"]\n',
        ("not valid yaml", "python/object/apply"),
    ),
    "billion-laughs": (BILLION_LAUGHS, ("billion laughs", "100,000")),
    "50k-nested-brackets": ("[" * 50_000, ("nesting deeper than 64",)),
    "recursive-alias": ("a: &a [*a]\n", ("recursive alias",)),
    "not-yaml": ("a: [1, 2\n", ("not valid yaml", "line 2")),
    "empty": ("", ("c.yaml", "the config file is empty")),
    "only-comments": ("# name: x\n\n", ("c.yaml", "the config file is empty")),
    "tab-indent": ("name: x\n\tseed: 1\n", ("not valid yaml", "line 2")),
}

CASES: list[Case] = []
for _key, (_text, _needles) in CONFIGS.items():
    for _command in ("config-check", "run"):
        CASES.append(
            Case(
                f"{_command}:{_key}",
                (
                    lambda t, c: (
                        lambda ctx: [
                            *(["config", "check"] if c == "config-check" else _run(ctx)),
                            ctx.config(t),
                        ]
                    )
                )(_text, _command),
                _needles,
            )
        )

# --- configuration files that are not configurations ----------------------------------------
for _command in ("config-check", "run"):
    _pre = (lambda c: lambda ctx: ["config", "check"] if c == "config-check" else _run(ctx))(
        _command
    )
    CASES += [
        Case(
            f"{_command}:config-is-a-folder",
            (lambda p: lambda ctx: [*p(ctx), ctx.folder("configs")])(_pre),
            ("configs", "is a folder", "yaml file"),
        ),
        Case(
            f"{_command}:config-missing",
            (lambda p: lambda ctx: [*p(ctx), str(ctx.tmp / "nope.yaml")])(_pre),
            ("config file not found", "nope.yaml"),
        ),
        Case(
            f"{_command}:config-binary",
            (lambda p: lambda ctx: [*p(ctx), _binary(ctx)])(_pre),
            ("b.yaml", "utf-8"),
        ),
        Case(
            f"{_command}:config-is-a-device",
            (lambda p: lambda ctx: [*p(ctx), "/dev/null"])(_pre),
            ("/dev/null", "not a regular file", "yaml file"),
        ),
        Case(
            f"{_command}:config-2-mib",
            (lambda p: lambda ctx: [*p(ctx), ctx.config("#" * (2 << 20))])(_pre),
            ("c.yaml", "at most 1,048,576"),
        ),
    ]


def _binary(ctx: Ctx) -> str:
    path = ctx.tmp / "b.yaml"
    path.write_bytes(b"\xff\xfe\x00name: x")
    return str(path)


# --- run: data and destinations --------------------------------------------------------------
CASES += [
    Case(
        "run:features-is-an-hdf5-group",
        lambda ctx: [*_run(ctx), ctx.config(f"data:\n  path: {ctx.files.group_features}\n")],
        ("group_features.h5", "'features' is an hdf5 group", "dataset"),
    ),
    Case(
        "run:one-class-sample",
        lambda ctx: [*_run(ctx), ctx.config(f"data:\n  path: {ctx.files.one_class}\n")],
        ("class 'g'", "no jets in the training and test split", "q 60, g 0"),
    ),
    Case(
        "run:data-path-is-a-folder",
        lambda ctx: [*_run(ctx), ctx.config(f"data:\n  path: {ctx.folder('jets')}\n")],
        ("jets",),
    ),
    Case(
        "run:output-dir-is-a-file",
        lambda ctx: ["run", "--output-dir", ctx.file("runs"), ctx.config("name: t\n")],
        ("runs/t", "not a folder"),
    ),
    Case(
        "run:run-folder-is-a-file",
        lambda ctx: [
            "run",
            "--output-dir",
            str(Path(ctx.file("runs/t")).parent),
            ctx.config("name: t\n"),
        ],
        ("runs/t", "is a file", "folder is expected"),
    ),
    Case(
        "run:run-folder-exists",
        lambda ctx: [
            "run",
            "--output-dir",
            str(Path(ctx.folder("runs/t", full=True)).parent),
            ctx.config("name: t\n"),
        ],
        ("runs/t", "already exists", "--overwrite"),
    ),
    Case(
        "run:output-dir-unwritable",
        lambda ctx: ["run", "--output-dir", str(UNWRITABLE), ctx.config("name: t\n")],
        ("/sys", "not writable"),
    ),
    Case(
        "run:name-too-long",
        lambda ctx: [*_run(ctx), "--name", "n" * 230, ctx.config("name: t\n")],
        ("230 bytes", "at most 200"),
    ),
    Case(
        "run:max-jets-5",
        lambda ctx: [*_run(ctx), "--max-jets", "5", ctx.config("name: t\n")],
        ("max_jets", "at least 10"),
    ),
]


# --- export onnx -----------------------------------------------------------------------------
def _onnx(model: Callable[[Files], Path], out: Callable[[Ctx], str], *extra: str):
    return lambda ctx: ["export", "onnx", str(model(ctx.files)), "--out", out(ctx), *extra]


def _new_onnx(ctx: Ctx) -> str:
    return str(ctx.tmp / "m.onnx")


CASES += [
    Case(
        "onnx:zero-input-features",
        _onnx(lambda f: f.zero_inputs, _new_onnx),
        ("zero values per event", "at least one input feature"),
    ),
    Case("onnx:not-a-model", _onnx(lambda f: f.not_a_model, _new_onnx), ("not_a_model.h5",)),
    Case(
        "onnx:model-missing",
        _onnx(lambda f: Path("/nonexistent/model.h5"), _new_onnx),
        ("/nonexistent/model.h5",),
    ),
    Case(
        "onnx:out-is-a-folder",
        _onnx(lambda f: f.qkeras, lambda ctx: ctx.folder("m.onnx")),
        ("--out", "is a folder", "a file is expected"),
    ),
    Case(
        "onnx:out-exists",
        _onnx(lambda f: f.qkeras, lambda ctx: ctx.file("m.onnx")),
        ("--out", "already exists", "--overwrite"),
    ),
    Case(
        "onnx:out-under-a-file",
        _onnx(lambda f: f.qkeras, lambda ctx: ctx.file("sub") + "/m.onnx"),
        ("--out", "is a file, not a folder"),
    ),
    Case(
        "onnx:out-unwritable",
        _onnx(lambda f: f.qkeras, lambda ctx: str(UNWRITABLE / "m.onnx")),
        ("--out", "not writable"),
    ),
    Case(
        "onnx:tolerance-negative",
        _onnx(lambda f: f.qkeras, _new_onnx, "--tolerance", "-1"),
        ("--tolerance",),
    ),
    Case(
        "onnx:tolerance-nan",
        _onnx(lambda f: f.qkeras, _new_onnx, "--tolerance", "nan"),
        ("--tolerance", "not a finite number"),
    ),
    Case("onnx:opset-99", _onnx(lambda f: f.qkeras, _new_onnx, "--opset", "99"), ("--opset",)),
    Case(
        "onnx:out-is-dev-null",
        _onnx(lambda f: f.qkeras, lambda ctx: "/dev/null", "--overwrite"),
        ("--out /dev/null", "not a regular file"),
    ),
    Case(
        "onnx:name-too-long",
        _onnx(lambda f: f.qkeras, lambda ctx: str(ctx.tmp / ("m" * 250 + ".onnx"))),
        ("--out", "at most 200"),
    ),
]


# --- export triton ---------------------------------------------------------------------------
def _triton(repo: Callable[[Ctx], str], *extra: str, source: Callable[[Files], Path] | None = None):
    return lambda ctx: [
        "export",
        "triton",
        str((source or (lambda f: f.onnx))(ctx.files)),
        "--repo",
        repo(ctx),
        "--name",
        "m",
        *extra,
    ]


CASES += [
    Case(
        "triton:repo-is-a-file",
        _triton(lambda ctx: ctx.file("repo")),
        ("repo/m/1", "is a file, not a folder"),
    ),
    Case(
        "triton:repo-unwritable",
        _triton(lambda ctx: str(UNWRITABLE)),
        ("/sys", "not writable"),
    ),
    Case(
        "triton:version-exists",
        _triton(lambda ctx: str(Path(ctx.folder("repo/m/1", full=True)).parent.parent)),
        ("already exists", "--overwrite"),
    ),
    Case(
        "triton:source-missing",
        _triton(lambda ctx: str(ctx.tmp / "repo"), source=lambda f: Path("/nonexistent.onnx")),
        ("/nonexistent.onnx",),
    ),
]


# --- firmware --------------------------------------------------------------------------------
def _firmware(out: Callable[[Ctx], str], *extra: str | Callable[[Ctx], str], model=None):
    return lambda ctx: [
        "firmware",
        str((model or (lambda f: f.qkeras))(ctx.files)),
        "--out",
        out(ctx),
        *[e(ctx) if callable(e) else e for e in extra],
    ]


def _new_project(ctx: Ctx) -> str:
    return str(ctx.tmp / "project")


CASES += [
    Case(
        "firmware:out-is-a-file",
        _firmware(lambda ctx: ctx.file("project")),
        ("--out", "is a file", "folder is expected"),
    ),
    Case(
        "firmware:out-exists",
        _firmware(lambda ctx: ctx.folder("project", full=True)),
        ("--out", "already exists", "--overwrite"),
    ),
    Case(
        "firmware:out-under-a-file",
        _firmware(lambda ctx: ctx.file("sub") + "/project"),
        ("--out", "is a file, not a folder"),
    ),
    Case(
        "firmware:out-unwritable",
        _firmware(lambda ctx: str(UNWRITABLE / "project")),
        ("--out", "not writable"),
    ),
    Case(
        "firmware:options-is-a-folder",
        _firmware(_new_project, "--options", lambda ctx: ctx.folder("options")),
        ("firmware options file", "is a folder"),
    ),
    Case(
        "firmware:options-billion-laughs",
        _firmware(_new_project, "--options", lambda ctx: ctx.config(BILLION_LAUGHS)),
        ("c.yaml", "billion laughs"),
    ),
    Case(
        "firmware:options-clock-period-inf",
        _firmware(_new_project, "--options", lambda ctx: ctx.config("clock_period: .inf\n")),
        ("clock_period", "finite"),
    ),
    Case(
        "firmware:clock-period-flag-inf",
        _firmware(_new_project, "--clock-period", "inf"),
        ("--clock-period", "not a finite number"),
    ),
    Case(
        "firmware:input-type-100000-bits",
        _firmware(_new_project, "--input-type", "ap_fixed<100000,5>"),
        ("ap_fixed<100000,5>", "1..1024"),
    ),
    Case(
        "firmware:data-and-random",
        _firmware(_new_project, "--data", lambda ctx: str(ctx.files.events), "--random", "5"),
        ("either --data or --random",),
    ),
    Case(
        "firmware:model-missing",
        _firmware(_new_project, model=lambda f: Path("/nonexistent/model.h5")),
        ("/nonexistent/model.h5",),
    ),
]


# --- verify ----------------------------------------------------------------------------------
def _verify(*extra: str | Callable[[Ctx], str], model=None):
    return lambda ctx: [
        "verify",
        str((model or (lambda f: f.qkeras))(ctx.files)),
        "--random",
        "8",
        *[e(ctx) if callable(e) else e for e in extra],
    ]


CASES += [
    Case(
        "verify:report-is-a-folder",
        _verify("--report", lambda ctx: ctx.folder("report.json")),
        ("--report", "is a folder"),
    ),
    Case(
        "verify:report-exists",
        _verify("--report", lambda ctx: ctx.file("report.json")),
        ("--report", "already exists", "--overwrite"),
    ),
    Case(
        "verify:report-under-a-file",
        _verify("--report", lambda ctx: ctx.file("sub") + "/report.json"),
        ("--report", "is a file, not a folder"),
    ),
    Case(
        "verify:hepfpga-cache-is-a-file",
        _verify(),
        ("hepfpga_cache", "cache", "is a file"),
        env=lambda ctx: {"HEPFPGA_CACHE": ctx.file("cache")},
    ),
    Case(
        "verify:cache-dir-under-a-file",
        _verify("--cache-dir", lambda ctx: ctx.file("sub") + "/cache"),
        ("cache", "is a file, not a folder"),
    ),
    Case(
        "verify:cache-unwritable",
        _verify("--cache-dir", lambda ctx: str(UNWRITABLE)),
        ("cache", "not writable"),
    ),
    Case("verify:tolerance-negative", _verify("--tolerance", "-1"), ("--tolerance",)),
    Case(
        "verify:tolerance-nan",
        _verify("--tolerance", "nan"),
        ("--tolerance", "not a finite number"),
    ),
    Case(
        "verify:model-missing",
        _verify(model=lambda f: Path("/nonexistent/model.h5")),
        ("/nonexistent/model.h5",),
    ),
]


# --- emulate ---------------------------------------------------------------------------------
def _emulate(out: Callable[[Ctx], str], *extra: str | Callable[[Ctx], str], model=None, data=None):
    return lambda ctx: [
        "emulate",
        str((model or (lambda f: f.qkeras))(ctx.files)),
        str((data or (lambda f: f.events))(ctx.files)),
        "--out",
        out(ctx),
        *[e(ctx) if callable(e) else e for e in extra],
    ]


def _new_npz(ctx: Ctx) -> str:
    return str(ctx.tmp / "out.npz")


CASES += [
    Case(
        "emulate:out-is-a-folder",
        _emulate(lambda ctx: ctx.folder("out.npz")),
        ("--out", "is a folder"),
    ),
    Case(
        "emulate:out-exists",
        _emulate(lambda ctx: ctx.file("out.npz")),
        ("--out", "already exists", "--overwrite"),
    ),
    Case(
        "emulate:out-under-a-file",
        _emulate(lambda ctx: ctx.file("sub") + "/out.npz"),
        ("--out", "is a file, not a folder"),
    ),
    Case(
        "emulate:out-unwritable",
        _emulate(lambda ctx: str(UNWRITABLE / "out.npz")),
        ("--out", "not writable"),
    ),
    Case(
        "emulate:report-is-a-folder",
        _emulate(_new_npz, "--report", lambda ctx: ctx.folder("r.json")),
        ("--report", "is a folder"),
    ),
    Case(
        "emulate:float-model",
        _emulate(_new_npz, model=lambda f: f.float),
        ("float (non-qkeras) model", "quantize it with qkeras"),
    ),
    Case("emulate:out-suffix-txt", _emulate(lambda ctx: str(ctx.tmp / "out.txt")), ("out.txt",)),
    Case(
        "emulate:data-missing",
        _emulate(_new_npz, data=lambda f: Path("/nonexistent/events.npz")),
        ("/nonexistent/events.npz",),
    ),
]

# --- models of shapes no command takes: one case per command -------------------------------
# (export onnx, firmware, verify and emulate take several inputs, one array per input)
_SHAPES = {
    "zero-input-features": (lambda f: f.zero_inputs, ("zero values per event",)),
}
for _shape, (_model, _needles) in _SHAPES.items():
    CASES += [
        Case(f"emulate:{_shape}", _emulate(_new_npz, model=_model), _needles),
        Case(
            f"firmware:{_shape}", _firmware(_new_project, "--random", "5", model=_model), _needles
        ),
        Case(f"verify:{_shape}", _verify(model=_model), _needles),
    ]

# --- data ------------------------------------------------------------------------------------
CASES += [
    Case(
        "data-info:features-is-an-hdf5-group",
        lambda ctx: ["data", "info", str(ctx.files.group_features)],
        ("'features' is an hdf5 group",),
    ),
    Case("data-info:folder", lambda ctx: ["data", "info", ctx.folder("jets.h5")], ("jets.h5",)),
    Case(
        "data-info:not-a-sample",
        lambda ctx: ["data", "info", str(ctx.files.not_a_model)],
        ("not_a_model.h5",),
    ),
    Case(
        "data-info:missing",
        lambda ctx: ["data", "info", str(ctx.tmp / "nope.npz")],
        ("nope.npz",),
    ),
    Case(
        "data-generate:out-exists",
        lambda ctx: ["data", "generate", "--out", ctx.file("jets.h5"), "--per-class", "1"],
        ("--out", "already exists", "--overwrite"),
    ),
    Case(
        "data-generate:seed-negative",
        lambda ctx: ["data", "generate", "--out", str(ctx.tmp / "j.h5"), "--seed", "-1"],
        ("--seed", "0<=x<=900000000"),
    ),
    Case(
        "data-generate:out-is-a-folder",
        lambda ctx: ["data", "generate", "--out", ctx.folder("jets.h5"), "--per-class", "1"],
        ("--out", "is a folder"),
    ),
]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    out = {}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        out[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_there_are_at_least_80_cases() -> None:
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_gives_one_clear_line_and_writes_nothing(
    case: Case,
    files: Files,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = Ctx(files, tmp_path)
    monkeypatch.setenv("HEPFPGA_CACHE", str(tmp_path / "cache-unused"))
    argv = ["-q", *case.argv(ctx)]
    for key, value in case.env(ctx).items():
        monkeypatch.setenv(key, value)
    before = _snapshot(tmp_path)

    code = main(argv)

    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    line = lines[0].lower()
    for needle in case.needles:
        assert needle.lower() in line, f"{needle!r} not in {lines[0]!r}"
    assert len(lines[0]) < 600, "the message must stay one readable line"
    assert code == case.code, err
    assert _snapshot(tmp_path) == before, "the command left or changed files"
    assert not (tmp_path / "cache-unused").exists()


#: cases also run through the console entry point in a real process (the interpreter's own
#: exit status and stderr, with TensorFlow's start-up in the way)
SUBPROCESS_CASES = [
    "config-check:billion-laughs",
    "run:config-is-a-folder",
    "onnx:out-is-a-folder",
    "firmware:out-exists",
]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS_CASES], ids=str)
def test_bad_input_through_the_console_entry_point(
    case: Case, files: Files, tmp_path: Path
) -> None:
    ctx = Ctx(files, tmp_path)
    argv = case.argv(ctx)
    env = {**os.environ, "HEPFPGA_CACHE": str(tmp_path / "cache-unused"), **case.env(ctx)}
    before = _snapshot(tmp_path)

    result = subprocess.run(
        [sys.executable, "-m", "hepfpga", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )

    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr
    assert all(needle.lower() in lines[0].lower() for needle in case.needles), lines[0]
    assert result.returncode == case.code
    assert _snapshot(tmp_path) == before
