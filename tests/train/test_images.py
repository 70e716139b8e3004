"""Jet images from constituents: binning, sums, what falls outside, argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.images import jet_images


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
