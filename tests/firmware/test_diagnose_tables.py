"""``diagnose`` names a table activation, not the exact layer after it, when that layer only
inherits the table's difference (issue 20). No compiler: the traces are the Keras values with
the table's output moved by a few of its LSBs, as a C simulation's table would move them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.firmware.diagnose import LayerComparison, diagnose

LSB = 2.0**-10


def _model(activation: str) -> Any:
    from tensorflow import keras

    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(5, name="d1")(x)
    h = keras.layers.Activation(activation, name="table")(h)
    return keras.Model(x, keras.layers.Dense(3, name="d2")(h))


def _comparison(name: str, ref: np.ndarray, got: np.ndarray, exact: bool) -> LayerComparison:
    diff = float(np.abs(ref - got).max())
    return LayerComparison(
        name,
        "Dense" if name.startswith("d") else "Activation",
        "ap_fixed<18,8>",
        float(np.mean(np.all(ref == got, axis=1))),
        diff,
        diff / LSB,
        float(ref.min()),
        float(ref.max()),
        -128.0,
        128.0,
        exact,
    )


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "tanh"])
@pytest.mark.parametrize("table_differs", [True, False])
def test_the_table_is_named_when_the_layer_after_it_inherits_its_difference(
    activation: str, table_differs: bool
) -> None:
    """The first exact layer that differs ('d2') reads a table ('table') that differs: the
    diagnosis names the table (cause table_activation) and says 'd2' inherits it. Where the
    table agrees bit for bit, 'd2' itself is named with a cause of its own."""
    from hepfpga.firmware.layers.graph import layer_outputs

    model = _model(activation)
    x = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
    references = layer_outputs(model, x, ["d1", "table", "d2"])
    traces = dict(references)
    if table_differs:
        traces["table"] = references["table"] + 3 * LSB
    kernel, bias = model.get_layer("d2").get_weights()
    traces["d2"] = (traces["table"] @ kernel + bias + (0 if table_differs else LSB / 3)).astype(
        np.float32
    )
    layers = [
        _comparison(name, references[name], traces[name], exact=name != "table")
        for name in ("d1", "table", "d2")
    ]
    found = diagnose(model, layers, references, traces, x=x, input_type=None)
    assert found is not None
    if table_differs:
        assert (found.layer, found.cause) == ("table", "table_activation"), str(found)
        assert f"{activation} is computed from lookup tables" in found.explanation
        assert "'d2' after it is the first layer meant to be exact that differs" in str(found)
    else:
        assert found.layer == "d2" and found.cause != "table_activation", str(found)
