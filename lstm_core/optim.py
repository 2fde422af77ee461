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

import numpy as np


def _check_rate(value, name, upper=None):
    value = float(value)
    if not value >= 0.0 or (upper is not None and not value < upper):
        bound = f"[0, {upper})" if upper is not None else "[0, inf)"
        raise ValueError(f"{name} must lie in {bound}, got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters, the step count and the schedule; subclasses define
    _update(name, param, grad, lr), which modifies param in place."""

    def __init__(self, params, lr, *, weight_decay=0.0, schedule=None):
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
        self.state = {}  # per-parameter buffers, created on first use

    def current_lr(self):
        """The learning rate the next step() uses."""
        return self.lr * (1.0 if self.schedule is None else float(self.schedule(self.steps)))

    def step(self, grads):
        """Update every parameter from grads (same keys and shapes); returns the lr used."""
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

    def _update(self, name, param, grad, lr):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD's rule (dampening 0):

        g = grad + weight_decay * p
        buf = g on the first step, else momentum * buf + g      (when momentum > 0)
        g = g + momentum * buf if nesterov else buf
        p -= lr * g
    """

    def __init__(self, params, lr, *, momentum=0.0, nesterov=False, weight_decay=0.0,
                 schedule=None):
        super().__init__(params, lr, weight_decay=weight_decay, schedule=schedule)
        self.momentum = _check_rate(momentum, "momentum")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _update(self, name, param, grad, lr):
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
    """Adam, torch.optim.Adam's rule (weight decay added to the gradient, L2):

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2       (m, v start at 0)
        p -= lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)    (t = 1, 2, ...)
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 schedule=None):
        super().__init__(params, lr, weight_decay=weight_decay, schedule=schedule)
        self.beta1 = _check_rate(betas[0], "betas[0]", 1.0)
        self.beta2 = _check_rate(betas[1], "betas[1]", 1.0)
        self.eps = _check_rate(eps, "eps")

    def _update(self, name, param, grad, lr):
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
    """Adam with decoupled weight decay, torch.optim.AdamW's rule:
    p *= 1 - lr * weight_decay, then the Adam step on the plain gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 schedule=None):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         schedule=schedule)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so their global 2-norm is at most max_norm.

    Returns the norm before clipping (a float).  Like torch.nn.utils.clip_grad_norm_, the
    factor is max_norm / (norm + 1e-6), applied only when it is below 1.
    """
    max_norm = _check_rate(max_norm, "max_norm")
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    factor = max_norm / (total + 1e-6)
    if factor < 1.0:
        for grad in grads.values():
            grad *= grad.dtype.type(factor)
    return total


def cosine_schedule(total_steps, warmup_steps=0, final_factor=0.0):
    """A schedule: linear warm-up from 0 over warmup_steps, then a cosine from 1 down to
    final_factor at total_steps (and final_factor after)."""
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps < total_steps, got "
            f"total_steps={total_steps}, warmup_steps={warmup_steps}"
        )

    def schedule(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule


def step_schedule(every, gamma=0.1):
    """A schedule: the factor is gamma ** (step // every)."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    return lambda step: gamma ** (step // every)
