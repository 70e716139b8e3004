"""The walk of a converted hls4ml ``ModelGraph`` into a runnable :class:`Plan`.

The steps are found by hls4ml layer class in tables derived from the registered layer
handlers (:func:`engine_tables`: each family names its steps, parallel and stream, its
activation steps and its parametrised-activation steps on ``LayerHandler.emulation``), plus
the graph's own ``Input`` and io_stream's ``Clone``, which belong to no layer family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.firmware.emulate_engine.steps import ConvertStep, MatmulStep
from hepfpga.firmware.emulate_engine.types import (
    Context,
    Convert,
    Interval,
    Step,
    StepBuilder,
    UnsupportedLayerError,
    out_shape,
    raw_range,
    result_type,
    saturation_range,
)
from hepfpga.firmware.emulate_stream import clone_steps
from hepfpga.firmware.layers import registered_handlers
from hepfpga.firmware.layers.graph import SPLIT_OUTPUT_SUFFIXES
from hepfpga.quantize.fixed import FixedType
from hepfpga.registry import Registry

__all__ = [
    "EngineTables",
    "Plan",
    "PlanInput",
    "UnsupportedLayerError",
    "build_plan",
    "engine_tables",
]

#: largest raw magnitude allowed anywhere, per float dtype (margin below the significand, so
#: that ``floor(s + 0.5)`` and the scalings of the rounding step stay exact too)
_DTYPE_LIMITS = ((np.float32, 2.0**22), (np.float64, 2.0**50))
#: hls4ml IOTypes reproduced (io_stream's own layers and kernels: emulate_stream)
IO_TYPES = ("io_parallel", "io_stream")

#: hls4ml layers that belong to no layer family: io_stream's ``Clone`` (a tensor read by
#: several layers is copied once per reader)
GRAPH_STEPS: Registry[StepBuilder] = Registry("graph step", {"Clone": clone_steps})


@dataclass(frozen=True)
class EngineTables:
    """The engine's dispatch tables, derived from the registered layer handlers."""

    #: hls4ml layer class -> step builder
    steps: Registry[StepBuilder]
    #: activation name of an hls4ml ``Activation`` layer -> step builder
    activations: Registry[StepBuilder]
    #: activation name of an hls4ml ``ParametrizedActivation`` layer -> step builder
    parametrised: Registry[StepBuilder]


def _merge(table: Registry[StepBuilder], name: str, builder: StepBuilder, family: str) -> None:
    # families may share a builder (the recurrent handlers, max and average pooling)
    if table.get(name, builder) is not builder:
        raise ValueError(f"{table.what} {name!r} has two builders (the second: {family})")
    table.setdefault(name, builder)


def engine_tables() -> EngineTables:
    """The tables of every registered layer family (read at each :func:`build_plan`, so a
    family registered later, e.g. from a test module, is dispatched too)."""
    tables = EngineTables(
        Registry("emulator step"), Registry("activation step"), Registry("parametrised step")
    )
    for name, builder in GRAPH_STEPS.items():
        tables.steps.register(name, builder)
    for handler in {id(h): h for h in registered_handlers().values()}.values():
        emulation = handler.emulation
        for name, builder in {**emulation.steps, **emulation.stream_steps}.items():
            _merge(tables.steps, name, builder, handler.family)
        for name, builder in emulation.activations.items():
            _merge(tables.activations, name, builder, handler.family)
        for name, builder in emulation.parametrised.items():
            _merge(tables.parametrised, name, builder, handler.family)
    return tables


@dataclass(frozen=True)
class PlanInput:
    """One input of the model: the tensor the steps read, its type and shape per event."""

    tensor: str
    type: FixedType
    shape: tuple[int, ...]
    #: the model's name for it (the hls4ml input layer)
    name: str = "input"


