"""Layers over the functional API: LSTM, RNN and GRU stacks shaped like torch.nn.LSTM / RNN /
GRU (one base class, RecurrentStack), a dense head, and a model composing an LSTM and a head.

Every layer keeps its parameters as plain numpy arrays in `params` (name -> array, torch's
names) and their gradients in `grads` (same keys, same shapes).  `backward` ADDS into `grads`,
as torch accumulates into `.grad`; `zero_grad()` sets them back to zero.  Arrays are updated in
place (optimizers, `load_state_dict`), so a reference to `params[name]` stays valid.

A stack calls its cell's forward / backward (lstm_, rnn_, gru_) once per layer and direction;
the time loop stays in the compiled kernels.  The reverse direction runs the same kernel on the time-reversed input
(each sequence reversed within its own length when `lengths` is given).
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from lstm_core._boundary import give_scratch, take_scratch
from lstm_core._lstm import (
    gru_backward, gru_cell, gru_forward, lstm_backward, lstm_cell, lstm_forward, pack_lstm,
    rnn_backward, rnn_cell, rnn_forward,
)
from lstm_core._typing import FloatArray, IntArray
from lstm_core.precision import Precision
from lstm_core.reference import LSTMGrads

if TYPE_CHECKING:  # heads builds on this module
    from lstm_core.heads import Sequential

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: The index arrays of a per-sequence time reversal (see _reversal), or None for [::-1].
Reversal: TypeAlias = tuple[NDArray[np.intp], NDArray[np.intp]] | None
#: A training cache of the stack's cell: LSTMCache, RNNCache or GRUCache.
Cache: TypeAlias = Any
#: The gradients of the stack's cell: LSTMGrads, RNNGrads or GRUGrads.
Grads: TypeAlias = Any
#: A stack's states, one array per name in STATES, each (L*D, B, H) (or None if absent).
States: TypeAlias = tuple[FloatArray, ...]


def float_dtype(dtype: DTypeLike, name: str = "dtype") -> np.dtype[Any]:
    """np.dtype float32 or float64 from anything numpy understands; TypeError otherwise."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from error
    if resolved not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {resolved}")
    return resolved


def as_input(value: ArrayLike, name: str, dtype: np.dtype[Any]) -> FloatArray:
    """value as an ndarray of exactly `dtype`; a different dtype is a TypeError (never a silent
    cast: float64 data into a float32 model would lose precision without notice)."""
    array = np.asarray(value)
    if array.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {array.dtype} but the model's parameters are {dtype}; "
            f"convert it first, e.g. {name}.astype(np.{dtype.name})"
        )
    return array


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def check_lengths(lengths: ArrayLike | None, T: int, B: int) -> NDArray[np.int64] | None:
    """lengths as an int64 (B,) array with values in [0, T], or None."""
    if lengths is None:
        return None
    array = np.asarray(lengths)
    if array.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {array.dtype}")
    if array.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = {(B,)}, got {array.shape}")
    if B and (array.min() < 0 or array.max() > T):
        raise ValueError(
            f"lengths must lie in [0, T] = [0, {T}], got values {array.min()}..{array.max()}"
        )
    return array.astype(np.int64)


def _reversal(lengths: IntArray | None, T: int, B: int) -> Reversal:
    """Index arrays that reverse each sequence of a (T, B, ·) array within its own length.

    None when there are no lengths (a plain [::-1] does).  Otherwise (t_index (T, B),
    b_index (1, B)): step t of sequence b comes from step lengths[b]-1-t; padding steps
    (t >= lengths[b]) stay where they are.  The map is its own inverse.
    """
    if lengths is None:
        return None
    steps = np.arange(T)[:, None]
    t_index = np.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)
    return t_index, np.arange(B)[None, :]


def _reverse_into(out: FloatArray, a: FloatArray, reversal: Reversal) -> None:
    """out[...] = a (T, B, ·) reversed in time (each sequence within its length), in place."""
    if reversal is None:
        np.copyto(out, a[::-1])
    else:
        out[reversal] = a  # the map is its own inverse


def _reverse(a: FloatArray, reversal: Reversal) -> FloatArray:
    """a reversed in time as _reverse_into does, into a new C-contiguous array."""
    out = np.empty(a.shape, a.dtype)
    _reverse_into(out, a, reversal)
    return out


