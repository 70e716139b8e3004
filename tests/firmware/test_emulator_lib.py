"""The trigger emulator library (hepfpga.firmware.emulator_lib, ``hepfpga emulator-lib``).

Two tiny QKeras models with the SAME layer names (and the same project name, ``myproject``)
are packed and built once per module: without the per-model namespace, hidden visibility and
the version script, their libraries would export the same symbols (``myproject``, the weights
``w2``/``b2``, hls4ml's ``nnet`` template instances) and the second loaded would run the first
one's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from emulator_lib_models import tiny_model

from hepfpga.cli import main
from hepfpga.errors import DataError, VerificationError
from hepfpga.firmware.emulator_lib import (
    EVENTS_FILE,
    build_package,
    check_package,
    read_events_file,
    run_package_test,
    write_emulator_package,
    write_events_file,
)

needs_tools = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("g++") is None, reason="needs cmake and g++"
)


def events(n: int, seed: int) -> np.ndarray:
    """Standardized-like events; one in ten saturates the input type ap_fixed<12,5>."""
    x = np.random.default_rng(seed).normal(size=(n, 8))
    x[::10] *= 40.0
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, Path, Path]]:
    """(package, library, events file) of two models with the same layer names, built."""
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    root = tmp_path_factory.mktemp("emulib")
    built = []
    for seed, version in ((1, "v1"), (2, "v2")):
        package = write_emulator_package(
            tiny_model(seed), events(300, seed), root / version, name="tagger", version=version
        )
        build = build_package(package.path)
        built.append((package, build / package.library_name, package.path / EVENTS_FILE))
    return built


@pytest.mark.slow
@needs_tools
def test_two_models_in_one_process_are_bit_exact(packages: list[tuple[Any, Path, Path]]) -> None:
    (a, lib_a, ev_a), (b, lib_b, ev_b) = packages
    assert a.namespace != b.namespace
    # the arithmetic is the C++ generated from the engine's plan, not the hls4ml sources
    assert (a.arithmetic, a.fallback_reason) == ("generated", None)
    assert "generated integer C++" in (a.path / "README.md").read_text()
    assert not (a.path / "NN" / "myproject.cpp").exists()
    # a model file has no BDT: nothing of it in the package
    assert json.loads((a.path / "package.json").read_text())["bdt"] is None
    assert not (a.path / "BDT").exists() and "BDT" not in (a.path / "CMakeLists.txt").read_text()
    # the two models differ, so a clash (one library running the other's weights) would show
    out_a = read_events_file(ev_a)[1]
    out_b = read_events_file(ev_b)[1]
    assert not np.array_equal(out_a, out_b)
    runner = lib_a.parent / "run_events"
    run = run_package_test(runner, [(lib_a, ev_a), (lib_b, ev_b)])
    assert run.passed, run.output
    assert run.output.count("outputs identical") == 2
    # crossing the files: each library must now disagree with the other model's outputs
    crossed = run_package_test(runner, [(lib_a, ev_b), (lib_b, ev_a)])
    assert crossed.returncode == 1
    assert crossed.output.count("DIFFER") == 2


@pytest.mark.slow
@needs_tools
def test_libraries_export_only_the_entry_points(
    packages: list[tuple[Any, Path, Path]],
) -> None:
    exported = []
    for _, library, _ in packages:
        nm = subprocess.run(
            ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True
        )
        assert nm.returncode == 0, nm.stderr
        exported.append({line.split()[-1] for line in nm.stdout.splitlines() if line.strip()})
    assert exported[0] & exported[1] == {"create_model", "destroy_model"}
    assert exported[0] == exported[1]


@pytest.mark.slow
@needs_tools
@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda data: data[:-8], "bytes where the header announces"),
        (lambda data: data + b"\0", "bytes where the header announces"),
        (lambda data: b"NOTEVENT" + data[8:], "not a version-1 hepfpga events file"),
        (lambda data: data[:20], "shorter than the 32-byte header"),
    ],
)
def test_bad_events_file_gives_one_line(
    packages: list[tuple[Any, Path, Path]], tmp_path: Path, damage: Any, needle: str
) -> None:
    _, library, good = packages[0]
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage(good.read_bytes()))
    run = run_package_test(library.parent / "run_events", [(library, bad)])
    assert run.returncode == 2
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    with pytest.raises(DataError):
        read_events_file(bad)


@pytest.mark.slow
@needs_tools
def test_check_package_fails_on_one_changed_bit(
    packages: list[tuple[Any, Path, Path]], tmp_path: Path
) -> None:
    """What hepfpga.firmware.testing.assert_emulator_library_exact runs: the package's own
    build folder is reused (no recompilation), and one expected output one ulp away fails."""
    package, library, events_file = packages[0]
    run = check_package(package.path, library.parent)
    assert run.passed and "identical" in run.output
    x, y = read_events_file(events_file)
    y = y.copy()
    y[-1, -1] = np.nextafter(y[-1, -1], np.inf)
    copy = tmp_path / "pkg"
    shutil.copytree(package.path, copy, ignore=shutil.ignore_patterns("build"))
    write_events_file(copy / EVENTS_FILE, x, y)
    with pytest.raises(VerificationError, match=r"1 of \d+ outputs DIFFER"):
        check_package(copy, library.parent, build=False)


def test_events_file_round_trip(tmp_path: Path) -> None:
    x = events(7, 3)
    y = np.arange(14, dtype=np.float64).reshape(7, 2) / 3
    write_events_file(tmp_path / "e.bin", x, y)
    back_x, back_y = read_events_file(tmp_path / "e.bin")
    assert back_x.dtype == np.float32
    assert np.array_equal(back_x, x) and np.array_equal(back_y, y)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["{tmp}/no-such-run", "--out", "{tmp}/pkg"], "does not exist"),
        (["{tmp}/empty", "--out", "{tmp}/pkg"], "without qkeras_model.h5"),
        (["{tmp}/empty", "--out", "{tmp}/existing"], "--out"),
    ],
)
def test_cli_bad_input_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status = main(["emulator-lib", *(a.format(tmp=tmp_path) for a in args)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def tiny_cnn() -> Any:
    """A QKeras 6x6x2 image -> conv 3x3 (3 filters) -> maxpool 2 -> dense 3 tagger."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)

    def bits() -> Any:
        return quantized_bits(6, 0, alpha=1)

    x = keras.Input((6, 6, 2), name="image")
    h = QActivation(quantized_bits(12, 4, alpha=1), name="input_quant")(x)
    h = QConv2D(3, 3, kernel_quantizer=bits(), bias_quantizer=bits(), name="conv")(h)
    h = QActivation(quantized_relu(6), name="relu")(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=bits(), bias_quantizer=bits(), name="logits")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(x, out, name="cnn")


