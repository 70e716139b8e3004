"""Models with several inputs or several outputs in the emulator: the fixed-point engine,
identical to the C simulation for every output; ``emulate_file`` and ``hepfpga emulate`` with
one array per input and one per output.

The two compiled models (a VAE encoder ``[mu, log_var]`` and a two-input tagger) are the ones
of ``test_byo_layers.py``, built once per session (the session's cache shares the g++ build).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import DataError

N_EVENTS = 300

#: builder - kwargs - backend
CASES = {
    "two-outputs-Vivado-w6": ("vae_encoder", {"bits": 6}, "Vivado"),
    "two-inputs-Vitis-w8": ("two_input_tagger", {"bits": 8}, "Vitis"),
}


@pytest.fixture(scope="session", params=list(CASES))
def multi(request: pytest.FixtureRequest, byo_models: Any) -> tuple[str, Any, Any, Any]:
    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    builder, kwargs, backend = CASES[request.param]
    model = getattr(byo_models, builder)(**kwargs)
    arrays = [
        byo_models.events(tuple(int(d) for d in t.shape[1:]), N_EVENTS, seed=3 + i)
        for i, t in enumerate(model.inputs)
    ]
    options = FirmwareOptions(backend=backend)
    plan, events = plan_for_events(model, arrays if len(arrays) > 1 else arrays[0], options)
    project = cached_project(plan, options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, stress_events=1000)
    return request.param, model, project, (emulator, events)


@pytest.mark.slow
def test_every_output_is_identical_to_the_c_simulation(multi: tuple[str, Any, Any, Any]) -> None:
    from hepfpga.firmware.csim import predict, predict_outputs
    from hepfpga.firmware.emulate import ENGINE_FIXED

    _, model, project, (emulator, events) = multi
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert emulator.check is not None and emulator.check.passed
    assert [name for name, _ in emulator.inputs] == [t.name.split(":")[0] for t in model.inputs]
    assert len(emulator.outputs) == len(model.outputs)
    # the proof compared every output (and the logits)
    assert len(emulator.check.outputs_compared) >= len(model.outputs)
    wide = [e * 4.0 for e in events] if isinstance(events, list) else events * 4.0
    for x in (events, wide):
        outputs = emulator.predict_outputs(x)
        reference = predict_outputs(project, x)
        assert len(outputs) == len(reference) == len(model.outputs)
        for mine, ref in zip(outputs, reference, strict=True):
            assert np.array_equal(mine, ref)
        assert np.array_equal(emulator.predict(x), predict(project, x))


@pytest.mark.slow
def test_emulate_file_writes_one_array_per_output(
    multi: tuple[str, Any, Any, Any], tmp_path: Path
) -> None:
    import h5py

    from hepfpga.firmware.csim import predict_outputs
    from hepfpga.firmware.emulate import emulate_file

    _, model, project, (emulator, events) = multi
    arrays = events if isinstance(events, list) else [events]
    names = [name for name, _ in emulator.inputs]
    data = tmp_path / "events.h5"
    with h5py.File(data, "w") as f:
        for name, array in zip(names, arrays, strict=True):
            f[f"stored_{name}"] = array
        f["extra"] = np.zeros(3)
    key: Any = (
        {name: f"stored_{name}" for name in names} if len(names) > 1 else "stored_" + names[0]
    )
    result = emulate_file(emulator, data, tmp_path / "out.h5", key=key, n_workers=1)
    expected = (
        ("outputs",)
        if len(model.outputs) == 1
        else tuple(f"outputs_{n}" for n in ("mu", "log_var"))
    )
    assert result.arrays == expected
    with h5py.File(tmp_path / "out.h5") as f:
        for name, ref in zip(expected, predict_outputs(project, events), strict=True):
            assert np.array_equal(f[name][:], ref), name
    if len(names) > 1:
        # arrays named as the inputs need no key; a key naming no input is refused
        np.savez(tmp_path / "named.npz", **dict(zip(names, arrays, strict=True)))
        default = emulate_file(emulator, tmp_path / "named.npz", tmp_path / "o.npz", n_workers=1)
        assert default.n_events == N_EVENTS
        with pytest.raises(DataError, match="not inputs of the model; its inputs: jet, event"):
            emulate_file(emulator, data, tmp_path / "x.npz", key={"jets": "stored_jet"})
        with pytest.raises(DataError, match="give a list of 2 event arrays, got 1"):
            emulator.predict(arrays[0])


def test_bad_key_pairs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepfpga.cli import main

    (tmp_path / "data.npz").write_bytes(b"")
    code = main(
        [
            "emulate",
            str(tmp_path / "m.h5"),
            str(tmp_path / "data.npz"),
            "--key",
            "jet=a,event",
            "--out",
            str(tmp_path / "o.npz"),
        ]
    )
    assert code == 2
    assert "expected INPUT=ARRAY pairs separated by commas" in capsys.readouterr().err
