"""Vectorised fixed-point engine behind :mod:`hepfpga.firmware.emulate`.

An hls4ml ``ModelGraph`` is turned into a list of *steps*, plain numpy objects (picklable, no
hls4ml inside) that reproduce the C simulation's ``ap_fixed`` arithmetic for many events at
once. Each tensor travels as its **raw integer codes** (the value times ``2**fractional`` of its
type) in a float array, so every product and sum is an integer computation:

* float arithmetic on integers is exact while every intermediate magnitude stays below the
  significand (``2**24`` for float32, ``2**53`` for float64). The plan tracks an interval of
  raw codes for every tensor (from the input type's range and the weights) and picks float32
  only when every bound is below ``2**22``, float64 when below ``2**50``; otherwise the layer
  is refused and the emulator falls back to the C simulation.
* a conversion to a type (``res = (res_T) acc`` in hls4ml's C++) is a scaling by a power of
  two, the type's rounding mode on the exact scaled value, then its overflow mode on the raw
  range; steps whose interval proves them no-ops are skipped.
* a Dense or Conv layer is ``acc = (accum_t) bias + sum((accum_t) (x * w))``. With products
  exact in ``accum_t`` (its fractional bits cover input + weight) and either no possible
  overflow of ``accum_t`` or a wrapping ``accum_t`` (modular sums do not depend on the order),
  this is one matrix product; otherwise every product is converted on its own.
* the table-based softmax (``stable`` and ``latency``) is rebuilt with the same tables: entries
  are computed in float32 with the C library's own ``expf`` (through ctypes), as hls4ml's
  ``init_exp_table`` does, and addressed by the top bits of the same fixed-point values; the
  sum uses hls4ml's balanced adder tree in ``accum_t``.

``io_stream`` graphs (the layers hls4ml inserts: zero padding, ``Clone``, ``Repack``),
average pooling and depthwise/separable convolutions are reproduced by the steps of
:mod:`hepfpga.firmware.emulate_stream`. Anything else (table activations, io_stream's
``Broadcast``, binary/ternary/power-of-two products...) raises :class:`UnsupportedLayerError`
with the reason, which :class:`~hepfpga.firmware.emulate.Emulator` turns into a loud fallback
to the C simulation.

The engine is four modules:

* :mod:`~hepfpga.firmware.emulate_engine.types`: raw codes, intervals, conversions, the
  :class:`~hepfpga.firmware.emulate_engine.types.Step` protocol and the build context;
* :mod:`~hepfpga.firmware.emulate_engine.steps`: the steps of io_parallel layers (matrix
  products, batch normalization, max pooling, moves, merges, conversions);
* :mod:`~hepfpga.firmware.emulate_engine.softmax`: hls4ml's table softmax;
* :mod:`~hepfpga.firmware.emulate_engine.plan`: the walk of the graph into a runnable
  :class:`~hepfpga.firmware.emulate_engine.plan.Plan`, dispatching on tables derived from the
  registered layer handlers (:class:`~hepfpga.firmware.layers.LayerHandler`'s ``emulation``).

Steps of io_stream, table activations and recurrent layers are in the sibling modules
:mod:`~hepfpga.firmware.emulate_stream`, :mod:`~hepfpga.firmware.emulate_tables` and
:mod:`~hepfpga.firmware.emulate_recurrent`. A layer family names its steps on its handler, so
this package imports no step module by name.
"""