class Module:
    """What every layer shares: params and grads dicts, train/eval mode, state dicts.

    Subclasses fill self.params and self.grads (same keys) and define config() (the JSON-able
    constructor arguments that io.save_model writes).
    """

    params: dict[str, FloatArray]
    grads: dict[str, FloatArray]
    training: bool = True

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for grad in self.grads.values():
            grad.fill(0)

    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout on, caches kept for backward), or inference mode.

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for inference mode (as eval()).

        Returns
        -------
        Module
            self.
        """
        self.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Inference mode (no dropout, no caches: backward is unavailable).

        Returns
        -------
        Module
            self.
        """
        return self.train(False)

    def state_dict(self) -> dict[str, FloatArray]:
        """A copy of the parameters.

        Returns
        -------
        dict of str to ndarray
            {name: array}, torch's names, shapes and dtypes.
        """
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: Mapping[str, ArrayLike]) -> None:
        """Copy `state` into the parameters (in place).

        Nothing is modified unless everything matches.

        Parameters
        ----------
        state : dict of str to array_like
            Exactly the parameter names (a torch state_dict of the same architecture loads
            as is: its tensors are read through np.asarray), each with the parameter's shape
            and dtype.

        Raises
        ------
        TypeError
            For a state that is not a mapping, or an entry of the wrong dtype.
        ValueError
            For missing or unexpected keys, or an entry of the wrong shape.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a mapping name -> array, got {type(state).__name__}")
        missing = [k for k in self.params if k not in state]
        unexpected = [k for k in state if k not in self.params]
        if missing or unexpected:
            raise ValueError(
                f"state does not fit {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        arrays: dict[str, NDArray[Any]] = {}
        for name, param in self.params.items():
            value = np.asarray(state[name])
            if value.dtype != param.dtype:
                raise TypeError(
                    f"state[{name!r}] has dtype {value.dtype}, expected {param.dtype}"
                )
            if value.shape != param.shape:
                raise ValueError(
                    f"state[{name!r}] has shape {value.shape}, expected {param.shape}"
                )
            arrays[name] = value
        for name, value in arrays.items():
            self.params[name][...] = value

    def config(self) -> dict[str, Any]:
        raise NotImplementedError


class RecurrentStack(Module):
    """What the stacked recurrent layers (LSTM, RNN, GRU) share: parameters in torch's layout
    and names, layouts (batch_first, unbatched), variable lengths, the reverse direction by
    per-sequence reversal, dropout between layers, and the forward/backward/step loops over
    layers and directions.

    A subclass sets GATES (gate blocks of H rows: 4, 1, 3) and STATES (names of the state
    arrays: ("h", "c") or ("h",)), and runs one layer and direction through its kernels in
    _run_forward / _run_backward / _run_step.  States travel as tuples of len(STATES) arrays,
    each (L*D, B, H).
    """

    GATES: ClassVar[int] = 1
    STATES: ClassVar[tuple[str, ...]] = ("h",)
    #: The values of `precision` the cell's kernels implement.
    PRECISIONS: ClassVar[tuple[str | None, ...]] = (None,)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float32,
                 seed: int | None = None, precision: str | None = None) -> None:
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.num_layers = _positive_int(num_layers, "num_layers")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dtype = float_dtype(dtype)
        self.precision = precision
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.training = True
        self._tape: tuple[list[Cache], list[FloatArray | None], Reversal, bool,
                          tuple[int, int]] | None = None
        self.dhx: Any = None

        H, G = self.hidden_size, self.GATES * self.hidden_size
        bound = 1.0 / np.sqrt(H)
        self.params = {}
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes():
                shapes: dict[str, tuple[int, ...]] = {
                    f"weight_ih_l{layer}{suffix}": (G, layer_input),
                    f"weight_hh_l{layer}{suffix}": (G, H)}
                if self.bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (G,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (G,)
                for name, shape in shapes.items():
                    self.params[name] = self.rng.uniform(-bound, bound, shape).astype(self.dtype)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bias": self.bias,
                "batch_first": self.batch_first, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "dtype": self.dtype.name,
                "precision": self.precision}

    @property
    def precision(self) -> Precision:
        """What the layers' matrix products compute in: None (the parameters' dtype),
        "bfloat16" (float32 stacks: bfloat16 operands, float32 sums; training is mixed
        precision, the parameters and gradients stay float32) or "int8" (float32 stacks, eval
        mode only: dynamic quantization).  docs/precision.rst gives the schemes and errors."""
        return self._precision

    @precision.setter
    def precision(self, value: str | None) -> None:
        name = type(self).__name__
        if value is not None and (not isinstance(value, str) or value not in ("bfloat16",
                                                                               "int8")):
            raise ValueError(f"precision must be None, 'bfloat16' or 'int8', got {value!r}")
        if value not in self.PRECISIONS:
            raise ValueError(f"{name} computes in its parameters' dtype only (precision="
                             f"None): reduced precision is implemented for the LSTM")
        if value is not None and self.dtype != np.float32:
            raise ValueError(f"precision={value!r} needs a float32 {name}, this one is "
                             f"{self.dtype.name}")
        self._precision: Precision = cast(Precision, value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse")[: self.num_directions]

    def _param(self, kind: str, layer: int, direction: int) -> FloatArray | None:
        """params[f"{kind}_l{layer}{suffix}"], or None for a bias of a bias=False stack."""
        return self.params.get(f"{kind}_l{layer}{self._suffixes()[direction]}")

    # ------------------------------------------------------------------------- layouts

    def _time_major(self, x: FloatArray, name: str, feature_size: int,
                    feature_name: str) -> tuple[FloatArray, bool]:
        """User layout -> (T, B, F) and whether it was unbatched."""
        expected = "(B, T, F) or (T, F)" if self.batch_first else "(T, B, F) or (T, F)"
        if x.ndim not in (2, 3):
            raise ValueError(f"{name} must be 3-D {expected}, got shape {x.shape}")
        if x.shape[-1] != feature_size:
            raise ValueError(
                f"{name} must have {feature_name} = {feature_size} features in its last axis, "
                f"got shape {x.shape}"
            )
        if x.ndim == 2:
            return x[:, None, :], True
        return (x.transpose(1, 0, 2) if self.batch_first else x), False

    def _user_layout(self, a: FloatArray, unbatched: bool) -> FloatArray:
        """(T, B, F) -> the caller's layout."""
        if unbatched:
            return a[:, 0, :]
        return a.transpose(1, 0, 2) if self.batch_first else a

    def _state(self, value: ArrayLike | None, name: str, batch: int, unbatched: bool,
               stacks: int | None = None) -> FloatArray | None:
        """A (stacks, B, H) contiguous state from the caller's (stacks, B, H) or (stacks, H),
        or None; stacks defaults to num_layers*num_directions."""
        if value is None:
            return None
        stacks = self.num_layers * self.num_directions if stacks is None else stacks
        array = as_input(value, name, self.dtype)
        expected = (stacks, self.hidden_size) if unbatched else (stacks, batch, self.hidden_size)
        if array.shape != expected:
            raise ValueError(
                f"{name} must have shape (num_layers*num_directions, "
                f"{'' if unbatched else 'B, '}H) = {expected}, got {array.shape}"
            )
        return np.ascontiguousarray(array[:, None, :] if unbatched else array)

    def _states(self, values: Sequence[ArrayLike | None], names: Sequence[str], batch: int,
                unbatched: bool, stacks: int | None = None) -> tuple[FloatArray | None, ...]:
        """Each of values through _state, as a tuple (None for the absent ones)."""
        return tuple(self._state(v, n, batch, unbatched, stacks) for v, n in zip(values, names))

    # ------------------------------------------------------------------------- forward

    def __call__(self, x: ArrayLike, hx: Any = None,
                 lengths: ArrayLike | None = None) -> tuple[FloatArray, Any]:
        """The same as forward(x, hx, lengths)."""
        return self.forward(x, hx, lengths)

    def forward(self, x: ArrayLike, hx: Any = None,
                lengths: ArrayLike | None = None) -> tuple[FloatArray, Any]:
        """y and the final state for x (defined by LSTM, RNN and GRU)."""
        raise NotImplementedError

    def backward(self, dy: ArrayLike | None = None,
                 dh_n: ArrayLike | None = None) -> FloatArray:
        """dL/dx through the last training-mode forward (defined by LSTM, RNN and GRU)."""
        raise NotImplementedError

    def step(self, x_t: ArrayLike, state: Any = None) -> tuple[FloatArray, Any]:
        """One streaming time step (defined by LSTM, RNN and GRU)."""
        raise NotImplementedError

    def _run_forward(self, seq: FloatArray, layer: int, direction: int,
                     init: tuple[FloatArray | None, ...], training: bool,
                     length_kw: dict[str, Any]) -> tuple[FloatArray, States, Cache]:
        """One layer and direction through the cell's forward kernel."""
        raise NotImplementedError

    def _run_backward(self, cache: Cache, dy: FloatArray | None,
                      dfinal: tuple[FloatArray | None, ...]) -> Grads:
        """One layer and direction through the cell's backward kernel."""
        raise NotImplementedError

    def _run_step(self, x_t: FloatArray, layer: int, state: tuple[FloatArray, ...]) -> States:
        """One inference step of one layer: the new states."""
        raise NotImplementedError

    def _forward(self, x: ArrayLike, initial: Sequence[ArrayLike | None],
                 lengths: ArrayLike | None) -> tuple[FloatArray, States]:
        """The stack's forward: x in the user's layout; initial = tuple of raw initial states
        (or Nones) named like STATES.  Returns y in the user's layout and the final states."""
        x, unbatched = self._time_major(as_input(x, "x", self.dtype), "x", self.input_size,
                                        "input_size")
        T, B, _ = x.shape
        initial_states = self._states(initial, [f"{s}0" for s in self.STATES], B, unbatched)
        if unbatched and lengths is not None:
            lengths = np.reshape(lengths, (1,))
        checked = check_lengths(lengths, T, B)
        reversal = _reversal(checked, T, B) if self.bidirectional else None
        # Passed only when given: the functional API takes lengths= as a keyword.
        length_kw: dict[str, Any] = {} if checked is None else {"lengths": checked}

        D, H = self.num_directions, self.hidden_size
        finals = tuple(np.empty((self.num_layers * D, B, H), self.dtype) for _ in self.STATES)
        caches: list[Cache] = []
        masks: list[FloatArray | None] = []
        layer_input = x
        for layer in range(self.num_layers):
            out: FloatArray | None = None  # (T, B, D*H): the directions, each in time order
            for direction in range(D):
                index = layer * D + direction
                spare = None
                if direction == 0:
                    seq = layer_input
                elif self.training:
                    seq = _reverse(layer_input, reversal)  # kept by the cache
                else:
                    # An inference keeps nothing: the reversed input comes from the kernels'
                    # workspace pool.  A fresh array here (and one more of that size per
                    # layer) made malloc hand ~14 MB back to the system after every S3-bi2
                    # forward and fault it in again on the next, 7-10% of its time.
                    spare, seq = take_scratch(layer_input.shape, self.dtype)
                    _reverse_into(seq, layer_input, reversal)
                init = tuple(None if s is None else s[index] for s in initial_states)
                try:
                    y, final, cache = self._run_forward(seq, layer, direction, init,
                                                        self.training, length_kw)
                finally:
                    give_scratch(spare)
                for stack, value in zip(finals, final):
                    stack[index] = value
                caches.append(cache)
                if D == 1:
                    out = y
                    continue
                # Written in place: a reversed copy and a concatenation would be two more
                # arrays of this size per layer.
                if out is None:
                    out = np.empty((T, B, D * H), self.dtype)
                target = out[:, :, direction * H:(direction + 1) * H]
                if direction == 0:
                    target[...] = y
                else:
                    _reverse_into(target, y, reversal)
            assert out is not None  # D >= 1: every layer has an output
            mask = None
            if self.training and self.dropout and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                mask = (self.rng.random(out.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                out = out * mask
            masks.append(mask)
            layer_input = out

        self._tape = (caches, masks, reversal, unbatched, (T, B)) if self.training else None
        if unbatched:
            finals = tuple(f[:, 0] for f in finals)
        return self._user_layout(layer_input, unbatched), finals

    # ------------------------------------------------------------------------- backward

    def _backward(self, dy: ArrayLike | None,
                  dfinals: Sequence[ArrayLike | None]) -> tuple[FloatArray, States]:
        """dL/dx from dL/dy and the final states' gradients (a tuple named like STATES, Nones
        for zero); ADDS into self.grads; returns dx and the initial states' gradients."""
        if self._tape is None:
            raise RuntimeError(
                f"backward needs a forward in training mode first (call "
                f"{type(self).__name__.lower()}.train(); eval() keeps no caches)"
            )
        caches, masks, reversal, unbatched, (T, B) = self._tape
        D, H = self.num_directions, self.hidden_size
        stacks = self.num_layers * D
        grad: FloatArray | None = None
        if dy is not None:
            dy_array = as_input(dy, "dy", self.dtype)
            y_shape = self._user_layout(np.empty((T, B, D * H), np.int8), unbatched).shape
            if dy_array.shape != y_shape:
                raise ValueError(f"dy must have the shape of y, {y_shape}, got {dy_array.shape}")
            grad = dy_array[:, None, :] if unbatched else (
                dy_array.transpose(1, 0, 2) if self.batch_first else dy_array)
        dfinal_states = self._states(dfinals, [f"d{s}_n" for s in self.STATES], B, unbatched)
        dinitial = tuple(np.empty((stacks, B, H), self.dtype) for _ in self.STATES)

        for layer in reversed(range(self.num_layers)):
            mask = masks[layer]
            if grad is not None and mask is not None:
                grad = grad * mask
            dx: FloatArray | None = None
            for direction in range(D):
                index = layer * D + direction
                dy_dir = None
                if grad is not None:
                    dy_dir = np.ascontiguousarray(grad[:, :, direction * H:(direction + 1) * H])
                    if direction == 1:
                        dy_dir = _reverse(dy_dir, reversal)
                dfinal = tuple(None if d is None else d[index] for d in dfinal_states)
                g = self._run_backward(caches[index], dy_dir, dfinal)
                self._accumulate(layer, direction, g)
                for stack, name in zip(dinitial, self.STATES):
                    stack[index] = getattr(g, f"d{name}0")
                dx_dir = g.dx if direction == 0 else _reverse(g.dx, reversal)
                dx = dx_dir if dx is None else dx + dx_dir
            grad = dx

        assert grad is not None  # D >= 1: the bottom layer's dx
        if unbatched:
            dinitial = tuple(d[:, 0] for d in dinitial)
        return self._user_layout(grad, unbatched), dinitial

    def _accumulate(self, layer: int, direction: int, g: Grads) -> None:
        suffix = self._suffixes()[direction]
        self.grads[f"weight_ih_l{layer}{suffix}"] += g.dw_ih
        self.grads[f"weight_hh_l{layer}{suffix}"] += g.dw_hh
        if self.bias:
            self._accumulate_biases(f"_l{layer}{suffix}", g)

    def _accumulate_biases(self, key: str, g: Grads) -> None:
        # The kernel saw b_ih + b_hh: each gets the full gradient of the sum.
        self.grads[f"bias_ih{key}"] += g.dbias
        self.grads[f"bias_hh{key}"] += g.dbias

    def _summed_bias(self, layer: int, direction: int) -> FloatArray | None:
        """b_ih + b_hh of one layer and direction, or None without biases."""
        if not self.bias:
            return None
        return (self.params[f"bias_ih_l{layer}{self._suffixes()[direction]}"]
                + self.params[f"bias_hh_l{layer}{self._suffixes()[direction]}"])

    # ------------------------------------------------------------------------- streaming

    def _step(self, x_t: ArrayLike,
              state: Sequence[ArrayLike | None] | None) -> tuple[FloatArray, States]:
        """One time step through every layer (inference, no dropout); state is a tuple named
        like STATES, shaped like the final states, or None for zeros."""
        if self.bidirectional:
            raise ValueError(
                f"step() needs a unidirectional {type(self).__name__} (bidirectional=False)")
        x_array = as_input(x_t, "x_t", self.dtype)
        if x_array.ndim not in (1, 2) or x_array.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t must have shape (B, {self.input_size}) or ({self.input_size},), "
                f"got {x_array.shape}"
            )
        unbatched = x_array.ndim == 1
        inp = x_array[None] if unbatched else x_array
        B = inp.shape[0]
        zeros = np.zeros((self.num_layers, B, self.hidden_size), self.dtype)
        current: tuple[FloatArray | None, ...]
        if state is None:
            current = tuple(zeros for _ in self.STATES)
        else:
            current = self._states(state, self.STATES, B, unbatched)
        new = tuple(np.empty_like(zeros) for _ in self.STATES)
        for layer in range(self.num_layers):
            result = self._run_step(inp, layer, tuple(cast(FloatArray, s)[layer] for s in current))
            for stack, value in zip(new, result):
                stack[layer] = value
            inp = new[0][layer]
        if unbatched:
            return inp[0], tuple(s[:, 0] for s in new)
        return inp.copy(), new


class LSTM(RecurrentStack):
    """A stacked, optionally bidirectional LSTM with torch.nn.LSTM's shapes and parameters.

    With D = 2 if bidirectional else 1 and L = num_layers, the shapes are:

    - x: (T, B, I), or (B, T, I) when batch_first, or (T, I) unbatched.
    - hx: (h0, c0), each (L*D, B, H), or (L*D, H) unbatched; None means zeros.
    - y: (T, B, D*H) / (B, T, D*H) / (T, D*H), the top layer's output, directions
      concatenated.
    - h_n, c_n: like h0, the final state of every layer and direction, index
      layer*D + direction.

    lengths (B,) integers in [0, T] (None: all T): steps past a sequence's length leave its
    state unchanged and output zeros, h_n/c_n are each sequence's state at its own length,
    and the reverse direction starts at each sequence's last valid step, as torch's packed
    sequences do.

    The parameters (self.params), for layer k and suffix "" or "_reverse": weight_ih_l{k}
    (4H, I_k), weight_hh_l{k} (4H, H), bias_ih_l{k}, bias_hh_l{k} (4H,) when bias; I_0 = I,
    I_k = D*H.  Initialised like torch, U(-1/sqrt(H), 1/sqrt(H)), from
    np.random.default_rng(seed).

    Training mode keeps the kernels' caches for backward; eval() runs the inference kernels
    (no caches, no dropout).

    Parameters
    ----------
    input_size : int
        I, the features of x.
    hidden_size : int
        H, the hidden units of every layer.
    num_layers : int, default 1
        L, the stacked layers.
    bias : bool, default True
        Whether the layers have the biases b_ih and b_hh.
    batch_first : bool, default False
        x and y are (B, T, ·) instead of (T, B, ·); states keep (L*D, B, H).
    dropout : float, default 0.0
        In [0, 1): applied to the output of every layer but the last, in training mode only,
        with masks drawn from self.rng (seeded by `seed`; replace it to control the masks).
    bidirectional : bool, default False
        Add a reverse direction to every layer.
    dtype : dtype, default np.float32
        float32 or float64, the dtype of the parameters and of every input.
    seed : int, optional
        Seed of the initialisation and of the dropout masks.
    unit_forget_bias : bool, default False
        Set the forget-gate slice of bias_ih to 1 and of bias_hh to 0 (their sum, the
        effective bias, is 1.0).
    precision : {None, 'bfloat16', 'int8'}, default None
        What the matrix products compute in (float32 stacks; the attribute of the same name
        may be changed later): None the parameters' dtype; 'bfloat16' bfloat16 operands and
        float32 sums, training in mixed precision (float32 parameters and gradients); 'int8'
        dynamic quantization, eval mode only.  docs/precision.rst.

    Attributes
    ----------
    params : dict of str to ndarray
        The parameters by torch's names, updated in place.
    grads : dict of str to ndarray
        Their gradients (same keys), accumulated by backward.
    dhx : tuple of ndarray or None
        (dh0, dc0), the gradients of the initial state from the last backward.
    rng : numpy.random.Generator
        The source of the dropout masks.

    Raises
    ------
    TypeError
        For a size that is not an int, or a dtype other than float32/float64.
    ValueError
        For a size below 1 or a dropout outside [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> lstm = lc.LSTM(3, 5, num_layers=2, seed=0)
    >>> y, (h_n, c_n) = lstm(np.zeros((7, 2, 3), np.float32))
    >>> y.shape, h_n.shape
    ((7, 2, 5), (2, 2, 5))
    >>> dx = lstm.backward(np.ones_like(y))
    >>> dx.shape
    (7, 2, 3)
    """

    GATES = 4
    STATES = ("h", "c")
    PRECISIONS = (None, "bfloat16", "int8")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float32,
                 seed: int | None = None, unit_forget_bias: bool = False,
                 precision: str | None = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, precision=precision)
        self.unit_forget_bias = bool(unit_forget_bias)
        H = self.hidden_size
        if self.bias and self.unit_forget_bias:
            for layer in range(self.num_layers):
                for suffix in self._suffixes():
                    self.params[f"bias_ih_l{layer}{suffix}"][H:2 * H] = 1.0
                    self.params[f"bias_hh_l{layer}{suffix}"][H:2 * H] = 0.0

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return {**super().config(), "unit_forget_bias": self.unit_forget_bias}

    def _weights(self, layer: int,
                 direction: int) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        """(w_ih, w_hh, bias) of one layer and direction; bias = b_ih + b_hh or None."""
        suffix = self._suffixes()[direction]
        return (self.params[f"weight_ih_l{layer}{suffix}"],
                self.params[f"weight_hh_l{layer}{suffix}"], self._summed_bias(layer, direction))

    def _run_forward(self, seq: FloatArray, layer: int, direction: int,
                     init: tuple[FloatArray | None, ...], training: bool,
                     length_kw: dict[str, Any]) -> tuple[FloatArray, States, Cache]:
        if training and self.precision == "int8":
            raise ValueError("precision='int8' works in eval mode only: call .eval() first "
                             "(precision='bfloat16' trains in reduced precision)")
        y, h_n, c_n, cache = lstm_forward(seq, *self._weights(layer, direction), *init,
                                          training=training, precision=self.precision,
                                          **length_kw)
        return y, (h_n, c_n), cache

    def _run_backward(self, cache: Cache, dy: FloatArray | None,
                      dfinal: tuple[FloatArray | None, ...]) -> LSTMGrads:
        return lstm_backward(cache, dy, *dfinal)

    def _run_step(self, x_t: FloatArray, layer: int, state: tuple[FloatArray, ...]) -> States:
        h, c = state
        if self.precision is not None:
            # packed for this one step: a stream of steps with fixed weights is faster
            # through lc.pack_lstm(..., precision=...).cell
            packed = pack_lstm(*self._weights(layer, 0), precision=self.precision)
            return packed.cell(x_t, h, c)
        return lstm_cell(x_t, h, c, *self._weights(layer, 0))

    def __call__(self, x: ArrayLike, hx: Sequence[ArrayLike] | None = None,
                 lengths: ArrayLike | None = None
                 ) -> tuple[FloatArray, tuple[FloatArray, FloatArray]]:
        """The same as forward(x, hx, lengths)."""
        return self.forward(x, hx, lengths)

    def forward(self, x: ArrayLike, hx: Sequence[ArrayLike] | None = None,
                lengths: ArrayLike | None = None
                ) -> tuple[FloatArray, tuple[FloatArray, FloatArray]]:
        """Run the stack over a whole sequence.

        Parameters
        ----------
        x : array_like
            (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched, of the model's dtype.
        hx : tuple (h0, c0), optional
            The initial states, each (L*D, B, H) or (L*D, H) unbatched; None for zeros.
        lengths : array_like of int, shape (B,), optional
            Each sequence's length in [0, T]; None for all T.

        Returns
        -------
        y : ndarray
            The top layer's output, (T, B, D*H) in x's layout.
        (h_n, c_n) : tuple of ndarray
            The final states, each (L*D, B, H) (or (L*D, H) unbatched).

        Raises
        ------
        TypeError
            For arrays of another dtype than the parameters', or an hx that is not a pair.
        ValueError
            For wrong shapes or lengths.
        """
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"hx must be a pair (h0, c0) or None, got {type(hx).__name__}")
        y, finals = self._forward(x, (None, None) if hx is None else tuple(hx), lengths)
        h_n, c_n = finals
        return y, (h_n, c_n)

    def backward(self, dy: ArrayLike | None = None, dh_n: ArrayLike | None = None,
                 dc_n: ArrayLike | None = None) -> FloatArray:
        """Backpropagate through the last training-mode forward.

        ADDS the parameter gradients into self.grads; sets self.dhx = (dh0, dc0), the
        gradients of the initial state, shaped like hx.  May be called more than once.

        Parameters
        ----------
        dy : array_like, optional
            dL/dy, shaped like the y forward returned; None means zero.
        dh_n, dc_n : array_like, optional
            dL/dh_n and dL/dc_n, shaped like h_n and c_n; None means zero.

        Returns
        -------
        ndarray
            dL/dx, shaped like x.

        Raises
        ------
        RuntimeError
            When there was no training-mode forward.
        TypeError
            For gradients of another dtype than the parameters'.
        ValueError
            For gradients of the wrong shape.
        """
        dx, self.dhx = self._backward(dy, (dh_n, dc_n))
        return dx

    def step(self, x_t: ArrayLike, state: Sequence[ArrayLike] | None = None
             ) -> tuple[FloatArray, tuple[FloatArray, FloatArray]]:
        """One time step through every layer on the fused cell (inference, no dropout).

        Unidirectional only: a reverse direction needs the whole sequence.

        Parameters
        ----------
        x_t : array_like
            (B, I), or (I,) unbatched.
        state : tuple (h, c), optional
            Shaped like h_n, c_n; None for zeros.

        Returns
        -------
        y_t : ndarray
            (B, H), or (H,) unbatched: the top layer's output.
        (h, c) : tuple of ndarray
            The new state.

        Raises
        ------
        TypeError
            For a state that is not a pair, or arrays of another dtype.
        ValueError
            For a bidirectional LSTM or wrong shapes.
        """
        if state is not None and not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise TypeError(f"state must be a pair (h, c) or None, got {type(state).__name__}")
        y_t, new = self._step(x_t, state)
        h, c = new
        return y_t, (h, c)


