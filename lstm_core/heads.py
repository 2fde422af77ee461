"""Heads deeper than one Linear: Dropout, the activations Tanh and ReLU, and Sequential.

A Sequential of Linear, Tanh, ReLU and Dropout modules is a head a SequenceModel (or a
TokenSequenceModel) takes where it takes a Linear: x (..., in_features) -> (..., out_features),
forward keeping what backward needs, backward ADDING into the parameters' gradients.  Its
parameters are the Linears' under torch.nn.Sequential's names ("0.weight", "0.bias",
"2.weight", ...), so a head's state_dict loads into torch's Sequential of the same layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core._typing import FloatArray
from lstm_core.layers import Linear, Module, as_input


class Dropout(Module):
    """Inverted dropout: in training mode each element is zeroed with probability p and the
    others scaled by 1/(1-p); in inference mode the identity.

    The mask of each forward is drawn from the module's own generator
    (np.random.default_rng(seed)) and kept for backward (``last_mask``).

    Parameters
    ----------
    p : float, default 0.5
        In [0, 1).
    seed : int, optional
        Seed of the masks.

    Raises
    ------
    ValueError
        For p outside [0, 1).
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"p must be in [0, 1), got {p!r}")
        self.p, self.seed = float(p), seed
        self.training = True
        self.params, self.grads = {}, {}
        self._rng = np.random.default_rng(seed)
        self.last_mask: FloatArray | None = None

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes)."""
        return {"p": self.p, "seed": self.seed}

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

    def __call__(self, x: ArrayLike) -> FloatArray:
        return self.forward(x)

    def forward(self, x: ArrayLike) -> FloatArray:
        """x times a fresh mask in training mode (x itself in inference mode)."""
        arr: FloatArray = np.asarray(x)
        if arr.dtype.kind != "f":
            raise TypeError(f"x must hold floats, got dtype {arr.dtype}")
        if not self.training or self.p == 0:
            self.last_mask = None
            return arr
        keep = self._rng.random(arr.shape) >= self.p
        self.last_mask = (keep / (1.0 - self.p)).astype(arr.dtype)
        return arr * self.last_mask

    def backward(self, dy: ArrayLike) -> FloatArray:
        """dL/dx: dy times the last forward's mask (dy itself after an inference forward)."""
        grad: FloatArray = np.asarray(dy)
        if self.last_mask is None:
            return grad
        if grad.shape != self.last_mask.shape:
            raise ValueError(f"dy must have shape {self.last_mask.shape}, got {grad.shape}")
        return grad * self.last_mask


class _Activation(Module):
    """An elementwise function without parameters; keeps what its derivative needs."""

    def __init__(self) -> None:
        self.training = True
        self.params, self.grads = {}, {}
        self._kept: NDArray[Any] | None = None

    def config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __call__(self, x: ArrayLike) -> FloatArray:
        return self.forward(x)

    def forward(self, x: ArrayLike) -> FloatArray:
        raise NotImplementedError

    def backward(self, dy: ArrayLike) -> FloatArray:
        raise NotImplementedError

    def _saved(self, dy: ArrayLike) -> tuple[FloatArray, NDArray[Any]]:
        if self._kept is None:
            raise RuntimeError("backward needs a forward first")
        grad: FloatArray = np.asarray(dy)
        if grad.shape != self._kept.shape:
            raise ValueError(f"dy must have shape {self._kept.shape}, got {grad.shape}")
        return grad, self._kept


class Tanh(_Activation):
    """y = tanh(x), elementwise (torch.nn.Tanh)."""

    def forward(self, x: ArrayLike) -> FloatArray:
        y: FloatArray = np.tanh(np.asarray(x))
        self._kept = y
        return y

    def backward(self, dy: ArrayLike) -> FloatArray:
        grad, y = self._saved(dy)
        result: FloatArray = grad * (1 - y * y)
        return result


class ReLU(_Activation):
    """y = max(x, 0), elementwise (torch.nn.ReLU); the derivative at 0 is 0, as torch's."""

    def forward(self, x: ArrayLike) -> FloatArray:
        arr: FloatArray = np.asarray(x)
        self._kept = arr > 0
        return np.where(self._kept, arr, arr.dtype.type(0))

    def backward(self, dy: ArrayLike) -> FloatArray:
        grad, positive = self._saved(dy)
        return np.where(positive, grad, grad.dtype.type(0))


