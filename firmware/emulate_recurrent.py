"""LSTM and GRU for the fixed-point engine, step for step as hls4ml 1.3.0's ``nnet_recurrent.h``.

hls4ml's Vivado/Vitis ``lstm_stack``/``gru_stack`` (``io_parallel``) run the cell once per time
step, the state starting at zero. With ``accum_t``, ``res_T`` (the layer's result type, which
also holds the state) and the two activation tables of the layer (``table_t``,
``table_size``; :mod:`hepfpga.firmware.emulate_tables`), one step is:

* two dense products in ``dense_latency``'s arithmetic, into ``accum_t``: the input ``x_t``
  with the kernel and bias, the previous output ``h`` with the recurrent kernel and recurrent
  bias; ``acc = (accum_t) b``, then for every input in order
  ``acc = (accum_t)(acc + (accum_t)(x_i * w_i))``;
* LSTM (Keras gate order i, f, c, o): ``g = (accum_t)(Wx + Wh)`` per gate; ``i, f, o`` from the
  recurrent activation's table, ``c~`` from the activation's table (both ``accum_t``);
  ``s = (res_T)(c~ * i + s * f)``; ``h = (res_T)(o * (accum_t) tanh_table(s))``;
* GRU (``reset_after=True``; Keras order z, r, h): ``z, r`` from the recurrent table of
  ``(accum_t)(Wx + Wh)``; ``n = (accum_t)(r * Wh_h)``; ``h~`` from the table of
  ``(accum_t)(Wx_h + n)``; ``h = (res_T)(h~ * (1 - z) + h * z)``.

Products and sums between conversions are exact ``ap_fixed`` arithmetic, reproduced with
raw integer codes in float64 (the plan checks every magnitude stays below ``2**50``). A sum
that may saturate part-way is added input by input in hls4ml's order; a wrapping one is
wrapped once (modular sums do not depend on the order). ``return_sequences`` gives ``h`` of
every step, otherwise the last one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.firmware.emulate_engine.steps import product_kind
from hepfpga.firmware.emulate_engine.types import (
    Context,
    Convert,
    Interval,
    Step,
    UnsupportedLayerError,
    input_of,
    layer_type,
    out_shape,
    plan_convert,
    quantize_to_raw,
    raw_range,
    result_type,
    written_weights,
)
from hepfpga.firmware.emulate_tables import LookupTable, lookup_table
from hepfpga.quantize.fixed import FixedType, Saturation

__all__ = ["RecurrentStep", "recurrent_step"]

#: largest raw magnitude of any intermediate value (float64 holds integers exactly below 2**53)
_LIMIT = 2.0**50
_BACKENDS = ("Vivado", "Vitis")


class _Dense:
    """``nnet::dense<data_T, accum_t>`` with dense_latency's conversions and summation order."""

    def __init__(
        self,
        where: str,
        x_type: FixedType,
        x_interval: Interval,
        weight: np.ndarray,
        weight_t: FixedType,
        bias: np.ndarray,
        bias_t: FixedType,
        accum_t: FixedType,
        latency: bool,
    ) -> None:
        w = quantize_to_raw(weight, weight_t)  # (n_in, n_out)
        b = quantize_to_raw(bias.reshape(-1), bias_t)
        self.bias_convert, _, _ = plan_convert(
            bias_t.fractional, Interval(float(b.min()), float(b.max())), accum_t
        )
        self.bias = self.bias_convert(b.copy())
        product_frac = x_type.fractional + weight_t.fractional
        corners = [x_interval.lo * w, x_interval.hi * w]
        lo = np.minimum(*corners)
        hi = np.maximum(*corners)
        if max(float(np.abs(lo).max(initial=0)), float(np.abs(hi).max(initial=0))) >= _LIMIT:
            raise UnsupportedLayerError(f"{where}: products exceed 50 bits")
        self.product, _, _ = plan_convert(
            product_frac, Interval(float(lo.min(initial=0)), float(hi.max(initial=0))), accum_t
        )
        # bounds of every product after its conversion, per weight
        scale = self.product.scale
        term_lo = np.floor(lo * scale) - 1
        term_hi = np.ceil(hi * scale) + 1
        acc_lo, acc_hi = raw_range(accum_t)
        term_lo = np.maximum(term_lo, acc_lo)
        term_hi = np.minimum(term_hi, acc_hi)
        reach = float((np.abs(self.bias) + np.maximum(-term_lo, term_hi).sum(axis=0)).max())
        self.exact_products = self.product.rounding is None and self.product.saturation is None
        self.fits = reach <= min(-acc_lo, acc_hi)
        if not self.fits and accum_t.saturation is not Saturation.WRAP and not latency:
            raise UnsupportedLayerError(
                f"{where}: accum_t {accum_t} may saturate part-way through a sum whose order "
                "(resource strategy) is not reproduced"
            )
        self.wrap = accum_t.saturation is Saturation.WRAP
        self.accum = Convert(1.0, None, accum_t.saturation, acc_lo, acc_hi, accum_t.width)
        if accum_t.saturation is Saturation.SAT_SYM and accum_t.signed:
            self.accum.lo = -acc_hi
        w = w * scale if self.exact_products else w
        self.max_magnitude = max(reach, float(np.abs(w).max(initial=0)) * x_interval.magnitude)
        # float32 (half the memory traffic) where every integer involved is below 2**22
        self.dtype = np.float32 if self.max_magnitude < 2.0**22 else np.float64
        self.w = w.astype(self.dtype)
        self.bias = self.bias.astype(self.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Raw ``accum_t`` codes of ``W x + b`` for the raw codes ``x`` (events, n_in)."""
        return self._sum(x.astype(self.dtype)).astype(np.float64, copy=False)

    def _sum(self, x: np.ndarray) -> np.ndarray:
        if self.exact_products and (self.fits or self.wrap):
            acc = x @ self.w + self.bias
            return acc if self.fits else self.accum(acc)
        products = self.product(x[:, :, None] * self.w[None, :, :])
        if self.fits or self.wrap:
            acc = products.sum(axis=1) + self.bias
            return acc if self.fits else self.accum(acc)
        # dense_latency's order, input by input, saturating each partial sum. Every partial
        # sum lies between the bias plus the negative and the bias plus the positive terms:
        # where both stay in accum_t's range nothing saturates and this is the plain sum;
        # only the other (event, output) pairs are added again one input at a time
        acc = products.sum(axis=1) + self.bias
        high = np.maximum(products, 0).sum(axis=1) + self.bias
        low = acc - high + self.bias  # the bias plus the negative terms
        unsafe = (high > self.accum.hi) | (low < self.accum.lo)
        if unsafe.any():
            rows, cols = np.nonzero(unsafe)
            total = self.bias[cols].copy()
            for i in range(products.shape[1]):
                total = self.accum(total + products[rows, i, cols])
            acc[rows, cols] = total
        return acc


class _Activation:
    """``nnet::activation::<name><data_T, accum_t>``: a table (sigmoid, tanh) converted to
    ``accum_t`` once, or relu."""

    def __init__(
        self, where: str, name: str, data_t: FixedType, layer: Any, accum_t: FixedType
    ) -> None:
        self.name = name
        self.frac = data_t.fractional
        self.table: LookupTable | None = None
        if name in ("sigmoid", "tanh"):
            size = int(layer.get_attr("table_size", 1024))
            self.table = lookup_table(name, size, layer_type(layer, "table_t"), where)
            self.table.check_input(data_t, where)
            entries = self.table.entries
            convert, _, _ = plan_convert(
                self.table.table_t.fractional,
                Interval(float(entries.min()), float(entries.max())),
                accum_t,
            )
            self.values = convert(entries.astype(np.float64, copy=True))
        elif name == "relu":
            self.convert, _, _ = plan_convert(
                data_t.fractional, Interval(0.0, raw_range(data_t)[1]), accum_t
            )
        else:
            raise UnsupportedLayerError(
                f"{where}: recurrent activation '{name}'; reproduced: sigmoid, tanh, relu"
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.table is not None:
            return self.values[self.table.address(x, self.frac)]
        return self.convert(np.maximum(x, 0.0))


def _to(frac: int, t: FixedType) -> Convert:
    """``(t) value`` for exact values at ``frac`` fractional bits (full range assumed)."""
    convert, _, _ = plan_convert(frac, Interval(-_LIMIT, _LIMIT), t)
    return convert


class RecurrentStep(Step):
    """hls4ml's LSTM or GRU over all time steps (see the module docstring)."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        where = f"layer '{layer.name}'"
        backend = str(layer.model.config.backend.name)
        if backend not in _BACKENDS:
            raise UnsupportedLayerError(f"{where}: {backend}'s recurrent layers")
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.kind = layer.class_name
        if layer.get_attr("direction", "forward") != "forward" or layer.get_attr("return_state"):
            raise UnsupportedLayerError(f"{where}: backward or state-returning recurrence")
        if layer.get_attr("pytorch", False):
            raise UnsupportedLayerError(f"{where}: PyTorch gate order")
        if self.kind == "GRU" and layer.get_attr("apply_reset_gate", "after") != "after":
            raise UnsupportedLayerError(f"{where}: GRU with reset_after=False")
        if product_kind(layer) != "mult":
            raise UnsupportedLayerError(f"{where}: non-multiplying weight product")
        if len(in_shape) != 2:
            raise UnsupportedLayerError(f"{where}: input of shape {in_shape}")
        self.n_steps, n_in = in_shape
        self.return_sequences = bool(layer.get_attr("return_sequences", False))
        accum_t = layer_type(layer, "accum_t")
        res_t = result_type(layer)
        self.out_type = res_t
        self.accum_t, self.res_t = accum_t, res_t
        gates = 4 if self.kind == "LSTM" else 3
        kernel = written_weights(layer, "weight")
        recurrent = written_weights(layer, "recurrent_weight")
        self.units = recurrent.shape[0]
        if kernel.shape != (n_in, gates * self.units) or recurrent.shape[1] != gates * self.units:
            raise UnsupportedLayerError(f"{where}: weights of shape {kernel.shape}")
        latency = str(layer.get_attr("strategy", "latency")).lower() == "latency"
        self.dense_x = _Dense(
            where,
            in_type,
            interval,
            kernel,
            layer_type(layer, "weight_t"),
            written_weights(layer, "bias"),
            layer_type(layer, "bias_t"),
            accum_t,
            latency,
        )
        self.dense_h = _Dense(
            where,
            res_t,
            Interval(*raw_range(res_t)),
            recurrent,
            layer_type(layer, "recurrent_weight_t"),
            written_weights(layer, "recurrent_bias"),
            layer_type(layer, "recurrent_bias_t"),
            accum_t,
            latency,
        )
        fa, fr = accum_t.fractional, res_t.fractional
        self.recurrent_act = _Activation(
            where, str(layer.get_attr("recurrent_activation")).lower(), accum_t, layer, accum_t
        )
        self.act = _Activation(
            where, str(layer.get_attr("activation")).lower(), accum_t, layer, accum_t
        )
        # (accum_t)(a + b) of two accum_t values: same fractional bits, range only
        self.to_accum = _to(fa, accum_t)
        # products of two accum_t values, and of the state with one: one common grid
        self.frac = max(2 * fa, fr + fa)
        self.scale_aa = 2.0 ** (self.frac - 2 * fa)
        self.scale_ra = 2.0 ** (self.frac - fr - fa)
        self.to_res = _to(self.frac, res_t)
        self.product_to_accum = _to(2 * fa, accum_t)
        if self.kind == "LSTM":
            self.state_act = _Activation(
                where, str(layer.get_attr("activation")).lower(), res_t, layer, accum_t
            )
        self.one = 2.0**fa  # the raw code of 1 at accum_t's fractional bits
        acc_mag = Interval(*raw_range(accum_t)).magnitude
        res_mag = Interval(*raw_range(res_t)).magnitude
        widest = 2 * max(acc_mag, res_mag) * 2.0 ** abs(self.frac - 2 * fa) * 4
        self.max_magnitude = max(
            self.dense_x.max_magnitude, self.dense_h.max_magnitude, widest, interval.magnitude
        )
        if self.max_magnitude >= _LIMIT:
            raise UnsupportedLayerError(f"{where}: intermediate values exceed 50 bits")
        self.out_interval = Interval(*raw_range(res_t))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, self.n_steps, -1).astype(np.float64)
        h = np.zeros((n, self.units))
        s = np.zeros((n, self.units))
        outputs = []
        cell = self._lstm if self.kind == "LSTM" else self._gru
        for t in range(self.n_steps):
            h, s = cell(x[:, t, :], h, s)
            if self.return_sequences:
                outputs.append(h)
        out = np.stack(outputs, axis=1) if self.return_sequences else h
        return out.astype(self.dtype, copy=False).reshape(n, *self.shape)

    def _lstm(self, x: np.ndarray, h: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = self.units
        gates = self.to_accum(self.dense_x(x) + self.dense_h(h))
        ifo = self.recurrent_act(np.concatenate([gates[:, : 2 * u], gates[:, 3 * u :]], axis=1))
        c = self.act(gates[:, 2 * u : 3 * u])
        i, f, o = ifo[:, :u], ifo[:, u : 2 * u], ifo[:, 2 * u :]
        s = self.to_res(c * i * self.scale_aa + s * f * self.scale_ra)
        h = self.to_res(o * self.state_act(s) * self.scale_aa)
        return h, s

    def _gru(self, x: np.ndarray, h: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = self.units
        wx = self.dense_x(x)
        wh = self.dense_h(h)
        zr = self.recurrent_act(self.to_accum(wx[:, : 2 * u] + wh[:, : 2 * u]))
        z, r = zr[:, :u], zr[:, u:]
        reset = self.product_to_accum(r * wh[:, 2 * u :])
        candidate = self.act(self.to_accum(wx[:, 2 * u :] + reset))
        mixed = candidate * (self.one - z) * self.scale_aa + h * z * self.scale_ra
        return self.to_res(mixed), s


def recurrent_step(layer: Any, ctx: Context) -> Step:
    return RecurrentStep(layer, ctx)