class _OneStateStack(RecurrentStack):
    """The RNN and the GRU: one state h, passed and returned as an array (not a tuple)."""

    def __call__(self, x: ArrayLike, hx: ArrayLike | None = None,
                 lengths: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        """The same as forward(x, hx, lengths)."""
        return self.forward(x, hx, lengths)

    def forward(self, x: ArrayLike, hx: ArrayLike | None = None,
                lengths: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        """Run the stack over a whole sequence.

        Parameters
        ----------
        x : array_like
            (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched, of the model's dtype.
        hx : array_like, optional
            The initial state h0, (L*D, B, H) or (L*D, H) unbatched; None for zeros.
        lengths : array_like of int, shape (B,), optional
            Each sequence's length in [0, T]; None for all T.

        Returns
        -------
        y : ndarray
            The top layer's output, (T, B, D*H) in x's layout.
        h_n : ndarray
            The final state, (L*D, B, H) (or (L*D, H) unbatched).

        Raises
        ------
        TypeError
            For arrays of another dtype than the parameters'.
        ValueError
            For wrong shapes or lengths.
        """
        y, (h_n,) = self._forward(x, (hx,), lengths)
        return y, h_n

    def backward(self, dy: ArrayLike | None = None, dh_n: ArrayLike | None = None) -> FloatArray:
        """Backpropagate through the last training-mode forward.

        ADDS the parameter gradients into self.grads; sets self.dhx = dh0, the gradient of
        the initial state, shaped like hx.  May be called more than once.

        Parameters
        ----------
        dy : array_like, optional
            dL/dy, shaped like the y forward returned; None means zero.
        dh_n : array_like, optional
            dL/dh_n, shaped like h_n; None means zero.

        Returns
        -------
        ndarray
            dL/dx, shaped like x.

        Raises
        ------
        RuntimeError
            When there was no training-mode forward.
        TypeError
            For gradients of another dtype than the parameters'.
        ValueError
            For gradients of the wrong shape.
        """
        dx, (self.dhx,) = self._backward(dy, (dh_n,))
        return dx

    def step(self, x_t: ArrayLike,
             state: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
        """One time step through every layer (inference, no dropout); unidirectional only.

        Parameters
        ----------
        x_t : array_like
            (B, I), or (I,) unbatched.
        state : array_like, optional
            h, shaped like h_n; None for zeros.

        Returns
        -------
        y_t : ndarray
            (B, H), or (H,) unbatched: the top layer's output.
        h : ndarray
            The new state.

        Raises
        ------
        TypeError
            For arrays of another dtype than the parameters'.
        ValueError
            For a bidirectional stack or wrong shapes.
        """
        y_t, (h,) = self._step(x_t, None if state is None else (state,))
        return y_t, h



class RNN(_OneStateStack):
    """A stacked, optionally bidirectional vanilla RNN with torch.nn.RNN's shapes and
    parameters (nonlinearity 'tanh').

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).  Shapes, lengths, dropout,
    train/eval and state dicts as LSTM's, with one state h (hx, h_n: (L*D, B, H)) and
    parameters weight_ih_l{k} (H, I_k), weight_hh_l{k} (H, H), bias_ih_l{k}, bias_hh_l{k}
    (H,) (the kernels add the two biases).  backward fills rnn.grads and sets rnn.dhx = dh0.

    Parameters
    ----------
    input_size : int
        I, the features of x.
    hidden_size : int
        H, the hidden units of every layer.
    num_layers : int, default 1
        L, the stacked layers.
    nonlinearity : {'tanh'}
        The only nonlinearity the kernels implement.
    bias : bool, default True
        Whether the layers have the biases b_ih and b_hh.
    batch_first : bool, default False
        x and y are (B, T, ·) instead of (T, B, ·); states keep (L*D, B, H).
    dropout : float, default 0.0
        In [0, 1): applied to the output of every layer but the last, in training mode only.
    bidirectional : bool, default False
        Add a reverse direction to every layer.
    dtype : dtype, default np.float32
        float32 or float64, the dtype of the parameters and of every input.
    seed : int, optional
        Seed of the initialisation and of the dropout masks.
    precision : None
        The RNN computes in its parameters' dtype; reduced precision ('bfloat16', 'int8')
        is implemented for the LSTM (ValueError here).

    Raises
    ------
    ValueError
        For a nonlinearity other than 'tanh', as LSTM's otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> rnn = lc.RNN(3, 4, seed=0)
    >>> y, h_n = rnn(np.zeros((6, 2, 3), np.float32))
    >>> y.shape, h_n.shape
    ((6, 2, 4), (1, 2, 4))
    """

    GATES = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float32, seed: int | None = None,
                 precision: str | None = None) -> None:
        if nonlinearity != "tanh":
            raise ValueError(
                f"nonlinearity must be 'tanh' (the only one lstm_core's RNN kernels "
                f"implement), got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, precision=precision)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return {**super().config(), "nonlinearity": self.nonlinearity}

    def _run_forward(self, seq: FloatArray, layer: int, direction: int,
                     init: tuple[FloatArray | None, ...], training: bool,
                     length_kw: dict[str, Any]) -> tuple[FloatArray, States, Cache]:
        suffix = self._suffixes()[direction]
        y, h_n, cache = rnn_forward(seq, self.params[f"weight_ih_l{layer}{suffix}"],
                                    self.params[f"weight_hh_l{layer}{suffix}"],
                                    self._summed_bias(layer, direction), init[0],
                                    training=training, **length_kw)
        return y, (h_n,), cache

    def _run_backward(self, cache: Cache, dy: FloatArray | None,
                      dfinal: tuple[FloatArray | None, ...]) -> Grads:
        return rnn_backward(cache, dy, dfinal[0])

    def _run_step(self, x_t: FloatArray, layer: int, state: tuple[FloatArray, ...]) -> States:
        return (rnn_cell(x_t, state[0], self.params[f"weight_ih_l{layer}"],
                         self.params[f"weight_hh_l{layer}"], self._summed_bias(layer, 0)),)


class GRU(_OneStateStack):
    """A stacked, optionally bidirectional GRU with torch.nn.GRU's shapes and parameters.

    Gate order r, z, n along the 3H axis, b_hn inside the reset product::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h

    Shapes, lengths, dropout, train/eval and state dicts as LSTM's, with one state h
    (hx, h_n: (L*D, B, H)) and parameters weight_ih_l{k} (3H, I_k), weight_hh_l{k} (3H, H),
    bias_ih_l{k}, bias_hh_l{k} (3H,) (passed to the kernels apart).  backward fills
    gru.grads and sets gru.dhx = dh0.

    Parameters
    ----------
    input_size : int
        I, the features of x.
    hidden_size : int
        H, the hidden units of every layer.
    num_layers : int, default 1
        L, the stacked layers.
    bias : bool, default True
        Whether the layers have the biases b_ih and b_hh.
    batch_first : bool, default False
        x and y are (B, T, ·) instead of (T, B, ·); states keep (L*D, B, H).
    dropout : float, default 0.0
        In [0, 1): applied to the output of every layer but the last, in training mode only.
    bidirectional : bool, default False
        Add a reverse direction to every layer.
    dtype : dtype, default np.float32
        float32 or float64, the dtype of the parameters and of every input.
    seed : int, optional
        Seed of the initialisation and of the dropout masks.
    precision : None
        The GRU computes in its parameters' dtype; reduced precision ('bfloat16', 'int8')
        is implemented for the LSTM (ValueError here).

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> gru = lc.GRU(3, 4, bidirectional=True, seed=0)
    >>> y, h_n = gru(np.zeros((6, 2, 3), np.float32))
    >>> y.shape, h_n.shape
    ((6, 2, 8), (2, 2, 4))
    """

    GATES = 3

    def _run_forward(self, seq: FloatArray, layer: int, direction: int,
                     init: tuple[FloatArray | None, ...], training: bool,
                     length_kw: dict[str, Any]) -> tuple[FloatArray, States, Cache]:
        suffix = self._suffixes()[direction]
        y, h_n, cache = gru_forward(seq, self.params[f"weight_ih_l{layer}{suffix}"],
                                    self.params[f"weight_hh_l{layer}{suffix}"],
                                    self.params.get(f"bias_ih_l{layer}{suffix}"),
                                    self.params.get(f"bias_hh_l{layer}{suffix}"),
                                    init[0], training=training, **length_kw)
        return y, (h_n,), cache

    def _run_backward(self, cache: Cache, dy: FloatArray | None,
                      dfinal: tuple[FloatArray | None, ...]) -> Grads:
        return gru_backward(cache, dy, dfinal[0])

    def _run_step(self, x_t: FloatArray, layer: int, state: tuple[FloatArray, ...]) -> States:
        return (gru_cell(x_t, state[0], self.params[f"weight_ih_l{layer}"],
                         self.params[f"weight_hh_l{layer}"],
                         self.params.get(f"bias_ih_l{layer}"),
                         self.params.get(f"bias_hh_l{layer}")),)

    def _accumulate_biases(self, key: str, g: Grads) -> None:
        self.grads[f"bias_ih{key}"] += g.db_ih
        self.grads[f"bias_hh{key}"] += g.db_hh


class Linear(Module):
    """A dense layer y = x @ weight.T + bias over the last axis, torch.nn.Linear's layout.

    x (..., in_features) -> y (..., out_features); params "weight" (out_features,
    in_features) and "bias" (out_features,).  Initialised like torch:
    U(-1/sqrt(in), 1/sqrt(in)).

    Parameters
    ----------
    in_features : int
        The size of x's last axis.
    out_features : int
        The size of y's last axis.
    bias : bool, default True
        Whether the layer has a bias.
    dtype : dtype, default np.float32
        float32 or float64.
    seed : int, optional
        Seed of the initialisation.

    Raises
    ------
    TypeError
        For a size that is not an int, or a dtype other than float32/float64.
    ValueError
        For a size below 1.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> head = lc.Linear(4, 2, seed=0)
    >>> head(np.ones((3, 4), np.float32)).shape
    (3, 2)
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | None = None) -> None:
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        self.bias = bool(bias)
        self.dtype = float_dtype(dtype)
        self.training = True
        self._x: FloatArray | None = None
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params = {"weight": rng.uniform(-bound, bound, (self.out_features,
                                                             self.in_features)).astype(self.dtype)}
        if self.bias:
            self.params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias, "dtype": self.dtype.name}

    def __repr__(self) -> str:
        return "Linear(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def __call__(self, x: ArrayLike) -> FloatArray:
        """The same as forward(x)."""
        return self.forward(x)

    def forward(self, x: ArrayLike) -> FloatArray:
        """y = x @ weight.T + bias; x is kept for backward.

        Parameters
        ----------
        x : array_like, shape (..., in_features)
            Of the layer's dtype.

        Returns
        -------
        ndarray, shape (..., out_features)

        Raises
        ------
        TypeError
            For x of another dtype.
        ValueError
            For a last axis other than in_features.
        """
        x_array = as_input(x, "x", self.dtype)
        if x_array.ndim < 1 or x_array.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {x_array.shape}")
        self._x = x_array
        y = x_array @ self.params["weight"].T
        if self.bias:
            y += self.params["bias"]
        return y

    def backward(self, dy: ArrayLike) -> FloatArray:
        """dL/dx from dL/dy through the last forward; ADDS into self.grads.

        Parameters
        ----------
        dy : array_like, shape (..., out_features)
            dL/dy, shaped like the last forward's output.

        Returns
        -------
        ndarray, shape (..., in_features)
            dL/dx.

        Raises
        ------
        RuntimeError
            When there was no forward.
        TypeError
            For dy of another dtype.
        ValueError
            For dy of the wrong shape.
        """
        if self._x is None:
            raise RuntimeError("backward needs a forward first")
        dy = as_input(dy, "dy", self.dtype)
        expected = self._x.shape[:-1] + (self.out_features,)
        if dy.shape != expected:
            raise ValueError(f"dy must have shape {expected}, got {dy.shape}")
        rows_dy = dy.reshape(-1, self.out_features)           # (N, out)
        rows_x = self._x.reshape(-1, self.in_features)        # (N, in)
        self.grads["weight"] += rows_dy.T @ rows_x
        if self.bias:
            self.grads["bias"] += rows_dy.sum(axis=0)
        result: FloatArray = dy @ self.params["weight"]
        return result


class SequenceModel(Module):
    """Recurrent stack (LSTM, GRU or RNN) -> (last step or every step) -> optional Linear head.

    output="last": the top layer's final hidden state, each sequence at its own length
    (bidirectional: forward and reverse final states concatenated, (B, 2H)) — a
    sequence-to-one model.  output="all": the top layer's output at every step (padding steps
    are zeros before the head) — a sequence-to-sequence model.
    Parameters are the submodules' own arrays under "lstm." and "head." prefixes.

    Parameters
    ----------
    lstm : LSTM, GRU or RNN
        The recurrent stack (the name and the "lstm." prefix stay whatever the cell).
    head : Linear, optional
        Applied to the features; its in_features must be num_directions * hidden_size.
    output : {'last', 'all'}, default 'last'
        Which steps feed the head.

    Raises
    ------
    TypeError
        For a stack or head of another class, or a head of another dtype.
    ValueError
        For an unknown output or a head of the wrong size.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> model = lc.SequenceModel(lc.LSTM(3, 8, seed=0), lc.Linear(8, 1, seed=0))
    >>> out = model(np.zeros((5, 4, 3), np.float32))
    >>> out.shape
    (4, 1)
    >>> dx = model.backward(np.ones_like(out))
    """

    def __init__(self, lstm: RecurrentStack, head: "Linear | Sequential | None" = None, *,
                 output: str = "last") -> None:
        # `lstm` keeps its name (and the "lstm." parameter prefix) whatever the cell, so
        # that models and files written before GRU and RNN existed keep working.
        if not isinstance(lstm, RecurrentStack):
            raise TypeError(
                f"lstm must be an lstm_core.LSTM, GRU or RNN, got {type(lstm).__name__}"
            )
        from lstm_core.heads import Sequential  # heads builds on this module
        if head is not None and not isinstance(head, (Linear, Sequential)):
            raise TypeError("head must be an lstm_core.Linear, Sequential or None, got "
                            f"{type(head).__name__}")
        if output not in ("last", "all"):
            raise ValueError(f"output must be 'last' or 'all', got {output!r}")
        features = lstm.hidden_size * lstm.num_directions
        if head is not None:
            if head.in_features != features:
                raise ValueError(
                    f"head.in_features must be the LSTM's output size "
                    f"num_directions*hidden_size = {features}, got {head.in_features}"
                )
            if head.dtype != lstm.dtype:
                raise TypeError(f"head has dtype {head.dtype} but lstm has {lstm.dtype}")
        self.lstm, self.head, self.output = lstm, head, output
        self.dtype = lstm.dtype
        self.batch_first = lstm.batch_first
        self.training = lstm.training
        self.params, self.grads = {}, {}
        module: Module | None
        for prefix, module in (("lstm.", lstm), ("head.", head)):
            if module is not None:
                self.params.update({prefix + k: v for k, v in module.params.items()})
                self.grads.update({prefix + k: v for k, v in module.grads.items()})

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return {"lstm": self.lstm.config(),
                "cell": type(self.lstm).__name__,
                "head": None if self.head is None else self.head.config(),
                "head_class": None if self.head is None else type(self.head).__name__,
                "output": self.output}

    def __repr__(self) -> str:
        return f"SequenceModel({self.lstm!r}, {self.head!r}, output={self.output!r})"

    def train(self, mode: bool = True) -> "SequenceModel":
        """Training mode for the model and its submodules, or inference mode.

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for inference mode.

        Returns
        -------
        SequenceModel
            self.
        """
        module: Module | None
        for module in (self.lstm, self.head):
            if module is not None:
                module.train(mode)
        super().train(mode)
        return self

    def __call__(self, x: ArrayLike, hx: Any = None, lengths: ArrayLike | None = None, *,
                 return_state: bool = False) -> Any:
        """The same as forward(x, hx, lengths, return_state=return_state)."""
        return self.forward(x, hx, lengths, return_state=return_state)

    def forward(self, x: ArrayLike, hx: Any = None, lengths: ArrayLike | None = None, *,
                return_state: bool = False) -> Any:
        """The model's output for x.

        Parameters
        ----------
        x : array_like
            In the stack's layout: (T, B, I), or (B, T, I) with batch_first.
        hx : optional
            The stack's initial state: (h0, c0) for an LSTM, h0 for a GRU or RNN.
        lengths : array_like of int, shape (B,), optional
            Each sequence's length.
        return_state : bool, default False
            Also return the stack's final state ((h_n, c_n) for an LSTM, h_n for a GRU or
            RNN), to carry over into the next chunk of a long series (pass it back as hx).

        Returns
        -------
        out : ndarray
            (B, O) for output="last"; for output="all" laid out like y with O features.
        state : tuple of ndarray or ndarray
            Only with return_state=True.
        """
        y, state = self.lstm(x, hx, lengths)
        h_n = state[0] if isinstance(self.lstm, LSTM) else state
        if self.output == "last":
            D = self.lstm.num_directions
            features = np.concatenate(list(h_n[-D:]), axis=-1)  # (B, D*H) or (D*H,)
        else:
            features = y
        out = features if self.head is None else self.head(features)
        return (out, state) if return_state else out

    def backward(self, dout: ArrayLike) -> FloatArray | None:
        """dL/dx from dL/d(output); ADDS into the submodules' grads (and so self.grads).

        Parameters
        ----------
        dout : array_like
            dL/d(output), shaped like the last forward's output.

        Returns
        -------
        ndarray
            dL/dx, shaped like x.
        """
        dfeatures = dout if self.head is None else self.head.backward(dout)
        if self.output == "all":
            return self.lstm.backward(dfeatures)
        lstm = self.lstm
        D, H = lstm.num_directions, lstm.hidden_size
        dfeatures = as_input(dfeatures, "dout", self.dtype)
        stacks = lstm.num_layers * D
        batch_shape = dfeatures.shape[:-1]
        dh_n = np.zeros((stacks,) + batch_shape + (H,), self.dtype)
        for direction in range(D):
            dh_n[stacks - D + direction] = dfeatures[..., direction * H:(direction + 1) * H]
        return lstm.backward(None, dh_n)

    def step(self, x_t: ArrayLike, state: Any = None) -> tuple[FloatArray, Any]:
        """One streaming step: (output for this step, new state); see LSTM.step.

        Parameters
        ----------
        x_t : array_like
            (B, I), or (I,) unbatched.
        state : optional
            The stack's state, as LSTM.step / RNN.step take it; None for zeros.

        Returns
        -------
        out_t : ndarray
            The head's output for this step (the top layer's h without a head).
        state : tuple of ndarray or ndarray
            The new state.
        """
        h_t, state = self.lstm.step(x_t, state)
        return (h_t if self.head is None else self.head(h_t)), state
