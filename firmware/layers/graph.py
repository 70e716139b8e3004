"""The Keras graph hepfpga converts: one functional form for every model, walked by name.

:func:`ready_model` turns a user's model into the model hls4ml is given (and that every
comparison is made with); it computes the same function, with the same weights:

* tfmot pruning wrappers are stripped (the pruned weights, masks applied);
* a ``keras.Sequential`` model becomes a functional one (its ``InputLayer`` becomes a layer of
  the graph, named as Keras names it, e.g. ``dense_input``);
* a Dense/Conv layer with a built-in activation is split as hls4ml splits it: the layer keeps
  its name with a linear activation and is followed by ``Activation`` (or ``QActivation`` for
  a QKeras quantizer) named ``<name>_<activation>`` (hls4ml's own name for the split layer).
  The pre-activation output is then a layer output of its own, traced in C simulation and
  judged exactly; Keras computes ``activation(x @ w + b)`` in the same two float32 steps;
* an input named ``input`` (reserved by hls4ml) becomes ``input_layer``;
* a layer whose name hls4ml cannot use is renamed (:func:`hls_name`: not a C++ identifier,
  a C++ keyword, or holding one of its weights' names, which hls4ml finds by substring,
  such as ``bias`` in ``bias_layer``; a clash after renaming gets ``_2``), and so is a layer
  inside ``TimeDistributed`` (hls4ml makes it a layer of its graph under its own name);
  :func:`user_names` maps the new names back, and every report shows the user's names
  (:class:`UserNames`, the one place that maps them);
* a nested model (a model used as a layer) is replaced by its layers, as hls4ml 1.3 expands
  it (:func:`flatten_nested`); a model wrapped in ``TimeDistributed`` is replaced by its
  layers, each applied to every time step: ``TimeDistributed(layer)``, a per-element layer
  (activation, quantizer, dropout) applied to the sequence itself, and ``Flatten`` as the
  ``Reshape`` to ``(steps, features)`` (same values, same order). hls4ml would run the whole
  sub-model inside one time-step loop; one loop per layer computes the same function.

:func:`model_graph` lists the layers in topological order with the names of the layers that
feed each one (from the model's own config, the inbound nodes), so multi-input layers (merge
layers), multi-input and multi-output models are walked the same way as chains.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers._base import handler_for
from hepfpga.firmware.pruning import strip_pruning
from hepfpga.quantize.qat import qkeras_custom_objects

__all__ = [
    "SPLIT_OUTPUT_SUFFIXES",
    "GraphNode",
    "UserNames",
    "hls_name",
    "model_graph",
    "ready_model",
    "split_activation_name",
    "user_names",
]

#: hls4ml's names for the part of a split layer that writes the layer's output:
#: ``<name>_linear`` (a linear built-in activation) and ``<name>_pointwise`` (a separable
#: convolution, split into ``<name>_depthwise`` and ``<name>_pointwise``)
SPLIT_OUTPUT_SUFFIXES = ("_linear", "_pointwise")

# hls4ml refuses layers with these names (ModelGraph reserves them).
_RESERVED_NAMES = frozenset({"input"})
#: classes whose built-in ``activation`` hls4ml splits into a layer of its own
SPLIT_ACTIVATION_CLASSES = frozenset(
    {
        "Dense",
        "QDense",
        "Conv1D",
        "Conv2D",
        "QConv1D",
        "QConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
        "QSeparableConv1D",
        "QSeparableConv2D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "QDepthwiseConv2D",
    }
)


@dataclass(frozen=True)
class GraphNode:
    """One layer of the functional graph and the layers that feed it."""

    name: str
    class_name: str
    layer: Any
    #: names of the layers feeding this one, in the order of the layer's inputs
    inputs: tuple[str, ...]


def _activation_of(config: dict[str, Any]) -> Any:
    activation = config.get("activation")
    if activation in (None, "linear"):
        return None
    if isinstance(activation, dict) and activation.get("class_name") == "linear":
        return None
    return activation


def split_activation_name(layer_name: str, activation: Any) -> str:
    """hls4ml's name of the layer split off ``layer_name``'s built-in ``activation``."""
    if isinstance(activation, dict):
        return f"{layer_name}_{activation.get('class_name')}"
    return f"{layer_name}_{str(activation).split('(')[0]}"


def _functional(model: Any) -> tuple[Any, dict[str, Any]]:
    """``model`` as a functional model (a Sequential one is wrapped) and its config."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    if getattr(model, "inputs", None) is None or getattr(model, "outputs", None) is None:
        raise ConversionError(
            f"model '{model.name}' has no defined inputs (a Sequential model built without an "
            "input shape); give its first layer input_shape=... or start it with keras.Input"
        )
    if type(model).__name__ == "Sequential" or not getattr(model, "_is_graph_network", True):
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    config = model.get_config()
    if any(entry["class_name"] in _MODEL_CLASSES for entry in config["layers"]):
        model = flatten_nested(model)
        config = model.get_config()
    return model, config


