"""SimpleRNN: hls4ml 1.3 implements it in the Quartus backend only (``nnet::simple_rnn``).

The Vivado/Vitis backends have no SimpleRNN template, so hepfpga converts a SimpleRNN with
``--backend Quartus`` (whose C simulation compiles with g++) and refuses it elsewhere, naming
Quartus and the LSTM/GRU alternative. Types follow the recurrent layers
(:mod:`~hepfpga.firmware.layers.recurrent`): the state, result and accumulator in the input's
type (the template feeds the state back through the input's type), weights covering their
values, a 4096-entry tanh table: **approximate**, measured by ``hepfpga verify``.

``QSimpleRNN`` stays refused: QKeras 0.9.0's ``QSimpleRNNCell`` needs the TensorFlow 2.14
shim :func:`hepfpga.quantize.qat.qkeras_compat` even to run, and hls4ml 1.3 ignores its
quantizers; a quantized recurrent layer is QLSTM/QGRU (Vitis/Vivado).
"""

from __future__ import annotations

from hepfpga.firmware.layers._base import LayerHandler, register
from hepfpga.firmware.layers.recurrent import QKERAS_BOUND, TABLE_SIZE, _multiplications, _recurrent

register(
    LayerHandler(
        family="recurrent",
        classes=("SimpleRNN",),
        derive=_recurrent,
        exactness="Quartus only (hls4ml 1.3 has no Vivado/Vitis SimpleRNN): state and output "
        "in the input's type, covering weight types, 4096-entry tanh table: approximate "
        "(measured)",
        emulator="C simulation (recurrent layers are not in the engine)",
        exact=lambda layer: False,
        settings=lambda layer: {"TableSize": TABLE_SIZE},
        bound=QKERAS_BOUND,
        bound_reason="table-based tanh",
        multiplications=_multiplications,
        backends=("Quartus",),
        backends_hint="LSTM/GRU (Vitis, Vivado)",
    )
)
