"""Optimizers over named parameters, gradient clipping, learning-rate schedules.

    opt = Adam(model.params, lr=1e-3)            # params: {name: array}, updated in place
    clip_grad_norm(model.grads, max_norm=1.0)    # optional, before the step
    opt.step(model.grads)                        # grads: {name: array}, the same keys

The update rules are torch.optim's (SGD with momentum/Nesterov and L2 weight decay; Adam
with L2 weight decay; AdamW with decoupled weight decay), computed in each parameter's dtype.
A schedule is a callable step -> factor; the learning rate of update number `step` (0 for the
first) is lr * schedule(step).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from lstm_core._typing import FloatArray

#: A learning-rate schedule: update number (0 for the first) -> factor of lr.
Schedule: TypeAlias = Callable[[int], float]


def _check_rate(value: float, name: str, upper: float | None = None) -> float:
    value = float(value)
    if not value >= 0.0 or (upper is not None and not value < upper):
        bound = f"[0, {upper})" if upper is not None else "[0, inf)"
        raise ValueError(f"{name} must lie in {bound}, got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters, the step count and the schedule; subclasses define
    _update(name, param, grad, lr), which modifies param in place.

    Parameters
    ----------
    params : dict of str to ndarray
        The parameters to update in place (e.g. model.params), float32 or float64.
    lr : float
        The base learning rate, >= 0.
    weight_decay : float, default 0.0
        >= 0; how it applies is the subclass's rule.
    schedule : callable, optional
        step -> factor: update number `step` (0 for the first) uses lr * schedule(step).

    Raises
    ------
    TypeError
        For params that are not a dict of float arrays, or a schedule that is not callable.
    ValueError
        For a negative lr or weight_decay.
    """

    def __init__(self, params: Mapping[str, FloatArray], lr: float, *,
                 weight_decay: float = 0.0, schedule: Schedule | None = None) -> None:
        if not hasattr(params, "items"):
            raise TypeError(
                f"params must be a dict name -> numpy array (e.g. model.params), "
                f"got {type(params).__name__}"
            )
        for name, value in params.items():
            if not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{name!r}] must be a float32/float64 numpy array")
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be a callable step -> factor, got {schedule!r}")
        self.params = params
        self.lr = _check_rate(lr, "lr")
        self.weight_decay = _check_rate(weight_decay, "weight_decay")
        self.schedule = schedule
        self.steps = 0
        self.state: dict[str, Any] = {}  # per-parameter buffers, created on first use

    def current_lr(self) -> float:
        """The learning rate the next step() uses.

        Returns
        -------
        float
            lr times the schedule's factor for the next update.
        """
        return self.lr * (1.0 if self.schedule is None else float(self.schedule(self.steps)))

    def step(self, grads: Mapping[str, ArrayLike]) -> float:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : dict of str to ndarray
            The gradients, with exactly the keys and shapes of params.

        Returns
        -------
        float
            The learning rate used.

        Raises
        ------
        ValueError
            For missing or unexpected keys, or a gradient of the wrong shape.
        """
        if set(grads) != set(self.params):
            missing = sorted(set(self.params) - set(grads))
            unexpected = sorted(set(grads) - set(self.params))
            raise ValueError(f"grads must have the keys of params: missing {missing}, "
                             f"unexpected {unexpected}")
        lr = self.current_lr()
        for name, param in self.params.items():
            grad = grads[name]
            if np.shape(grad) != param.shape:
                raise ValueError(
                    f"grads[{name!r}] has shape {np.shape(grad)}, expected {param.shape}"
                )
            self._update(name, param, np.asarray(grad, dtype=param.dtype), lr)
        self.steps += 1
        return lr

    def _update(self, name: str, param: FloatArray, grad: FloatArray, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD's rule (dampening 0).

    ::

        g = grad + weight_decay * p
        buf = g on the first step, else momentum * buf + g      (when momentum > 0)
        g = g + momentum * buf if nesterov else buf
        p -= lr * g

    Parameters
    ----------
    params : dict of str to ndarray
        The parameters to update in place (e.g. model.params).
    lr : float
        The learning rate.
    momentum : float, default 0.0
        >= 0.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0).
    weight_decay : float, default 0.0
        L2 penalty, added to the gradient.
    schedule : callable, optional
        step -> factor of lr.

    Raises
    ------
    ValueError
        For nesterov without momentum, or negative rates.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> params = {"w": np.ones(3)}
    >>> lc.SGD(params, lr=0.1).step({"w": np.ones(3)})
    0.1
    >>> params["w"]
    array([0.9, 0.9, 0.9])
    """

    def __init__(self, params: Mapping[str, FloatArray], lr: float, *, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0,
                 schedule: Schedule | None = None) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, schedule=schedule)
        self.momentum = _check_rate(momentum, "momentum")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _update(self, name: str, param: FloatArray, grad: FloatArray, lr: float) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            buf = self.state.get(name)
            if buf is None:
                buf = self.state[name] = grad.copy()
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= lr * grad


