"""ONNX in and out: lc.to_onnx(model, path) and lc.from_onnx(path).  Needs the onnx package
(pip install "lstm_core[onnx]"), imported only when these functions are called.

Export (to_onnx) writes each layer of a recurrent stack as one ONNX LSTM, GRU or RNN node in
layout 0 (time-major: onnxruntime's CPU provider refuses layout=1), both directions in one
node, with Transpose nodes around the graph for batch_first models and a Transpose and a
Reshape between layers (ONNX's Y is (T, D, B, H)).  The gates are permuted to ONNX's order
(LSTM i, o, f, c from i, f, g, o; GRU z, r, h from r, z, n, with linear_before_reset=1, which
is torch's GRU) and the biases stored as [Wb, Rb].  Graph inputs: "x" (float, time and batch
as dynamic axes; for a TokenSequenceModel int64 token ids (N, T)) and, with lengths=True,
"lengths" (int32 (B,), ONNX's sequence_lens).  Outputs: a stack "y", "h_n" (and "c_n" for the
LSTM), laid out as the stack returns them; a SequenceModel "out".  Heads become Gemm (or
MatMul and Add per step, output="all"), Tanh and Relu nodes; Dropout is the identity at
inference.  The initial states are zero.  The file carries the model's lstm_core
configuration in its metadata, so from_onnx rebuilds the very model.

Import (from_onnx) reads such a file back, or a graph of ONNX LSTM/GRU/RNN nodes of another
origin (any layout, forward or bidirectional, sequence_lens and initial states as inputs):
that gives the matching lstm_core stack.  What the kernels do not compute is refused with
NotImplementedError naming it, never approximated: peepholes (P), clip, input_forget,
activations other than the defaults, a GRU with linear_before_reset=0, a reverse-only
direction, and any other node kind.
"""

import json
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lstm_core.embedding import Embedding, TokenSequenceModel
from lstm_core.heads import Dropout, ReLU, Sequential, Tanh
from lstm_core.io import _build, _describe
from lstm_core.layers import GRU, LSTM, RNN, Linear, RecurrentStack, SequenceModel

_METADATA_KEY = "lstm_core.model"
# Our gate blocks in ONNX's order: LSTM i, o, f, c from i, f, g, o; GRU z, r, h from r, z, n.
_ONNX_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
_CELLS: dict[str, type[RecurrentStack]] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ImportError('ONNX export and import need the onnx package: pip install '
                          '"lstm_core[onnx]" (or pip install onnx)') from error
    return onnx


def _blocks(a: NDArray[Any], order: tuple[int, ...], inverse: bool = False) -> NDArray[Any]:
    """a's first axis cut into len(order) gate blocks, reordered (or put back)."""
    parts = np.split(a, len(order))
    if inverse:
        restored = [parts[0]] * len(order)
        for position, block in enumerate(order):
            restored[block] = parts[position]
        return np.concatenate(restored)
    return np.concatenate([parts[block] for block in order])


