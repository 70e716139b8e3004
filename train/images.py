"""Jet images: pT-weighted eta-phi histograms built from the stored constituents at load time.

Binning: ``n_pixels`` equal bins over ``[-extent, extent)`` in both ``eta - eta_jet`` (axis 1
of the image, rows) and ``phi - phi_jet`` (axis 2, columns); the pixel width is
``2 * extent / n_pixels`` (0.05 for the defaults 32 and 0.8). The jet axis lies on the corner
shared by the four central pixels. A pixel holds the sum of the pT fractions
(``pT_i / pT_jet``) of the constituents inside it, so an image sums to the pT fraction of the
stored (leading) constituents that fall inside the window. Constituents outside the window
(``|d| >= extent`` on either axis, the upper edge excluded) and zero-padded entries add
nothing; no other normalisation or rotation is applied.
"""

from __future__ import annotations

import numpy as np

from hepfpga.errors import DataError

__all__ = ["jet_images"]


def jet_images(constituents: np.ndarray, n_pixels: int = 32, extent: float = 0.8) -> np.ndarray:
    """float32 ``(N, n_pixels, n_pixels, 1)`` images from ``(N, C, 3)`` constituents.

    ``constituents`` has the layout of :class:`hepfpga.train.jets.JetSample`:
    ``(pT / jet pT, eta - jet eta, delta phi)`` per constituent. See the module docstring for
    the binning.
    """
    if isinstance(n_pixels, bool) or not isinstance(n_pixels, (int, np.integer)) or n_pixels < 1:
        raise DataError(f"expected a positive integer. Received: n_pixels={n_pixels!r}")
    if not np.isfinite(extent) or extent <= 0:
        raise DataError(f"expected a positive, finite number. Received: extent={extent!r}")
    constituents = np.asarray(constituents)
    if constituents.ndim != 3 or constituents.shape[2] != 3:
        raise DataError(
            f"jet_images expects constituents of shape (N, C, 3), got {constituents.shape}"
        )
    n_jets = constituents.shape[0]
    images: np.ndarray = np.zeros((n_jets, n_pixels * n_pixels), dtype=np.float64)
    if constituents.shape[1]:
        pt_fraction = constituents[..., 0].astype(np.float64)
        width = 2.0 * extent / n_pixels
        row = np.floor((constituents[..., 1].astype(np.float64) + extent) / width)
        col = np.floor((constituents[..., 2].astype(np.float64) + extent) / width)
        inside = (row >= 0) & (row < n_pixels) & (col >= 0) & (col < n_pixels)
        inside &= pt_fraction != 0.0
        jet, _ = np.nonzero(inside)
        pixel = (row[inside] * n_pixels + col[inside]).astype(np.int64)
        flat = jet * (n_pixels * n_pixels) + pixel
        images = np.bincount(
            flat, weights=pt_fraction[inside], minlength=n_jets * n_pixels * n_pixels
        ).reshape(n_jets, n_pixels * n_pixels)
    return images.reshape(n_jets, n_pixels, n_pixels, 1).astype(np.float32)