@pytest.mark.slow
@needs_tools
def test_io_stream_image_model_is_bit_exact(
    packages: list[tuple[Any, Path, Path]], tmp_path: Path
) -> None:
    """An io_stream CNN on multi-dimensional inputs (the jet CNN's firmware), generated from the
    engine's plan (values in Keras order); loaded beside an io_parallel library in one
    process, every output is identical to ``hepfpga emulate``."""
    from hepfpga.firmware import FirmwareOptions

    x = np.random.default_rng(5).normal(size=(200, 6, 6, 2)).astype(np.float32)
    x[::10] *= 40.0
    package = write_emulator_package(
        tiny_cnn(),
        x,
        tmp_path / "cnn",
        options=FirmwareOptions.from_dict({"io_type": "io_stream"}),
    )
    assert (package.n_inputs, package.n_outputs) == (72, 3)
    assert package.arithmetic == "generated"
    # the convolution, its relu, the max pooling and the softmax are all generated
    steps = (package.path / "NN" / "model.h").read_text()
    for name in ("s0_conv", "relu", "pool", "softmax"):
        assert name in steps
    build = build_package(package.path)
    (_, lib_a, ev_a) = packages[0]
    run = run_package_test(
        build / "run_events",
        [(lib_a, ev_a), (build / package.library_name, package.path / EVENTS_FILE)],
    )
    assert run.passed, run.output
    assert run.output.count("outputs identical") == 2