HEAD_LAYERS = (Linear, Tanh, ReLU, Dropout)
#: What build_head_layer returns.
HeadLayer = Linear | Tanh | ReLU | Dropout


class Sequential(Module):
    """A head made of Linear, Tanh, ReLU and Dropout modules, applied in order.

    Parameters
    ----------
    *modules : Linear, Tanh, ReLU or Dropout
        At least one Linear; consecutive Linears' sizes must chain, all of one dtype.

    Attributes
    ----------
    in_features, out_features : int
        The first and last Linear's.
    dtype : numpy.dtype
        The Linears'.

    Raises
    ------
    TypeError
        For a module of another class, or Linears of different dtypes.
    ValueError
        For no Linear, or Linears whose sizes do not chain.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> head = lc.Sequential(lc.Linear(8, 16, seed=0), lc.ReLU(), lc.Dropout(0.2, seed=0),
    ...                      lc.Linear(16, 3, seed=1))
    >>> model = lc.SequenceModel(lc.LSTM(4, 8, seed=0), head)
    >>> model(np.zeros((5, 2, 4), np.float32)).shape
    (2, 3)
    """

    def __init__(self, *modules: Module) -> None:
        for index, module in enumerate(modules):
            if not isinstance(module, HEAD_LAYERS):
                raise TypeError(f"module {index} must be a Linear, Tanh, ReLU or Dropout, got "
                                f"{type(module).__name__}")
        linears = [m for m in modules if isinstance(m, Linear)]
        if not linears:
            raise ValueError("a Sequential head needs at least one Linear")
        for before, after in zip(linears, linears[1:]):
            if after.in_features != before.out_features:
                raise ValueError(f"a Linear of {before.out_features} outputs is followed by one "
                                 f"of {after.in_features} inputs")
            if after.dtype != before.dtype:
                raise TypeError(f"the Linears mix {before.dtype} and {after.dtype}")
        self.modules = list(modules)
        self.in_features, self.out_features = linears[0].in_features, linears[-1].out_features
        self.dtype = linears[0].dtype
        self.training = True
        self.params, self.grads = {}, {}
        for index, module in enumerate(self.modules):
            self.params.update({f"{index}.{k}": v for k, v in module.params.items()})
            self.grads.update({f"{index}.{k}": v for k, v in module.grads.items()})

    def config(self) -> dict[str, Any]:
        """The modules' classes and constructor arguments, JSON-able (what save_model
        writes)."""
        return {"modules": [{"class": type(m).__name__, "config": m.config()}
                            for m in self.modules]}

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(m) for m in self.modules) + ")"

    def train(self, mode: bool = True) -> Sequential:
        """Training mode (dropout on) for every module, or inference mode."""
        for module in self.modules:
            module.train(mode)
        super().train(mode)
        return self

    def __call__(self, x: ArrayLike) -> FloatArray:
        return self.forward(x)

    def forward(self, x: ArrayLike) -> FloatArray:
        """Each module in turn; x (..., in_features) of the head's dtype."""
        out: FloatArray = as_input(x, "x", self.dtype)
        for module in self.modules:
            out = module.forward(out)  # type: ignore[attr-defined]
        return out

    def backward(self, dy: ArrayLike) -> FloatArray:
        """dL/dx through the last forward, each module in reverse; ADDS into self.grads."""
        grad: FloatArray = as_input(dy, "dy", self.dtype)
        for module in reversed(self.modules):
            grad = module.backward(grad)  # type: ignore[attr-defined]
        return grad


def build_head_layer(kind: str, config: dict[str, Any]) -> HeadLayer | Sequential:
    """A head layer from its class name and config (io.load_model)."""
    classes: dict[str, type[HeadLayer]] = {"Linear": Linear, "Tanh": Tanh, "ReLU": ReLU,
                                           "Dropout": Dropout}
    if kind == "Sequential":
        return Sequential(*(build_head_layer(m["class"], m["config"])
                            for m in config["modules"]))
    if kind not in classes:
        raise ValueError(f"unknown head layer {kind!r}")
    return classes[kind](**config)