#: Keras classes of a model used as a layer
_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
#: layers that act on each value alone: the same function on a sequence as on each time step
_PER_ELEMENT_CLASSES = frozenset(
    {"Activation", "QActivation", "Dropout", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU"}
)


def _distributed_model(layer: Any) -> bool:
    """Whether ``layer`` is a ``TimeDistributed`` around a whole model."""
    return (
        type(layer).__name__ == "TimeDistributed" and type(layer.layer).__name__ in _MODEL_CLASSES
    )


def _per_step(layer: Any, sequence: Any, wrapper: str, taken: set[str]) -> Any:
    """``layer`` (of a model wrapped in TimeDistributed ``wrapper``) as a layer applied to
    every time step of ``sequence``: itself for a per-element layer, a ``Reshape`` to
    ``(steps, features)`` for ``Flatten``, else ``TimeDistributed(layer)`` named
    ``<wrapper>_<layer>``."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    kind = type(layer).__name__
    if kind == "TimeDistributed":
        raise ConversionError(
            f"layer '{layer.name}' (TimeDistributed) is inside TimeDistributed '{wrapper}'; "
            "hls4ml 1.3 does not convert nested TimeDistributed: wrap the inner model once"
        )
    if kind in _PER_ELEMENT_CLASSES:
        return layer
    if kind == "Flatten":
        shape = [int(d) for d in sequence.shape[1:]]
        return keras.layers.Reshape((shape[0], int(np.prod(shape[1:]))), name=layer.name)
    return keras.layers.TimeDistributed(layer, name=_free_name(f"{wrapper}_{layer.name}", taken))


def flatten_nested(model: Any) -> Any:
    """``model`` with every nested model (a model used as a layer) replaced by its layers, as
    hls4ml 1.3 expands it (``LayerGroup`` -> ``expand_layer_group``): copies of the layers,
    with their names and weights, so the flat model computes the same function. An inner
    layer whose name is taken already is called ``<inner model>_<layer>``.
    """
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    if type(model).__name__ == "Sequential" or not getattr(model, "_is_graph_network", True):
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    taken: set[str] = set()
    inputs = []
    tensors: dict[str, Any] = {}

    def call(layer: Any, args: list[Any], owner: str, wrapper: str | None = None) -> Any:
        # a copy (same config and weights): the flat model's layers are its own, so each
        # layer's .output is its output in the flat graph
        config = layer.get_config()
        if layer.name in taken:
            config["name"] = _free_name(f"{owner}_{layer.name}", taken)
        taken.add(config["name"])
        copy_ = _from_config(layer, config)
        applied = copy_ if wrapper is None else _per_step(copy_, args[0], wrapper, taken)
        out = applied(args if len(args) > 1 else args[0])
        copy_.set_weights(layer.get_weights())
        return out

    def apply(inner: Any, args: list[Any], wrapper: str | None = None) -> list[Any]:
        """The outputs of the nested model ``inner`` applied to ``args``, layer by layer
        (each on every time step when ``inner`` is wrapped in TimeDistributed ``wrapper``)."""
        if type(inner).__name__ == "Sequential" or not getattr(inner, "_is_graph_network", 1):
            inner = keras.Model(inner.inputs, inner.outputs, name=inner.name)
        local = dict(zip(input_names(inner), args, strict=True))
        for entry in inner.get_config()["layers"]:
            name = entry["config"]["name"]
            if entry["class_name"] == "InputLayer":
                continue
            inbound = entry.get("inbound_nodes") or []
            feeding = [_pick(local, item) for item in inbound[0]] if inbound else []
            layer = inner.get_layer(name)
            if _distributed_model(layer) and wrapper is not None:
                raise ConversionError(
                    f"layer '{name}' (TimeDistributed) is inside TimeDistributed "
                    f"'{wrapper}'; hls4ml 1.3 does not convert nested TimeDistributed: "
                    "wrap the inner model once"
                )
            if _distributed_model(layer):
                outs = apply(layer.layer, feeding, name)
            elif entry["class_name"] in _MODEL_CLASSES:
                outs = apply(layer, feeding, wrapper)
            if entry["class_name"] in _MODEL_CLASSES or _distributed_model(layer):
                local[name] = outs[0] if len(outs) == 1 else outs
                continue
            local[name] = call(layer, feeding, inner.name, wrapper)
        return [_pick(local, _history(tensor)) for tensor in inner.outputs]

    for entry in model.get_config()["layers"]:
        name = entry["config"]["name"]
        inbound = entry.get("inbound_nodes") or []
        if entry["class_name"] == "InputLayer":
            config = model.get_layer(name).get_config()
            tensor = keras.Input(
                batch_shape=tuple(config["batch_input_shape"]),
                dtype=config.get("dtype", "float32"),
                name=name,
            )
            taken.add(name)
            inputs.append(tensor)
            tensors[name] = tensor
            continue
        if len(inbound) > 1:
            raise ConversionError(
                f"layer '{name}' is called {len(inbound)} times (a shared layer); hls4ml "
                "converts each layer once: use a separate layer per call"
            )
        feeding = [_pick(tensors, item) for item in inbound[0]] if inbound else []
        layer = model.get_layer(name)
        if entry["class_name"] in _MODEL_CLASSES:
            outs = apply(layer, feeding)
            tensors[name] = outs[0] if len(outs) == 1 else outs
            continue
        if _distributed_model(layer):
            outs = apply(layer.layer, feeding, wrapper=name)
            tensors[name] = outs[0] if len(outs) == 1 else outs
            continue
        tensors[name] = call(layer, feeding, model.name)
    outputs = [_pick(tensors, _history(tensor)) for tensor in model.outputs]
    return keras.Model(
        inputs if len(inputs) > 1 else inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=model.name,
    )


def _has_nested(model: Any) -> bool:
    return any(
        type(layer).__name__ in _MODEL_CLASSES or _distributed_model(layer)
        for layer in model.layers
    )


def _history(tensor: Any) -> tuple[str, int, int]:
    """(layer name, node index, tensor index) of a Keras tensor, as in inbound nodes."""
    layer, node_index, tensor_index = tensor._keras_history
    return layer.name, node_index, tensor_index


def _pick(tensors: dict[str, Any], item: Any) -> Any:
    """The tensor an inbound-node item ``[name, node index, tensor index, ...]`` names."""
    value = tensors[item[0]]
    return value[item[2]] if isinstance(value, list) else value


def _free_name(name: str, taken: set[str]) -> str:
    new, k = name, 0
    while new in taken:
        k += 1
        new = f"{name}_{k}"
    taken.add(new)
    return new


def model_graph(model: Any) -> list[GraphNode]:
    """The layers of ``model`` in topological order, each with the layers feeding it."""
    functional, config = _functional(model)
    nodes = []
    for entry in config["layers"]:
        name = entry["config"]["name"]
        inbound = entry.get("inbound_nodes") or []
        if len(inbound) > 1:
            raise ConversionError(
                f"layer '{name}' is called {len(inbound)} times (a shared layer); hls4ml "
                "converts each layer once: use a separate layer per call"
            )
        inputs = tuple(item[0] for item in inbound[0]) if inbound else ()
        nodes.append(GraphNode(name, entry["class_name"], functional.get_layer(name), inputs))
    return nodes


def _split_activation(layer: Any) -> Any:
    """The built-in activation of ``layer`` that hls4ml would split off (None: none).

    A layer wrapped in ``TimeDistributed`` counts too: hls4ml 1.3 converts the wrapped layer
    without its activation (silently), so hepfpga splits it off the wrapper (an activation
    acts per element, so applying it to the whole sequence is the same function).
    """
    if type(layer).__name__ == "TimeDistributed":
        layer = layer.layer
    if type(layer).__name__ not in SPLIT_ACTIVATION_CLASSES:
        return None
    return _activation_of(layer.get_config())


def _linear_config(layer: Any) -> dict[str, Any]:
    """``layer``'s config with its (or its wrapped layer's) activation made linear."""
    config = layer.get_config()
    target = config["layer"]["config"] if type(layer).__name__ == "TimeDistributed" else config
    target["activation"] = "linear"
    return config


#: C++ keywords: hls4ml names C++ variables (a model input's array) and type names after layers
_CPP_KEYWORDS = frozenset(
    [
        "alignas",
        "alignof",
        "and",
        "and_eq",
        "asm",
        "auto",
        "bitand",
        "bitor",
        "bool",
        "break",
        "case",
        "catch",
        "char",
        "char8_t",
        "char16_t",
        "char32_t",
        "class",
        "compl",
        "concept",
        "const",
        "consteval",
        "constexpr",
        "constinit",
        "const_cast",
        "continue",
        "co_await",
        "co_return",
        "co_yield",
        "decltype",
        "default",
        "delete",
        "do",
        "double",
        "dynamic_cast",
        "else",
        "enum",
        "explicit",
        "export",
        "extern",
        "false",
        "float",
        "for",
        "friend",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "mutable",
        "namespace",
        "new",
        "noexcept",
        "not",
        "not_eq",
        "nullptr",
        "operator",
        "or",
        "or_eq",
        "private",
        "protected",
        "public",
        "register",
        "reinterpret_cast",
        "requires",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "static_assert",
        "static_cast",
        "struct",
        "switch",
        "template",
        "this",
        "thread_local",
        "throw",
        "true",
        "try",
        "typedef",
        "typeid",
        "typename",
        "union",
        "unsigned",
        "using",
        "virtual",
        "void",
        "volatile",
        "wchar_t",
        "while",
        "xor",
        "xor_eq",
    ]
)
#: the ready model -> {hls4ml name: the user's layer name} of the layers it renamed
_USER_NAMES: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def hls_name(name: str, weights: tuple[str, ...] = ()) -> str:
    """``name`` as hls4ml can use it: a C++ identifier (other characters become ``_``, a
    leading digit gets ``layer_`` before it, a C++ keyword ``_layer`` after it) holding none
    of the layer's own weight names (``weights``: ``kernel``, ``bias``, ``gamma``...), which
    hls4ml 1.3 finds by substring in the weights' full names (``bias`` finds the kernel
    ``bias_layer/kernel:0`` first): their first letter is capitalised (``bias_layer`` ->
    ``Bias_layer``). Unchanged when already so."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not safe or safe[0].isdigit():
        safe = f"layer_{safe}"
    for key in sorted(set(weights), key=len, reverse=True):
        safe = safe.replace(key, key[0].upper() + key[1:])
    if safe in _CPP_KEYWORDS:
        safe = f"{safe}_layer"
    return safe


