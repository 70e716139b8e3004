"""Jet images from constituents: binning, sums, what falls outside, argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.images import align_constituents, jet_images


def _jet(*particles: tuple[float, float, float], n: int = 5) -> np.ndarray:
    out = np.zeros((1, n, 3), dtype=np.float32)
    out[0, : len(particles)] = particles
    return out


@pytest.mark.parametrize(("n_pixels", "extent"), [(32, 0.8), (16, 0.8), (10, 1.0)])
def test_shape_dtype_and_axis_pixels(n_pixels: int, extent: float) -> None:
    width = 2 * extent / n_pixels
    constituents = _jet((0.5, 0.5 * width, 0.5 * width), (0.25, -0.5 * width, 1.5 * width))
    image = jet_images(constituents, n_pixels=n_pixels, extent=extent)
    assert image.shape == (1, n_pixels, n_pixels, 1) and image.dtype == np.float32
    centre = n_pixels // 2
    assert image[0, centre, centre, 0] == pytest.approx(0.5)  # just above the axis in both
    assert image[0, centre - 1, centre + 1, 0] == pytest.approx(0.25)  # eta row, phi column
    assert image.sum() == pytest.approx(0.75)


def test_same_pixel_accumulates_and_outside_is_dropped() -> None:
    constituents = _jet(
        (0.3, 0.01, 0.01),
        (0.2, 0.02, 0.02),
        (0.1, 0.8, 0.0),  # upper edge: outside
        (0.1, 0.0, -0.81),  # outside in phi
        (0.05, -0.79, -0.79),  # near the lower edge: inside, first pixel
    )
    image = jet_images(constituents)[0, :, :, 0]
    assert image[16, 16] == pytest.approx(0.5)
    assert image[0, 0] == pytest.approx(0.05)
    assert image.sum() == pytest.approx(0.55)


def test_zero_padding_and_empty_constituents() -> None:
    assert not jet_images(np.zeros((3, 30, 3), np.float32)).any()
    empty = jet_images(np.zeros((4, 0, 3), np.float32), n_pixels=8)
    assert empty.shape == (4, 8, 8, 1) and not empty.any()


def test_each_jet_gets_its_own_image() -> None:
    constituents = np.concatenate([_jet((1.0, 0.1, 0.1)), _jet((0.7, -0.1, -0.1))])
    images = jet_images(constituents)
    assert images[0].sum() == pytest.approx(1.0)
    assert images[1].sum() == pytest.approx(0.7)
    assert images[0, 18, 18, 0] == pytest.approx(1.0)
    assert images[1, 13, 13, 0] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_pixels": 0}, "n_pixels=0"),
        ({"n_pixels": 2.5}, "n_pixels=2.5"),
        ({"extent": 0.0}, "extent=0.0"),
        ({"extent": float("nan")}, "extent=nan"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        jet_images(np.zeros((1, 2, 3)), **kwargs)


def test_bad_shape() -> None:
    with pytest.raises(DataError, match=r"\(N, C, 3\).*\(2, 3\)"):
        jet_images(np.zeros((2, 3)))


def _sample(constituents: np.ndarray, jet_pt: np.ndarray | None = None):
    """A :class:`JetSample` of ``constituents`` (zero features, labels, eta, mass)."""
    from hepfpga.train.jets import JetSample

    n = len(constituents)
    zeros = np.zeros(n, np.float32)
    return JetSample(
        features=np.zeros((n, 16), np.float32),
        constituents=constituents,
        labels=np.zeros(n, np.int64),
        jet_pt=zeros if jet_pt is None else jet_pt,
        jet_eta=zeros,
        jet_mass=zeros,
    )


def _two_prong(angle: float, mirror: bool = False) -> np.ndarray:
    """A three-particle jet (a hard prong, a softer one 0.3 away, a soft third off the axis)
    rotated by ``angle`` about its pT-weighted centroid, mirrored in phi when ``mirror``."""
    base = np.array([[0.6, 0.0, 0.0], [0.3, 0.27, 0.0], [0.1, 0.07, 0.13]])
    w = base[:, 0] / base[:, 0].sum()
    centre = (w[:, None] * base[:, 1:]).sum(axis=0)
    xy = base[:, 1:] - centre
    if mirror:
        xy[:, 1] = -xy[:, 1]
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = xy @ rot.T + np.array([0.05, -0.02])  # also off the jet axis
    return _jet(*[(pt, e, p) for pt, (e, p) in zip(base[:, 0], moved, strict=True)])


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.3, -2.2, np.pi])
@pytest.mark.parametrize("mirror", [False, True])
def test_aligned_images_do_not_depend_on_the_jet_orientation(angle: float, mirror: bool) -> None:
    """Rotated about its centroid, moved off the axis or mirrored, a jet gives the same
    aligned image: centroid at the origin, the hard-to-soft axis along +eta."""
    reference = jet_images(_two_prong(0.0), n_pixels=16, extent=0.4, align=True)
    image = jet_images(_two_prong(angle, mirror), n_pixels=16, extent=0.4, align=True)
    np.testing.assert_array_equal(image, reference)
    aligned = align_constituents(_two_prong(angle, mirror))[0, :3]
    w, e, p = aligned[:, 0], aligned[:, 1], aligned[:, 2]
    assert abs((w * e).sum()) < 1e-12 and abs((w * p).sum()) < 1e-12  # centroid at 0
    assert abs((w * e * p).sum()) < 1e-12 and (w * e * e).sum() > (w * p * p).sum()  # axis
    assert (w * e**3).sum() >= 0 and (w * p**3).sum() >= 0 and e[1] > e[0]  # flips


def test_alignment_keeps_padding_and_empty_jets() -> None:
    jets = np.concatenate([_two_prong(0.7), np.zeros((1, 5, 3), np.float32)])
    aligned = align_constituents(jets)
    assert not aligned[0, 3:].any() and not aligned[1].any()
    np.testing.assert_array_equal(aligned[:, :, 0], jets[:, :, 0])
    assert not jet_images(jets[1:], align=True).any()
    assert jet_images(jets, n_pixels=8, align=True)[0].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("align", [False, True])
def test_the_cnn_config_chooses_the_frame(align: bool) -> None:
    """``model.image_align`` reaches the representation, which bins the run's jets in that
    frame and records it in the preprocessing the run writes; a non-boolean is refused."""
    from hepfpga.errors import ConfigError
    from hepfpga.pipeline.config import parse_config

    model = {
        "architecture": "cnn",
        "image_pixels": 8,
        "image_extent": 0.4,
        "image_align": align,
        "filters": [2],
    }
    config = parse_config({"model": model})
    representation = config.model.input_representation(config.data)
    constituents = np.concatenate([_two_prong(0.9), _two_prong(-0.3, mirror=True)])
    images = representation.encode(_sample(constituents), None)
    np.testing.assert_array_equal(images, jet_images(constituents, 8, 0.4, align=align))
    assert np.array_equal(images[0], images[1]) == align  # the same jet, turned and mirrored
    assert ("principal axis" in representation.preprocessing(None)["frame"]) == align
    with pytest.raises(ConfigError, match="image_align"):
        parse_config({"model": {**model, "image_align": "yes"}})


def test_angles_scaled_by_the_jet_pt_put_equal_masses_at_equal_separations() -> None:
    """Prongs 0.22 apart at 1 TeV and 0.11 apart at 2 TeV (the same mass, ~2 m / pT): with the
    angles multiplied by pT / 1 TeV both jets give one image; unscaled they differ."""
    wide = _jet((0.5, 0.11, 0.0), (0.5, -0.11, 0.0))
    narrow = _jet((0.5, 0.055, 0.0), (0.5, -0.055, 0.0))
    jets = np.concatenate([wide, narrow])
    scaled = jet_images(jets, 16, 0.4, angle_scale=np.array([1.0, 2.0]))
    np.testing.assert_array_equal(scaled[0], scaled[1])
    assert not np.array_equal(*jet_images(jets, 16, 0.4))
    # pixels of 0.05 from -0.4: -0.11 in row 5, +0.11 in row 10
    assert scaled[0, :, :, 0].sum(axis=1).nonzero()[0].tolist() == [5, 10]


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        (np.ones(3), r"one factor per jet, shape \(2,\); got shape \(3,\)"),
        (np.array([1.0, 0.0]), "1 of 2 jets have a factor that is not positive and finite"),
        (np.array([np.nan, -1.0]), "2 of 2 jets"),
    ],
)
def test_bad_angle_scales_are_refused(scale: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        jet_images(np.zeros((2, 3, 3)), angle_scale=scale)


def test_the_cnn_config_scales_the_angles_by_the_jet_pt() -> None:
    from hepfpga.errors import ConfigError
    from hepfpga.pipeline.config import parse_config

    model = {"architecture": "cnn", "image_pixels": 8, "image_extent": 0.4, "filters": [2]}
    config = parse_config({"model": {**model, "image_pt_reference": 1000.0}})
    representation = config.model.input_representation(config.data)
    constituents = np.concatenate([_two_prong(0.0), _two_prong(0.0)])
    pt = np.array([900.0, 1200.0], np.float32)
    expected = jet_images(constituents, 8, 0.4, angle_scale=pt.astype(np.float64) / 1000.0)
    np.testing.assert_array_equal(representation.encode(_sample(constituents, pt), None), expected)
    assert "jet pT / 1000 GeV" in representation.preprocessing(None)["angles"]
    for bad in (0, -5.0, float("inf")):
        with pytest.raises(ConfigError, match="image_pt_reference"):
            parse_config({"model": {**model, "image_pt_reference": bad}})
