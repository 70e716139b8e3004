"""One scalar per event (a rank-1 tensor with the batch) is refused before hls4ml, naming the
layer and the fix: hls4ml 1.3 reads every shape as a list of at least one dimension and fails
inside its converter (IndexError 'list index out of range')."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions, verify_model


def _scalar_output() -> Any:
    from tensorflow import keras

    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(1, name="dense")(x)
    return keras.Model(x, keras.layers.Reshape((), name="to_scalar")(h))


def _scalar_input() -> Any:
    from tensorflow import keras

    x = keras.Input((), name="x")
    h = keras.layers.Reshape((1,), name="to_vector")(x)
    return keras.Model(x, keras.layers.Dense(2, name="dense")(h))


CASES = {
    "output": (
        _scalar_output,
        (20, 4),
        "layer 'to_scalar' (Reshape) gives one scalar per event (shape (None,)); hls4ml 1.3 "
        "needs at least one dimension per event: keep a dimension of 1, e.g. Reshape((1,)) "
        "instead of Reshape(())",
    ),
    "input": (
        _scalar_input,
        (20,),
        "layer 'x' (InputLayer) gives one scalar per event (shape (None,)); hls4ml 1.3 needs "
        "at least one dimension per event: give the input the shape (1,)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_scalar_per_event_is_refused_by_name(case: str) -> None:
    build, shape, message = CASES[case]
    events = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with pytest.raises(ConversionError) as info:
        verify_model(build(), events, FirmwareOptions(), cache=False)
    assert message in str(info.value)


def test_verify_cli_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scalar.keras"
    _scalar_output().save(path)
    assert main(["verify", str(path), "--random", "20", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "'to_scalar' (Reshape) gives one scalar per event" in err
    assert "list index out of range" not in err and "Traceback" not in err
