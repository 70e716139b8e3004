"""Jet images: pT-weighted eta-phi histograms built from the stored constituents at load time.

Binning: ``n_pixels`` equal bins over ``[-extent, extent)`` in both ``eta - eta_jet`` (axis 1
of the image, rows) and ``phi - phi_jet`` (axis 2, columns); the pixel width is
``2 * extent / n_pixels`` (0.05 for the defaults 32 and 0.8). The jet axis lies on the corner
shared by the four central pixels. A pixel holds the sum of the pT fractions
(``pT_i / pT_jet``) of the constituents inside it, so an image sums to the pT fraction of the
stored (leading) constituents that fall inside the window. Constituents outside the window
(``|d| >= extent`` on either axis, the upper edge excluded) and zero-padded entries add
nothing; no other normalisation is applied.

``align=True`` first moves each jet into its own frame (:func:`align_constituents`, the
preprocessing of the jet-image literature: Cogan et al. 2015, de Oliveira et al. 2016): the
pT-weighted centroid to the origin, the principal axis of the pT-weighted second moments
along eta, and each axis flipped so the pT-weighted third moment along it is not negative.
The image is then binned as above around the centroid. The alignment is a preprocessing of
the constituents: a trigger feeding the firmware computes it upstream, like the binning.

``angle_scale`` (one factor per jet, e.g. ``jet pT / 1 TeV``) multiplies both angular
coordinates (after the alignment) before binning: the opening angle of a boosted two-prong
decay is about ``2 m / pT``, so with ``pT / pT_ref`` it becomes about ``2 m / pT_ref``
whatever the jet's pT, and the prong separation in pixels measures the mass.
"""

from __future__ import annotations

import numpy as np

from hepfpga.errors import DataError

__all__ = ["align_constituents", "jet_images"]


def align_constituents(constituents: np.ndarray) -> np.ndarray:
    """``(N, C, 3)`` constituents (``(pT / jet pT, eta - jet eta, delta phi)``) in each jet's
    own frame, float64: with weights ``w`` the pT fractions, the angles are taken from the
    ``w``-weighted centroid; rotated by ``-theta``, ``theta = atan2(2 S_ep, S_ee - S_pp) / 2``
    the angle of the principal axis of the ``w``-weighted second moments ``S`` (the axis then
    lies along eta); then each axis is negated if the ``w``-weighted sum of its cubes is
    negative (ties, at exactly 0, are kept). Zero-padded entries (pT fraction 0) stay all zero,
    and a jet without constituents is returned unchanged."""
    c = np.asarray(constituents, dtype=np.float64)
    pt, eta, phi = c[..., 0], c[..., 1], c[..., 2]
    present = pt != 0.0
    total = pt.sum(axis=1, keepdims=True)
    w = np.divide(pt, total, out=np.zeros_like(pt), where=total != 0.0)
    e = eta - (w * eta).sum(axis=1, keepdims=True)
    p = phi - (w * phi).sum(axis=1, keepdims=True)
    s_ee, s_pp, s_ep = (w * e * e).sum(axis=1), (w * p * p).sum(axis=1), (w * e * p).sum(axis=1)
    theta = 0.5 * np.arctan2(2.0 * s_ep, s_ee - s_pp)
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    along, across = cos * e + sin * p, cos * p - sin * e
    along = along * np.where((w * along**3).sum(axis=1) < 0.0, -1.0, 1.0)[:, None]
    across = across * np.where((w * across**3).sum(axis=1) < 0.0, -1.0, 1.0)[:, None]
    out = np.zeros_like(c)
    out[..., 0] = pt
    out[..., 1] = np.where(present, along, 0.0)
    out[..., 2] = np.where(present, across, 0.0)
    return out


def jet_images(
    constituents: np.ndarray,
    n_pixels: int = 32,
    extent: float = 0.8,
    *,
    align: bool = False,
    angle_scale: np.ndarray | None = None,
) -> np.ndarray:
    """float32 ``(N, n_pixels, n_pixels, 1)`` images from ``(N, C, 3)`` constituents.

    ``constituents`` has the layout of :class:`hepfpga.train.jets.JetSample`:
    ``(pT / jet pT, eta - jet eta, delta phi)`` per constituent; ``align``: in each jet's own
    frame (:func:`align_constituents`); ``angle_scale``: ``(N,)`` positive factors multiplying
    each jet's angles before binning (float64 products). See the module docstring.
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
    if align:
        constituents = align_constituents(constituents)
    if angle_scale is not None:
        factor = np.asarray(angle_scale, dtype=np.float64)
        if factor.shape != (constituents.shape[0],):
            raise DataError(
                f"angle_scale: expected one factor per jet, shape ({constituents.shape[0]},); "
                f"got shape {factor.shape}"
            )
        bad = int(np.sum(~(np.isfinite(factor) & (factor > 0))))
        if bad:
            raise DataError(
                f"angle_scale: {bad} of {factor.shape[0]} jets have a factor that is not "
                "positive and finite (a jet pT of 0?); accepted: positive, finite factors"
            )
        constituents = np.array(constituents, dtype=np.float64)
        constituents[..., 1:] *= factor[:, None, None]
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
