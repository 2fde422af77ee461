"""Losses: each returns (loss, gradient of the loss with respect to the prediction).

    loss, dpred = mse_loss(pred, target, mask=None)
    loss, dlogits = cross_entropy_loss(logits, labels, mask=None)

The loss is a Python float, the mean over the counted items; the gradient has the
prediction's shape and dtype.  `mask` marks which items count (padding steps of a
variable-length batch do not): for MSE it broadcasts against pred, for cross-entropy against
labels; True/nonzero counts.  A mask that selects nothing gives loss 0 and a zero gradient.
"""

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core._typing import FloatArray

#: A loss: (prediction, target, mask or None) -> (loss, gradient with respect to prediction).
LossFunction: TypeAlias = Callable[[FloatArray, ArrayLike, ArrayLike | None],
                                   tuple[float, FloatArray]]


def _prediction(pred: ArrayLike, name: str) -> FloatArray:
    array = np.asarray(pred)
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {array.dtype}")
    return array


def _weights(mask: ArrayLike | None,
             shape: tuple[int, ...]) -> tuple[NDArray[np.float64] | None, float]:
    """A float64 0/1 array of `shape` from mask (None: all ones), and the count it selects."""
    if mask is None:
        return None, float(np.prod(shape, dtype=np.float64))
    mask_array = np.asarray(mask)
    try:
        weights = np.broadcast_to(mask_array != 0, shape).astype(np.float64)
    except ValueError as error:
        raise ValueError(
            f"mask of shape {mask_array.shape} does not broadcast to {shape}") from error
    return weights, float(weights.sum())


def mse_loss(pred: ArrayLike, target: ArrayLike,
             mask: ArrayLike | None = None) -> tuple[float, FloatArray]:
    """Mean squared error over the counted elements: mean((pred - target)**2).

    Parameters
    ----------
    pred : array_like
        Predictions, any shape, float32 or float64.
    target : array_like
        Targets, the shape of pred.
    mask : array_like, optional
        Broadcasts against pred; nonzero marks the elements that count.  None: all count.

    Returns
    -------
    loss : float
        The mean over the counted elements (0.0 when none counts).
    dpred : ndarray
        2 (pred - target) / count on counted elements, zero elsewhere; pred's shape and
        dtype.

    Raises
    ------
    TypeError
        For pred that is not float32/float64.
    ValueError
        For a target of another shape, or a mask that does not broadcast.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> loss, dpred = lc.mse_loss(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> loss, dpred
    (2.0, array([0., 2.]))
    """
    pred = _prediction(pred, "pred")
    target = np.asarray(target)
    if target.shape != pred.shape:
        hint = ""
        if (np.issubdtype(np.asarray(target).dtype, np.integer)
                and target.shape == pred.shape[:-1]):
            hint = ("; integer class labels of one fewer axis than pred look like "
                    "classification: use loss=\"cross_entropy\" (cross_entropy_loss)")
        raise ValueError(f"target must have the shape of pred, {pred.shape}, got "
                         f"{target.shape}{hint}")
    diff = pred.astype(np.float64) - target
    weights, count = _weights(mask, pred.shape)
    if weights is not None:
        diff *= weights
    if count == 0:
        return 0.0, np.zeros_like(pred)
    loss = float(np.sum(diff * diff) / count)
    return loss, (2.0 / count * diff).astype(pred.dtype)


def log_softmax(logits: ArrayLike) -> NDArray[np.float64]:
    """log(softmax(logits)) over the last axis, stable for any finite logits (float64).

    Parameters
    ----------
    logits : array_like, shape (..., C)

    Returns
    -------
    ndarray, shape (..., C)
        float64.
    """
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    result: NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def cross_entropy_loss(logits: ArrayLike, labels: ArrayLike,
                       mask: ArrayLike | None = None) -> tuple[float, FloatArray]:
    """Softmax cross-entropy with integer class labels, averaged over the counted items.

    Parameters
    ----------
    logits : array_like, shape (..., C)
        float32 or float64.
    labels : array_like of int, shape (...)
        Class indices in [0, C).
    mask : array_like, optional
        Broadcasts against labels; nonzero marks the items that count.  None: all count.

    Returns
    -------
    loss : float
        The mean over the counted items (0.0 when none counts).
    dlogits : ndarray, shape (..., C)
        (softmax(logits) - onehot(labels)) / count on counted items; logits' dtype.

    Raises
    ------
    TypeError
        For logits that are not float32/float64, or labels that are not integers.
    ValueError
        For labels of the wrong shape or out of range, or a mask that does not broadcast.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> loss, dlogits = lc.cross_entropy_loss(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6)
    1.386294
    """
    logits = _prediction(logits, "logits")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must hold integers, got dtype {labels.dtype}")
    if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have shape logits.shape[:-1] = {logits.shape[:-1]}, got {labels.shape}"
        )
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"labels must lie in [0, {classes}), got values {labels.min()}..{labels.max()}"
        )
    weights, count = _weights(mask, labels.shape)
    if count == 0:
        return 0.0, np.zeros_like(logits)
    log_p = log_softmax(logits)                                     # (..., C)
    picked = np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]  # (...)
    grad = np.exp(log_p)
    np.put_along_axis(grad, labels[..., None],
                      np.take_along_axis(grad, labels[..., None], axis=-1) - 1.0, axis=-1)
    if weights is not None:
        picked = picked * weights
        grad *= weights[..., None]
    loss = float(-picked.sum() / count)
    return loss, (grad / count).astype(logits.dtype)


LOSSES: dict[str, LossFunction] = {"mse": mse_loss, "cross_entropy": cross_entropy_loss}


def get_loss(loss: str | LossFunction) -> LossFunction:
    """A loss function from a name in LOSSES or a callable (pred, target, mask) -> (loss, grad)."""
    if callable(loss):
        return loss
    if loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