def _weight_names(layer: Any) -> tuple[str, ...]:
    """The short names of a layer's weights (``kernel`` of ``dense/kernel:0``)."""
    return tuple(str(w.name).rsplit("/", 1)[-1].split(":")[0] for w in layer.weights)


def _renames(nodes: list[GraphNode]) -> tuple[dict[str, str], dict[str, str]]:
    """The user's layer name -> its hls4ml name, for the layers :func:`hls_name` changes,
    and the same for the layers inside ``TimeDistributed`` (keyed by the wrapper's name: the
    inner layer's new name); a name taken already (by another layer, inner layer, or renamed
    one) gets ``_2``, ``_3``..."""
    taken = {node.name for node in nodes} | {
        node.layer.layer.name for node in nodes if node.class_name == "TimeDistributed"
    }

    def free(new: str) -> str:
        candidate, k = new, 2
        while candidate in taken:
            candidate, k = f"{new}_{k}", k + 1
        taken.add(candidate)
        return candidate

    renames, inner = {}, {}
    for node in nodes:
        new = hls_name(node.name, _weight_names(node.layer))
        if new != node.name:
            renames[node.name] = free(new)
        if node.class_name == "TimeDistributed":
            wrapped = node.layer.layer
            new = hls_name(wrapped.name, _weight_names(wrapped))
            if new != wrapped.name:
                inner[node.name] = free(new)
    return renames, inner