class _Graph:
    """The nodes, initializers and values of the graph being written."""

    def __init__(self, onnx: Any, dtype: np.dtype[Any]) -> None:
        self.onnx, self.dtype = onnx, dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def constant(self, name: str, value: NDArray[Any]) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value),
                                                                    name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> list[str]:
        self.count += 1
        names = [f"{op.lower()}{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, names, **attrs))
        return names

    def transpose(self, value: str, perm: list[int]) -> str:
        return self.node("Transpose", [value], perm=perm)[0]

    def reshape(self, value: str, shape: list[int]) -> str:
        target = self.constant(f"shape{self.count}", np.array(shape, np.int64))
        return self.node("Reshape", [value, target])[0]


def _recurrent_layers(g: _Graph, stack: RecurrentStack, seq: str,
                      lengths: str) -> tuple[str, list[list[str]]]:
    """The stack's layers as ONNX nodes over seq (T, B, F): the top layer's output (T, B, D*H)
    and, per layer, its final states [Y_h, (Y_c)], each (D, B, H)."""
    kind = type(stack).__name__
    order = _ONNX_ORDER[kind]
    H, D = stack.hidden_size, stack.num_directions
    finals = []
    for layer in range(stack.num_layers):
        W, R, Bias = [], [], []
        for direction in range(D):
            suffix = stack._suffixes()[direction]
            W.append(_blocks(stack.params[f"weight_ih_l{layer}{suffix}"], order))
            R.append(_blocks(stack.params[f"weight_hh_l{layer}{suffix}"], order))
            zero = np.zeros(len(order) * H, stack.dtype)
            Bias.append(np.concatenate([
                _blocks(stack.params.get(f"{which}_l{layer}{suffix}", zero), order)
                for which in ("bias_ih", "bias_hh")]))
        inputs = [seq, g.constant(f"layer{layer}.W", np.stack(W)),
                  g.constant(f"layer{layer}.R", np.stack(R)),
                  g.constant(f"layer{layer}.B", np.stack(Bias)), lengths]
        attrs: dict[str, Any] = {"hidden_size": H,
                                 "direction": "bidirectional" if D == 2 else "forward"}
        if kind == "GRU":
            attrs["linear_before_reset"] = 1
        outs = g.node(kind, inputs, 3 if kind == "LSTM" else 2, **attrs)
        finals.append(outs[1:])
        # Y (T, D, B, H) -> (T, B, D*H), the next layer's input
        seq = g.reshape(g.transpose(outs[0], [0, 2, 1, 3]), [0, 0, -1])
    return seq, finals


def _head(g: _Graph, head: Linear | Sequential, features: str, per_step: bool) -> str:
    """The head's layers over features: Gemm (MatMul and Add per step), Tanh, Relu."""
    modules = head.modules if isinstance(head, Sequential) else [head]
    prefix = "head." if isinstance(head, Linear) else ""
    for index, module in enumerate(modules):
        key = prefix if isinstance(head, Linear) else f"head.{index}."
        if isinstance(module, Linear):
            weight, bias = module.params["weight"], module.params.get("bias")
            if per_step:
                features = g.node("MatMul", [features, g.constant(f"{key}weight:transposed",
                                                                  weight.T)])[0]
                if bias is not None:
                    features = g.node("Add", [features, g.constant(f"{key}bias", bias)])[0]
            else:
                inputs = [features, g.constant(f"{key}weight", weight)]
                if bias is not None:
                    inputs.append(g.constant(f"{key}bias", bias))
                features = g.node("Gemm", inputs, transB=1)[0]
        elif isinstance(module, Tanh):
            features = g.node("Tanh", [features])[0]
        elif isinstance(module, ReLU):
            features = g.node("Relu", [features])[0]
        elif not isinstance(module, Dropout):  # Dropout: the identity at inference
            raise NotImplementedError(f"a {type(module).__name__} in the head has no ONNX form")
    return features


def to_onnx(model: Any, path: str | os.PathLike[str], *, lengths: bool = False,
            opset: int = 17) -> None:
    """Write model as an ONNX file that onnxruntime runs with lstm_core's own results.

    Parameters
    ----------
    model : LSTM, GRU, RNN, SequenceModel or TokenSequenceModel
        What to export (its inference: no dropout, zero initial states).
    path : str or path-like
        The .onnx file to write.
    lengths : bool, default False
        Add the graph input "lengths" (int32 (B,)): each sequence's length, as lstm_core's
        lengths= (outputs past a length are zeros, final states at each length).
    opset : int, default 17
        The ONNX opset (14 or later).

    Raises
    ------
    TypeError
        For a model of another class.
    ImportError
        Without the onnx package.
    """
    onnx = _onnx()
    if isinstance(model, RecurrentStack):
        stack, top = model, None
    elif isinstance(model, SequenceModel):
        stack, top = model.lstm, model
    else:
        raise TypeError("to_onnx exports an LSTM, GRU, RNN, SequenceModel or "
                        f"TokenSequenceModel, got {type(model).__name__}")
    if opset < 14:
        raise ValueError(f"opset must be 14 or later (GRU's linear_before_reset, Reshape), "
                         f"got {opset}")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    dtype = stack.dtype
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    g = _Graph(onnx, dtype)
    time_batch = ["B", "T"] if stack.batch_first else ["T", "B"]
    if isinstance(model, TokenSequenceModel):
        inputs = [helper.make_tensor_value_info("x", TensorProto.INT64, ["B", "T"])]
        vectors = g.node("Gather", [g.constant("embedding.weight",
                                               model.embedding.params["weight"]), "x"])[0]
        seq = g.transpose(vectors, [1, 0, 2])
    else:
        inputs = [helper.make_tensor_value_info("x", elem, [*time_batch, stack.input_size])]
        seq = g.transpose("x", [1, 0, 2]) if stack.batch_first else "x"
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))
    y, finals = _recurrent_layers(g, stack, seq, "lengths" if lengths else "")
    if stack.batch_first:
        y = g.transpose(y, [1, 0, 2])
    if top is None:
        names = {"y": y, "h_n": g.node("Concat", [f[0] for f in finals], axis=0)[0]}
        if isinstance(stack, LSTM):
            names["c_n"] = g.node("Concat", [f[1] for f in finals], axis=0)[0]
    else:
        if top.output == "last":  # the top layer's final states (D, B, H) -> (B, D*H)
            features = g.reshape(g.transpose(finals[-1][0], [1, 0, 2]), [0, -1])
        else:
            features = y
        if top.head is not None:
            features = _head(g, top.head, features, per_step=top.output == "all")
        names = {"out": features}
    for name, value in names.items():
        g.nodes.append(helper.make_node("Identity", [value], [name]))
    D, H = stack.num_directions, stack.hidden_size
    shapes = {"y": [*time_batch, D * H], "h_n": [stack.num_layers * D, "B", H],
              "c_n": [stack.num_layers * D, "B", H]}
    if top is not None:
        width = D * H if top.head is None else top.head.out_features
        if isinstance(model, TokenSequenceModel):
            time_batch = ["B", "T"]
        shapes["out"] = ["B", width] if top.output == "last" else [*time_batch, width]
    outputs = [helper.make_tensor_value_info(name, elem, shapes[name]) for name in names]
    graph = helper.make_graph(g.nodes, "lstm_core", inputs, outputs, g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                   producer_name="lstm_core")
    helper.set_model_props(onnx_model, {_METADATA_KEY: json.dumps(_describe(model)),
                                        "lstm_core.lengths": json.dumps(bool(lengths))})
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, os.fspath(path))


