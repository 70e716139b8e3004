"""Per-constituent input channels of the constituent representations: each channel against a
hand computation, padding 0 in every channel (before and after the scaling), the default
channels bit-identical to the stored constituents, the streamed scaler fit equal to the
in-memory one, bad channel names refused at their config path."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import ConfigError, DataError
from hepfpga.pipeline.config import config_to_dict, parse_config
from hepfpga.train.dataset import Split
from hepfpga.train.jets import JetSample
from hepfpga.train.representations import (
    CONSTITUENT_CHANNELS,
    DEFAULT_CHANNELS,
    PRESENT_CHANNEL,
    ConstituentCloud,
    ConstituentSequence,
)

ALL_CHANNELS = tuple(CONSTITUENT_CHANNELS)


def _tiny() -> JetSample:
    """Two jets, three stored constituents, the second jet's last one padding."""
    constituents = np.array(
        [
            [[0.5, 0.1, -0.2], [0.3, -0.05, 0.3], [0.2, 0.2, 0.0]],
            [[0.6, -0.3, 0.1], [0.4, 0.0, -0.4], [0.0, 0.0, 0.0]],
        ],
        dtype=np.float32,
    )
    return JetSample(
        features=np.zeros((2, 16), np.float32),
        constituents=constituents,
        labels=np.array([0, 1]),
        jet_pt=np.array([100.0, 400.0], np.float32),
        jet_eta=np.array([0.5, -1.2], np.float32),
        jet_mass=np.array([20.0, 90.0], np.float32),
    )


def _by_hand(name: str, jet: int, k: int) -> float:
    """One channel of one constituent, computed from the definitions with ``math``."""
    s = _tiny()
    z, deta, dphi = (float(v) for v in s.constituents[jet, k])
    pt_jet, eta_jet, m_jet = (float(a[jet]) for a in (s.jet_pt, s.jet_eta, s.jet_mass))
    pt = z * pt_jet
    energy = pt * math.cosh(eta_jet + deta)
    jet_energy = math.sqrt(m_jet**2 + (pt_jet * math.cosh(eta_jet)) ** 2)
    return {
        "pt_fraction": z,
        "delta_eta": deta,
        "delta_phi": dphi,
        "log_pt_fraction": math.log(z),
        "log_pt": math.log(pt),
        "log_energy": math.log(energy),
        "log_energy_fraction": math.log(energy / jet_energy),
        "delta_r": math.hypot(deta, dphi),
    }[name]


@pytest.mark.parametrize("name", ALL_CHANNELS)
def test_each_channel_matches_a_hand_computation(name: str) -> None:
    x = ConstituentSequence(n_constituents=3, channels=(name,)).encode(_tiny(), None)
    assert x.shape == (2, 3, 1) and x.dtype == np.float32
    for jet, k in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]:
        assert x[jet, k, 0] == pytest.approx(_by_hand(name, jet, k), rel=1e-6, abs=1e-7)
    assert x[1, 2, 0] == 0.0  # padding


@pytest.mark.parametrize("scaling", ["none", "standard", "minmax"])
@pytest.mark.parametrize("cls", [ConstituentSequence, ConstituentCloud])
def test_padding_is_zero_in_every_channel(
    cls: type, scaling: str, make_jets: Callable[..., JetSample]
) -> None:
    sample = make_jets(60, n_constituents=8)
    sample.constituents[:, 5:] = 0.0  # the last three of every jet are padding
    sample.constituents[:7, 2:] = 0.0  # and more of the first jets
    representation = cls(n_constituents=8, channels=ALL_CHANNELS, scaling=scaling)
    inputs = representation.prepare(Split(sample, sample, sample))
    x = inputs.test
    padding = sample.constituents[..., 0] == 0
    assert np.all(x[padding] == 0.0)
    assert np.all(np.isfinite(x))
    assert x.shape[-1] == len(ALL_CHANNELS) + (cls is ConstituentCloud)
    if cls is ConstituentCloud:
        # GarNet reads its vertex mask from channel 3: 1 where a constituent is stored
        assert inputs.preprocessing["channels"][PRESENT_CHANNEL] == "present"
        np.testing.assert_array_equal(x[..., PRESENT_CHANNEL], (~padding).astype(np.float32))
    if scaling == "standard":
        present = x[~padding]
        scaled = (
            np.delete(present, PRESENT_CHANNEL, axis=-1) if cls is ConstituentCloud else present
        )
        np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-4)
        assert inputs.preprocessing["scaler"] == inputs.scaler.to_dict()
        assert inputs.scaler.feature_names == ALL_CHANNELS