@dataclass
class Plan:
    """The steps of one model, runnable on raw codes without hls4ml."""

    #: the type and shape of the first input (``inputs`` has every one)
    input_type: FixedType
    input_shape: tuple[int, ...]
    steps: list[Step]
    #: the first output tensor (``outputs`` has every one)
    output: str
    dtype: Any
    #: layer name -> output tensor name, for reading intermediate results (the logits)
    layer_outputs: dict[str, str]
    inputs: tuple[PlanInput, ...] = ()
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.inputs:
            self.inputs = (PlanInput("__input__", self.input_type, self.input_shape),)
        if not self.outputs:
            self.outputs = (self.output,)

    def run(self, x: Any, keep: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Raw outputs of the model (keys ``outputs``) and of the layers named in ``keep``.

        ``x``: one array, or a list of one array per input (``inputs``' order); float32 (as
        the C simulation sees it) and finite.
        """
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(arrays) != len(self.inputs):
            raise ValueError(f"the plan has {len(self.inputs)} inputs, got {len(arrays)} arrays")
        tensors: dict[str, np.ndarray] = {}
        for spec, array in zip(self.inputs, arrays, strict=True):
            t = spec.type
            raw = np.asarray(array, dtype=np.float64) * 2.0**t.fractional
            # the input type's rounding, then its overflow mode (AP_SAT_SYM: symmetric range)
            lo, hi = saturation_range(t)
            raw = Convert(1.0, t.rounding, t.saturation, lo, hi, t.width)(raw)
            tensors[spec.tensor] = raw.astype(self.dtype).reshape(len(raw), *spec.shape)
        wanted = {self.layer_outputs[name]: name for name in keep}
        kept: dict[str, np.ndarray] = {}
        users = dict(self.users)
        for step in self.steps:
            args = []
            for name in step.inputs:
                users[name] -= 1
                # steps overwrite their input: hand over the tensor on its last use only
                args.append(tensors[name] if users[name] == 0 else tensors[name].copy())
                if users[name] == 0:
                    del tensors[name]
            result = step(*(a if a.dtype == step.dtype else a.astype(step.dtype) for a in args))
            tensors[step.output] = result
            if step.output in wanted:
                kept[step.output] = (
                    result / step.output_scale if step.output_scale != 1.0 else (result.copy())
                )
        for output in self.outputs:
            kept[output] = tensors[output]
        return kept

    @property
    def users(self) -> dict[str, int]:
        count: dict[str, int] = {}
        for output in self.outputs:
            count[output] = count.get(output, 0) + 1
        for step in self.steps:
            for name in step.inputs:
                count[name] = count.get(name, 0) + 1
        return count

    def width_of(self, tensor: str) -> int:
        """Numbers per event of a tensor."""
        for step in self.steps:
            if step.output == tensor:
                return int(math.prod(step.shape))
        raise KeyError(tensor)

    def type_of(self, tensor: str) -> FixedType:
        for step in self.steps:
            if step.output == tensor:
                return step.out_type
        raise KeyError(tensor)


def _dtype_for(magnitude: float, where: str) -> Any:
    for dtype, limit in _DTYPE_LIMITS:
        if magnitude < limit:
            return dtype
    raise UnsupportedLayerError(
        f"layer '{where}': intermediate values need {math.log2(magnitude):.0f} bits, more "
        "than a float64 significand holds exactly"
    )


def _fold_scales(steps: list[Step], outputs: tuple[str, ...]) -> None:
    """Fold the power-of-two scaling of a conversion into the matrix product before it.

    ``(res_T) acc`` scales ``acc``'s raw codes by ``2**(f_res - f_acc)`` before rounding; when
    the product's own result conversion is a no-op and the conversion is its only consumer,
    the weights and bias can carry that factor (exact: powers of two), saving a pass.
    """
    consumers: dict[str, list[Step]] = {}
    for step in steps:
        for name in step.inputs:
            consumers.setdefault(name, []).append(step)
    for step in steps:
        if not isinstance(step, MatmulStep) or step.output in outputs:
            continue
        after = consumers.get(step.output, [])
        if step.accum_wrap is not None or not step.result.is_identity or len(after) != 1:
            continue
        (convert_step,) = after
        if not isinstance(convert_step, ConvertStep) or convert_step.convert.scale == 1.0:
            continue
        factor = convert_step.convert.scale
        step.w = step.w * factor
        step.b = step.b * factor
        step.output_scale = factor
        convert_step.convert.scale = 1.0


def build_plan(hls_model: Any) -> Plan:
    """Walk an hls4ml ``ModelGraph`` (after conversion) into a :class:`Plan`.

    Raises :class:`UnsupportedLayerError` naming the first layer or type that cannot be reproduced.
    """
    tables = engine_tables()
    io_type = hls_model.config.get_config_value("IOType")
    if io_type not in IO_TYPES:
        raise UnsupportedLayerError(f"{io_type} (reproduced: {', '.join(IO_TYPES)})")
    layers = list(hls_model.get_layers())
    if not layers or layers[0].class_name != "Input":
        first = layers[0] if layers else None
        raise UnsupportedLayerError(
            f"the first layer '{getattr(first, 'name', None)}' is "
            f"{getattr(first, 'class_name', None)}, not Input"
        )
    ctx = Context(
        types={},
        intervals={},
        shapes={},
        activations=tables.activations,
        parametrised=tables.parametrised,
    )
    steps: list[Step] = []
    layer_outputs: dict[str, str] = {}
    inputs: list[PlanInput] = []
    for layer in layers:
        if layer.class_name == "Input":
            # the graph's input tensors: the first is "__input__", the others "__input<k>__"
            input_type = result_type(layer)
            if input_type.width > 50:
                raise UnsupportedLayerError(f"input type {input_type} is wider than 50 bits")
            tensor = layer.outputs[0]
            ctx.types[tensor] = input_type
            ctx.intervals[tensor] = Interval(*raw_range(input_type))
            ctx.shapes[tensor] = out_shape(layer)
            layer_outputs[layer.name] = tensor
            name = "__input__" if not inputs else f"__input{len(inputs)}__"
            inputs.append(PlanInput(name, input_type, out_shape(layer), layer.name))
            continue
        builder = tables.steps.get(layer.class_name)
        if builder is None:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' ({layer.class_name}); reproduced: "
                f"{', '.join(sorted(tables.steps))}"
            )
        built = builder(layer, ctx)
        # a builder returns one step per output of the layer (io_stream's Clone has several)
        layer_steps = built if isinstance(built, list) else [built]
        if len(layer_steps) != len(layer.outputs):
            raise UnsupportedLayerError(f"layer '{layer.name}' has {len(layer.outputs)} outputs")
        for step in layer_steps:
            steps.append(step)
            ctx.types[step.output] = step.out_type
            ctx.intervals[step.output] = step.out_interval
            ctx.shapes[step.output] = step.shape
        layer_outputs[layer.name] = layer_steps[0].output
        # a layer hls4ml split is read under its Keras name from the part writing its output
        for suffix in SPLIT_OUTPUT_SUFFIXES:
            if layer.name.endswith(suffix):
                layer_outputs.setdefault(layer.name[: -len(suffix)], layer_steps[0].output)
    tensor_of = {layer_outputs[spec.name]: spec.tensor for spec in inputs}
    # in the model's input order (the C simulation's argument order)
    order = [str(name) for name in getattr(hls_model, "inputs", [])]
    if sorted(order) == sorted(tensor_of):
        rank = {name: k for k, name in enumerate(order)}
        inputs.sort(key=lambda spec: rank[layer_outputs[spec.name]])
        # the first input keeps the name "__input__"
        renamed = {
            layer_outputs[spec.name]: "__input__" if k == 0 else f"__input{k}__"
            for k, spec in enumerate(inputs)
        }
        inputs = [
            PlanInput(renamed[layer_outputs[spec.name]], spec.type, spec.shape, spec.name)
            for spec in inputs
        ]
        tensor_of = renamed
    input_magnitude = max(Interval(*raw_range(spec.type)).magnitude for spec in inputs)
    for step in steps:
        step.dtype = _dtype_for(step.max_magnitude, step.name)
    dtype = steps[0].dtype if steps else _dtype_for(input_magnitude, layers[0].name)
    outputs = tuple(str(name) for name in hls_model.outputs)
    _fold_scales(steps, outputs)
    for step in steps:
        step.prepare(step.dtype)
        step.inputs = tuple(tensor_of.get(n, n) for n in step.inputs)
    written = {step.output for step in steps}
    for output in outputs:
        if output in tensor_of:
            raise UnsupportedLayerError(f"the model output '{output}' is an input")
        if output not in written:
            raise UnsupportedLayerError(f"the model output '{output}' is not written by any layer")
    return Plan(
        inputs[0].type,
        inputs[0].shape,
        steps,
        outputs[0],
        dtype,
        layer_outputs,
        inputs=tuple(inputs),
        outputs=outputs,
    )