# ----------------------------------------------------------------------------- import


def _load(path: str | os.PathLike[str]) -> Any:
    onnx = _onnx()
    try:  # parsed, not checked: exporters differ in the optional parts the checker wants
        model = onnx.load(os.fspath(path))
    except FileNotFoundError:
        raise
    except Exception as error:  # onnx raises protobuf's DecodeError, ValidationError, ...
        raise ValueError(f"{os.fspath(path)} is not a readable ONNX model "
                         f"({type(error).__name__}: {str(error)[:200]})") from None
    return model


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check_node(node: Any, attrs: dict[str, Any]) -> None:
    """NotImplementedError for what the kernels do not compute."""
    name = f"{node.op_type} node {node.name or node.output[0]!r}"
    if node.op_type == "LSTM" and len(node.input) > 7 and node.input[7]:
        raise NotImplementedError(f"{name} has peepholes (input P): not supported yet")
    if "clip" in attrs:
        raise NotImplementedError(f"{name} has a cell clip (clip={attrs['clip']}): not "
                                  "supported yet")
    if attrs.get("input_forget", 0):
        raise NotImplementedError(f"{name} couples the input and forget gates "
                                  "(input_forget=1): not supported yet")
    defaults = {"LSTM": [b"Sigmoid", b"Tanh", b"Tanh"], "GRU": [b"Sigmoid", b"Tanh"],
                "RNN": [b"Tanh"]}[node.op_type]
    activations = attrs.get("activations")
    if activations is not None and list(activations) not in (defaults, defaults * 2):
        raise NotImplementedError(f"{name} uses activations {activations}: only "
                                  f"{defaults} are computed")
    for key in ("activation_alpha", "activation_beta"):
        if key in attrs:
            raise NotImplementedError(f"{name} sets {key}: not supported")
    if node.op_type == "GRU" and attrs.get("linear_before_reset", 0) != 1:
        raise NotImplementedError(f"{name} has linear_before_reset=0 (the reset gate applied "
                                  "before the recurrent product); lstm_core's GRU is torch's, "
                                  "linear_before_reset=1")
    if attrs.get("direction", b"forward") == b"reverse":
        raise NotImplementedError(f"{name} runs in reverse only; lstm_core's stacks run "
                                  "forward or bidirectional")


# Nodes that only carry a stack's values between its layers and to its outputs.
_PLUMBING = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Identity", "Cast",
             "Shape", "Slice", "Gather"}