@pytest.mark.parametrize("cls", [ConstituentSequence, ConstituentCloud])
def test_default_channels_are_the_stored_constituents(
    cls: type, make_jets: Callable[..., JetSample]
) -> None:
    sample = make_jets(40, n_constituents=6)
    sample.constituents[:5, 4:] = 0.0
    stored = sample.constituents[:, :5, :]
    old = (
        stored
        if cls is ConstituentSequence
        else np.concatenate([stored, (stored[..., :1] != 0).astype(stored.dtype)], axis=-1)
    )
    for representation in (cls(n_constituents=5), cls(n_constituents=5, channels=DEFAULT_CHANNELS)):
        inputs = representation.prepare(Split(sample, sample, sample))
        assert inputs.test.dtype == old.dtype and inputs.test.tobytes() == old.tobytes()
        assert inputs.scaler is None
        assert set(inputs.preprocessing) == {
            "representation",
            "n_constituents",
            "channels",
            "order",
        }
    # the same through the architecture sections, as a run builds them
    for section in (
        {"architecture": "deepsets"},
        {"architecture": "lstm"},
        {"architecture": "garnet"},
    ):
        model = parse_config({"model": section}).model
        built = model.input_representation(parse_config({}).data)
        assert built.channels == DEFAULT_CHANNELS and built.scaling == "none"


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_streamed_fit_equals_the_in_memory_fit(
    scaling: str, make_jets: Callable[..., JetSample]
) -> None:
    sample = make_jets(300, n_constituents=10, seed=3)
    sample.constituents[::3, 6:] = 0.0
    representation = ConstituentCloud(n_constituents=8, channels=ALL_CHANNELS, scaling=scaling)
    inputs = representation.prepare(Split(sample, sample, sample))
    chunks = (sample.subset(np.arange(i, min(i + 37, len(sample)))) for i in range(0, 300, 37))
    streamed = representation.fit_streamed(chunks)
    assert streamed is not None and inputs.scaler is not None
    assert streamed.feature_names == inputs.scaler.feature_names
    np.testing.assert_allclose(streamed.offset, inputs.scaler.offset, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(streamed.scale, inputs.scaler.scale, rtol=1e-12)
    np.testing.assert_allclose(representation.encode(sample, streamed), inputs.test, atol=1e-6)
    assert representation.preprocessing(streamed)["channels"][PRESENT_CHANNEL] == "present"


def test_a_jet_without_pt_is_refused_for_the_channels_that_need_it() -> None:
    sample = _tiny()
    sample.jet_pt[1] = 0.0
    ConstituentSequence(n_constituents=3, channels=("delta_r", "log_pt_fraction")).encode(
        sample, None
    )
    with pytest.raises(DataError, match=r"jet 1.*log_energy"):
        ConstituentSequence(n_constituents=3, channels=("log_energy",)).encode(sample, None)


@pytest.mark.parametrize(
    ("model", "needles"),
    [
        (
            {"architecture": "deepsets", "channels": ["delta_eta", "log_ptt"]},
            ("model.channels[1]", "log_ptt", "did you mean 'log_pt'", "delta_r"),
        ),
        (
            {"architecture": "gru", "channels": ["delta_r", "delta_r"]},
            ("model.channels[1]", "listed twice"),
        ),
        (
            {"architecture": "garnet", "channels": ["delta_eta", "delta_phi"]},
            ("model.channels", "at least 3", "vertex mask"),
        ),
        (
            {"architecture": "lstm", "channel_scaling": "log"},
            ("model.channel_scaling", "'log'", "standard"),
        ),
    ],
)
def test_bad_channels_are_refused_at_their_path(
    model: dict, needles: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError):
        parse_config({"model": model})
    config = tmp_path / "bad.yaml"
    config.write_text(
        "model:\n" + "".join(f"  {k}: {v!r}\n".replace("'", '"') for k, v in model.items())
    )
    code = main(["-q", "config", "check", str(config)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_channels_round_trip_through_the_config() -> None:
    config = parse_config(
        {
            "model": {
                "architecture": "deepsets",
                "channels": list(ALL_CHANNELS),
                "channel_scaling": "standard",
            }
        }
    )
    assert parse_config(config_to_dict(config)) == config
    built = config.model.input_representation(config.data)
    assert built == ConstituentSequence(16, ALL_CHANNELS, "standard")


@pytest.mark.parametrize("architecture", ["deepsets", "lstm", "garnet"])
@pytest.mark.parametrize("scaling", ["none", "standard"])
def test_pad_constituents_zero_pads_beyond_the_stored_ones(
    architecture: str, scaling: str, make_jets: Callable[..., JetSample]
) -> None:
    """``pad_constituents``: 8 requested of 6 stored gives the 6 stored ones as with
    ``n_constituents: 6`` (scaler included: padding never enters its fit), then two
    constituents that are 0 in every channel (and absent in the cloud); without it, one
    refusal naming the option."""
    sample = make_jets(40, n_constituents=6)
    split = Split(sample, sample, sample)
    section = {"architecture": architecture, "channel_scaling": scaling}
    if scaling != "none":
        section["channels"] = list(ALL_CHANNELS)

    def representation(n: int, pad: bool) -> ConstituentSequence:
        model = parse_config({"model": {**section, "n_constituents": n, "pad_constituents": pad}})
        return model.model.input_representation(parse_config({}).data)

    padded = representation(8, True).prepare(split)
    stored = representation(4, False)
    stored = type(stored)(6, stored.channels, stored.scaling).prepare(split)
    assert padded.test.shape == (40, 8, stored.test.shape[-1])
    np.testing.assert_array_equal(padded.test[:, :6], stored.test)
    assert np.all(padded.test[:, 6:] == 0.0)
    assert "padding" in padded.preprocessing
    with pytest.raises(
        DataError,
        match=r"8 constituents per jet requested, the sample stores 6.*"
        "pad_constituents: true",
    ):
        representation(8, False).prepare(split)