def user_names(ready: Any) -> dict[str, str]:
    """The layers :func:`ready_model` renamed for hls4ml: {hls4ml name: the user's name}
    (empty when none was, or for None); :class:`UserNames` maps reports back with it."""
    return dict(_USER_NAMES.get(ready, {})) if ready is not None else {}


@dataclass(frozen=True)
class UserNames:
    """The names hls4ml was given, mapped back to the user's (the one place that does it).

    ``renamed`` is :func:`user_names` of the ready model: hls4ml name -> the user's name,
    including the parts hls4ml derives from a renamed layer (``<name>_<activation>`` of a
    split activation, ``<name>_end`` of a ``TimeDistributed`` block). Names not in it are
    the user's already.
    """

    renamed: dict[str, str]

    @classmethod
    def of(cls, ready: Any) -> UserNames:
        """The mapping of the ready model ``ready`` (:func:`ready_model`'s result)."""
        return cls(user_names(ready))

    def __bool__(self) -> bool:
        return bool(self.renamed)

    def name(self, name: str) -> str:
        """The user's name of the hls4ml layer ``name``."""
        return self.renamed.get(name, name)

    def keys(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """``mapping`` (keyed by hls4ml layer names, in its order) keyed by the user's names."""
        return {self.name(k): v for k, v in mapping.items()}

    def text(self, text: str) -> str:
        """``text`` with every quoted hls4ml name (``'name'``, as hepfpga's messages quote
        layers, or ```name``` in Markdown) replaced by the user's name."""
        for new, old in self.renamed.items():
            text = text.replace(f"'{new}'", f"'{old}'").replace(f"`{new}`", f"`{old}`")
        return text


def _input_name(name: str, taken: set[str]) -> str:
    if name not in _RESERVED_NAMES:
        return name
    new, k = f"{name}_layer", 0
    while new in taken:
        k += 1
        new = f"{name}_layer_{k}"
    taken.add(new)
    return new


def ready_model(model: Any) -> Any:
    """The model hls4ml converts: functional, built-in activations split, names hls4ml accepts.

    Returns ``model`` itself when nothing needs changing; otherwise a new model, rebuilt layer
    by layer from copies of the layers (same weights), that computes the same function (see
    the module docstring).
    """
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    model = strip_pruning(model)
    if _has_nested(model):
        model = flatten_nested(model)
    nodes = model_graph(model)
    taken = {node.name for node in nodes}
    for node in nodes:
        if node.name in _RESERVED_NAMES and node.class_name != "InputLayer":
            raise ConversionError(
                f"layer name '{node.name}' is reserved by hls4ml; rename the layer"
            )
    rewrites = {}
    rewritten_weights = {}
    for node in nodes:
        handler = handler_for(node.layer)  # an unsupported layer is refused here, named
        rewrite = handler.rewrite
        replacement = rewrite.layer(node.layer) if rewrite is not None else None
        if rewrite is not None and replacement is not None:
            rewrites[node.name] = replacement
            if rewrite.weights is not None:
                rewritten_weights[node.name] = rewrite.weights(node.layer)
    needs_split = [node.name for node in nodes if _split_activation(node.layer) is not None]
    renamed = any(node.name in _RESERVED_NAMES for node in nodes)
    renames, inner_renames = _renames(nodes)
    taken |= set(renames.values()) | set(inner_renames.values())
    if (
        type(model).__name__ != "Sequential"
        and not needs_split
        and not renamed
        and not rewrites
        and not renames
        and not inner_renames
    ):
        return model
    originals: dict[str, str] = {new: old for old, new in renames.items()}
    tensors: dict[str, Any] = {}
    inputs = []
    for node in nodes:
        layer = node.layer
        if node.class_name == "InputLayer":
            config = layer.get_config()
            tensor = keras.Input(
                batch_shape=tuple(config["batch_input_shape"]),
                dtype=config.get("dtype", "float32"),
                name=_input_name(renames.get(node.name, node.name), taken),
            )
            tensors[node.name] = tensor
            inputs.append(tensor)
            continue
        activation = _split_activation(layer)
        config = _linear_config(layer) if activation is not None else layer.get_config()
        if node.name in inner_renames:
            wrapped = config["layer"]["config"]
            originals[inner_renames[node.name]] = wrapped["name"]
            config["layer"] = {**config["layer"], "config": {**wrapped}}
            config["layer"]["config"]["name"] = inner_renames[node.name]
        copy_ = rewrites.get(node.name) or _from_config(layer, config)
        name = renames.get(node.name, node.name)
        if name != node.name:
            copy_._name = name  # before the layer is called: its weights are named after it
            if node.class_name == "TimeDistributed":  # hls4ml's end marker of the block
                originals[f"{name}_end"] = f"{node.name}_end"
        args = [tensors[name] for name in node.inputs]
        out = copy_(args if len(args) > 1 else args[0])
        if copy_.weights:
            copy_.set_weights(rewritten_weights.get(node.name) or layer.get_weights())
        if activation is not None:
            split = split_activation_name(name, activation)
            if name != node.name:
                originals[split] = split_activation_name(node.name, activation)
            if split in taken:
                raise ConversionError(
                    f"layer '{node.name}' has a built-in activation that hls4ml splits into a "
                    f"layer named '{split}', but the model has a layer of that name already; "
                    "rename it"
                )
            taken.add(split)
            if isinstance(activation, dict) or "(" in str(activation):
                # deferred: TensorFlow loads slowly
                from qkeras import QActivation

                inner = layer.layer if type(layer).__name__ == "TimeDistributed" else layer
                out = QActivation(inner.activation, name=split)(out)
            else:
                out = keras.layers.Activation(activation, name=split)(out)
        tensors[node.name] = out
    outputs = [tensors[name] for name in output_names(model)]
    ready = keras.Model(
        inputs if len(inputs) > 1 else inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=model.name,
    )
    if originals:
        _USER_NAMES[ready] = originals
    return ready


def _from_config(layer: Any, config: dict[str, Any]) -> Any:
    """A new layer of ``layer``'s class from ``config`` (wrappers of QKeras layers need the
    QKeras classes to rebuild the layer they wrap)."""
    if not hasattr(layer, "layer"):
        return type(layer).from_config(config)
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    with keras.utils.custom_object_scope(qkeras_custom_objects()):
        return type(layer).from_config(config)


def input_names(model: Any) -> list[str]:
    """Names of the model's input layers, in input order."""
    return [tensor.node.layer.name for tensor in model.inputs]


def output_names(model: Any) -> list[str]:
    """Names of the layers whose outputs are the model's outputs, in output order."""
    return [tensor.node.layer.name for tensor in model.outputs]


def layer_outputs(
    model: Any, x: Any, names: list[str] | None = None, *, batch_size: int = 1024
) -> dict[str, Any]:
    """The outputs of the layers ``names`` (default: every layer) of ``model`` on ``x``.

    The one probe-model helper: a Keras model with the same inputs whose outputs are the
    requested layers' outputs, run once. ``x`` is the model's input array (or a list, one
    array per input). Input layers map to the events themselves. Values are float32 numpy
    arrays in each layer's own shape. A model with nested models is probed flat (the names of
    :func:`flatten_nested`).
    """
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    inputs = x if isinstance(x, (list, tuple)) else [x]
    arrays = [np.asarray(a, dtype=np.float32) for a in inputs]
    if _has_nested(model):
        # the layers of the flat model (a nested model's .output is that of its own graph)
        model = flatten_nested(model)
    wanted = names if names is not None else [layer.name for layer in model.layers]
    by_input = dict(zip(input_names(model), arrays, strict=True))
    computed = [name for name in wanted if name not in by_input]
    out: dict[str, Any] = {name: by_input[name] for name in wanted if name in by_input}
    if computed:
        tensors = [model.get_layer(name).output for name in computed]
        probe = keras.Model(model.inputs, tensors)
        values = probe.predict(
            arrays if len(arrays) > 1 else arrays[0], verbose=0, batch_size=batch_size
        )
        if len(computed) == 1:
            values = [values]
        out.update(dict(zip(computed, values, strict=True)))
    return out