def _recurrent_state(node: Any, weights: dict[str, NDArray[Any]], kind: str,
                     layer: int) -> dict[str, NDArray[Any]]:
    """The state_dict entries of one ONNX recurrent node (layer `layer`)."""
    order = _ONNX_ORDER[kind]
    try:
        W, R = weights[node.input[1]], weights[node.input[2]]
    except KeyError as error:
        raise NotImplementedError(f"{kind} node {node.name!r}: its weights must be "
                                  f"initializers (constant), {error} is computed") from None
    Bias = weights.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    state = {}
    for direction in range(W.shape[0]):
        suffix = ("", "_reverse")[direction]
        state[f"weight_ih_l{layer}{suffix}"] = _blocks(W[direction], order, inverse=True)
        state[f"weight_hh_l{layer}{suffix}"] = _blocks(R[direction], order, inverse=True)
        G = W.shape[1]
        b = np.zeros(2 * G, W.dtype) if Bias is None else Bias[direction]
        state[f"bias_ih_l{layer}{suffix}"] = _blocks(b[:G], order, inverse=True)
        state[f"bias_hh_l{layer}{suffix}"] = _blocks(b[G:], order, inverse=True)
    return state


def from_onnx(path: str | os.PathLike[str]) -> Any:
    """The lstm_core model of an ONNX file.

    A file written by to_onnx gives back that model (its class, configuration and
    parameters).  Any other graph of ONNX LSTM, GRU or RNN nodes gives the stack they form:
    one layer per node, forward or bidirectional, layout 0 or 1 (batch_first), with its
    weights and biases (the initial states and sequence_lens stay inputs of the call:
    hx= and lengths=).

    Parameters
    ----------
    path : str or path-like
        The .onnx file.

    Returns
    -------
    LSTM, GRU, RNN, SequenceModel or TokenSequenceModel

    Raises
    ------
    ValueError
        For a file that is not a readable ONNX model, or one with no recurrent node.
    NotImplementedError
        For what lstm_core's kernels do not compute, named: peepholes, clip, input_forget,
        other activations, GRU linear_before_reset=0, a reverse-only direction, mixed cells,
        or a node of another kind in a graph lstm_core did not write.
    ImportError
        Without the onnx package.
    """
    onnx = _onnx()
    model = _load(path)
    graph = model.graph
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    recurrent = [n for n in graph.node if n.op_type in _CELLS]
    if not recurrent:
        raise ValueError(f"{os.fspath(path)} holds no ONNX LSTM, GRU or RNN node")
    kinds = {n.op_type for n in recurrent}
    if len(kinds) > 1:
        raise NotImplementedError(f"the graph mixes {sorted(kinds)} nodes; a stack has one cell")
    kind = kinds.pop()
    state: dict[str, NDArray[Any]] = {}
    for layer, node in enumerate(recurrent):
        _check_node(node, _attributes(node))
        state.update(_recurrent_state(node, weights, kind, layer))
    metadata = {p.key: p.value for p in model.metadata_props}
    if _METADATA_KEY in metadata:
        built = _build(json.loads(metadata[_METADATA_KEY]))
        prefix = "lstm." if isinstance(built, SequenceModel) else ""
        full = {prefix + k: v for k, v in state.items()}
        for name, value in weights.items():
            key = name.removesuffix(":transposed")
            if key.startswith(("head.", "embedding.")):
                full[key] = value.T if name.endswith(":transposed") else value
        stack = built.lstm if isinstance(built, SequenceModel) else built
        if not isinstance(stack, RecurrentStack):
            raise ValueError(f"{os.fspath(path)} describes a {type(built).__name__}, not a "
                             "model with a recurrent stack")
        if not stack.bias:  # the exported B is zeros: a stack without biases has no entry
            full = {k: v for k, v in full.items()
                    if not k.removeprefix(prefix).startswith(("bias_ih", "bias_hh"))}
        built.load_state_dict(full)
        return built.eval()
    unknown = sorted({n.op_type for n in graph.node} - _PLUMBING - set(_CELLS))
    if unknown:
        raise NotImplementedError(f"the graph has {', '.join(unknown)} node(s): from_onnx reads "
                                  "recurrent stacks (and the models to_onnx writes)")
    first = _attributes(recurrent[0])
    W = weights[recurrent[0].input[1]]
    if W.dtype not in (np.float32, np.float64):
        raise NotImplementedError(f"weights of dtype {W.dtype}: lstm_core computes in float32 "
                                  "or float64")
    stack = _CELLS[kind](W.shape[2], int(first["hidden_size"]), num_layers=len(recurrent),
                         bidirectional=W.shape[0] == 2, batch_first=first.get("layout", 0) == 1,
                         dtype=W.dtype)
    stack.load_state_dict(state)
    stack.eval()
    return stack