class Adam(Optimizer):
    """Adam, torch.optim.Adam's rule (weight decay added to the gradient, L2).

    ::

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2       (m, v start at 0)
        p -= lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)    (t = 1, 2, ...)

    Parameters
    ----------
    params : dict of str to ndarray
        The parameters to update in place (e.g. model.params).
    lr : float, default 1e-3
        The learning rate.
    betas : tuple of float, default (0.9, 0.999)
        beta1, beta2, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.0
        L2 penalty, added to the gradient.
    schedule : callable, optional
        step -> factor of lr.

    Raises
    ------
    ValueError
        For rates out of range.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> model = lc.SequenceModel(lc.LSTM(2, 4, seed=0), lc.Linear(4, 1, seed=0))
    >>> optimizer = lc.Adam(model.params, lr=1e-2)
    """

    decoupled = False

    def __init__(self, params: Mapping[str, FloatArray], lr: float = 1e-3, *,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, schedule: Schedule | None = None) -> None:
        super().__init__(params, lr, weight_decay=weight_decay, schedule=schedule)
        self.beta1 = _check_rate(betas[0], "betas[0]", 1.0)
        self.beta2 = _check_rate(betas[1], "betas[1]", 1.0)
        self.eps = _check_rate(eps, "eps")

    def _update(self, name: str, param: FloatArray, grad: FloatArray, lr: float) -> None:
        if self.weight_decay:
            if self.decoupled:
                param *= 1.0 - lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * param
        if name not in self.state:
            self.state[name] = (np.zeros_like(param), np.zeros_like(param))
        m, v = self.state[name]
        m *= self.beta1
        m += (1.0 - self.beta1) * grad
        v *= self.beta2
        v += (1.0 - self.beta2) * grad * grad
        t = self.steps + 1
        correction1 = 1.0 - self.beta1**t
        correction2 = 1.0 - self.beta2**t
        param -= (lr / correction1) * m / (np.sqrt(v) / math.sqrt(correction2) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay, torch.optim.AdamW's rule.

    ``p *= 1 - lr * weight_decay``, then the Adam step on the plain gradient.

    Parameters
    ----------
    params : dict of str to ndarray
        The parameters to update in place (e.g. model.params).
    lr : float, default 1e-3
        The learning rate.
    betas : tuple of float, default (0.9, 0.999)
        beta1, beta2, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0.01
        The decoupled decay rate.
    schedule : callable, optional
        step -> factor of lr.
    """

    decoupled = True

    def __init__(self, params: Mapping[str, FloatArray], lr: float = 1e-3, *,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, schedule: Schedule | None = None) -> None:
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         schedule=schedule)


def clip_grad_norm(grads: Mapping[str, FloatArray], max_norm: float) -> float:
    """Scale all gradients in place so their global 2-norm is at most max_norm.

    Like ``torch.nn.utils.clip_grad_norm_``, the factor is max_norm / (norm + 1e-6), applied
    only when it is below 1.

    Parameters
    ----------
    grads : dict of str to ndarray
        The gradients (e.g. model.grads), scaled in place.
    max_norm : float
        >= 0.

    Returns
    -------
    float
        The global norm before clipping.

    Raises
    ------
    ValueError
        For a negative max_norm.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> grads = {"w": np.array([3.0, 4.0])}
    >>> lc.clip_grad_norm(grads, 1.0)
    5.0
    """
    max_norm = _check_rate(max_norm, "max_norm")
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    factor = max_norm / (total + 1e-6)
    if factor < 1.0:
        for grad in grads.values():
            grad *= grad.dtype.type(factor)
    return total


def cosine_schedule(total_steps: int, warmup_steps: int = 0,
                    final_factor: float = 0.0) -> Schedule:
    """A schedule: linear warm-up, then a cosine decay.

    The factor rises linearly from 0 over warmup_steps, then follows a cosine from 1 down to
    final_factor at total_steps (and stays at final_factor after).

    Parameters
    ----------
    total_steps : int
        >= 1, the update at which the cosine ends.
    warmup_steps : int, default 0
        In [0, total_steps).
    final_factor : float, default 0.0
        The factor at and after total_steps.

    Returns
    -------
    callable
        step -> factor, for an optimizer's schedule.

    Raises
    ------
    ValueError
        For step counts out of range.

    Examples
    --------
    >>> import lstm_core as lc
    >>> schedule = lc.cosine_schedule(100, warmup_steps=10)
    >>> schedule(0), schedule(9), schedule(100)
    (0.1, 1.0, 0.0)
    """
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps < total_steps, got "
            f"total_steps={total_steps}, warmup_steps={warmup_steps}"
        )

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule


def step_schedule(every: int, gamma: float = 0.1) -> Schedule:
    """A schedule: the factor is gamma ** (step // every).

    Parameters
    ----------
    every : int
        >= 1, the updates between two decays.
    gamma : float, default 0.1
        The factor of each decay.

    Returns
    -------
    callable
        step -> factor, for an optimizer's schedule.

    Raises
    ------
    ValueError
        For every below 1.
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    return lambda step: gamma ** (step // every)
