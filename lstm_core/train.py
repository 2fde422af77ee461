"""Training and inference loops for a SequenceModel: fit, predict, evaluate.

    history = fit(model, x, y, loss="mse", optimizer=Adam(model.params, lr=1e-2),
                  epochs=20, batch_size=32, validation_data=(x_val, y_val), patience=3, seed=0)
    out = predict(model, x)
    metrics = evaluate(model, x, y, loss="mse")

Data layout follows the model's LSTM: x is (T, N, I), or (N, T, I) when batch_first, N the
number of sequences.  Targets: for output="last" one row per sequence, (N, O) for MSE or (N,)
integer labels for cross-entropy; for output="all" one per step, laid out like x ((T, N, O) or
(T, N) labels; batch-first (N, T, ...)).  lengths (N,) gives each sequence's length; padding
steps are left out of the loss.  Float data is cast to the model's dtype.
"""

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core._typing import FloatArray, IntArray
from lstm_core.layers import LSTM, SequenceModel, check_lengths
from lstm_core.losses import LossFunction, get_loss
from lstm_core.optim import Adam, Optimizer, clip_grad_norm

#: (x, y, lengths) of one batch, in the model's layout.
_Batch = tuple[FloatArray, NDArray[Any] | None, NDArray[np.int64] | None]


class History(dict[str, list[float]]):
    """What fit returns: metric name -> list of one value per epoch.

    The metrics are "loss" (the mean over the epoch's counted targets, padding steps
    excluded, each batch's loss as it was trained), "val_loss", "accuracy" and
    "val_accuracy" (integer labels), "lr" (the learning rate at the start of the epoch).

    Attributes
    ----------
    best_epoch : int or None
        0-based, the epoch early stopping judged best, or None without patience.
    stopped_early : bool
        Whether early stopping ended the training.
    """

    best_epoch: int | None = None
    stopped_early: bool = False


class _Data:
    """One dataset: x, targets and lengths in the model's layout, sliced by sequence."""

    def __init__(self, model: SequenceModel, x: ArrayLike, y: ArrayLike | None,
                 lengths: ArrayLike | None = None, name: str = "x") -> None:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floats, got dtype {x.dtype}")
        if x.ndim != 3:
            layout = "(N, T, I)" if model.batch_first else "(T, N, I)"
            raise ValueError(f"{name} must be 3-D {layout}, got shape {x.shape}")
        self.x: FloatArray = x.astype(model.dtype, copy=False)
        self.batch_axis = 0 if model.batch_first else 1
        self.time_axis = 1 - self.batch_axis
        self.size: int = x.shape[self.batch_axis]
        self.steps: int = x.shape[self.time_axis]
        self.per_step = model.output == "all"
        self.y: NDArray[Any] | None = None
        if y is not None:
            y = np.asarray(y)
            if y.dtype.kind == "f":
                y = y.astype(model.dtype, copy=False)
            self.y_batch_axis = self.batch_axis if self.per_step else 0
            lead: tuple[int, ...]
            if self.per_step:
                lead = (self.steps, self.size) if self.batch_axis else (self.size, self.steps)
                what = "(T, N)" if self.batch_axis else "(N, T)"
            else:
                lead, what = (self.size,), "(N,)"
            if y.shape[:len(lead)] != lead:
                raise ValueError(f"targets for {name} must have leading axes {what} = {lead}, "
                                 f"got shape {y.shape}")
            self.y = y
        self.lengths = check_lengths(lengths, self.steps, self.size)

    def batch(self, index: IntArray) -> _Batch:
        """(x, y, lengths) of the sequences in index."""
        x = np.take(self.x, index, axis=self.batch_axis)
        y = None if self.y is None else np.take(self.y, index, axis=self.y_batch_axis)
        lengths = None if self.lengths is None else self.lengths[index]
        return x, y, lengths

    def chunk(self, x: FloatArray, y: NDArray[Any] | None, lengths: NDArray[np.int64] | None,
              start: int, stop: int) -> _Batch:
        """Steps [start, stop) of a batch, for truncated BPTT; lengths clipped to the chunk."""
        steps = [slice(None)] * 3
        steps[self.time_axis] = slice(start, stop)
        y_steps = tuple(steps[:y.ndim]) if y is not None else None
        if lengths is not None:
            lengths = np.clip(lengths - start, 0, stop - start)
        return x[tuple(steps)], (None if y is None else y[y_steps]), lengths

    def loss_mask(self, lengths: NDArray[np.int64] | None, steps: int,
                  target_ndim: int) -> NDArray[np.bool_] | None:
        """Which targets count: None, or for per-step targets a mask of the valid steps,
        (T, N) or (N, T) with trailing axes to broadcast against the targets."""
        if lengths is None or not self.per_step:
            return None
        valid = np.arange(steps)[:, None] < lengths[None, :]  # (T, N)
        if not self.batch_axis:
            valid = valid.T
        return valid.reshape(valid.shape + (1,) * (target_ndim - 2))


def _check_model(model: object) -> None:
    if not isinstance(model, SequenceModel):
        raise TypeError(
            "model must be an lstm_core.SequenceModel (recurrent stack + head), "
            f"got {type(model).__name__}"
        )


def _state_arrays(state: Any) -> list[FloatArray]:
    """The arrays of a recurrent state: (h, c) of an LSTM, or the h of a GRU or RNN."""
    return list(state) if isinstance(state, tuple) else [state]


def _state_like(arrays: Sequence[FloatArray], model: SequenceModel) -> Any:
    """A state of model's recurrent stack from its arrays (the inverse of _state_arrays)."""
    return tuple(arrays) if isinstance(model.lstm, LSTM) else arrays[0]


def _batches(size: int, batch_size: int,
             rng: np.random.Generator | None = None) -> list[IntArray]:
    order = np.arange(size) if rng is None else rng.permutation(size)
    return [order[i:i + batch_size] for i in range(0, size, batch_size)]


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _Progress:
    """A progress display: tqdm when installed (a bar over all batches), else one plain line
    per epoch on stderr; mode False shows nothing, "plain" forces the plain lines."""

    def __init__(self, mode: bool | str, total: int, epochs: int) -> None:
        self.bar: Any = None
        self.plain, self.epochs = mode == "plain", epochs
        if mode is True:
            try:
                from tqdm import tqdm  # optional dependency, imported only when used
            except ImportError:
                self.plain = True
            else:
                self.bar = tqdm(total=total, unit="batch", leave=False)

    def batch_done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_done(self, epoch: int, metrics: dict[str, float]) -> None:
        text = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        if self.bar is not None:
            self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs} {text}")
        elif self.plain:
            print(f"epoch {epoch + 1}/{self.epochs} {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hits(out: FloatArray, labels: NDArray[Any],
          mask: NDArray[np.bool_] | None) -> tuple[float, float]:
    """(correct predictions, counted targets) of logits out against integer labels."""
    hits = (out.argmax(axis=-1) == labels).astype(np.float64)
    counted = np.ones_like(hits) if mask is None else np.broadcast_to(mask, hits.shape)
    return float((hits * counted).sum()), float(counted.sum())


class _Totals:
    """Running sums of one epoch: each batch's loss weighted by its number of counted targets
    (valid steps times sequences for per-step targets), and the hits and counts behind the
    accuracy."""

    def __init__(self) -> None:
        self.loss = self.weight = self.hits = self.counted = 0.0


class _NonFinite(Exception):
    """A batch's loss or gradient is not finite (fit turns it into FloatingPointError)."""


def _check_finite(loss: float, grads: Mapping[str, FloatArray]) -> None:
    """Raise _NonFinite before an update that would make the parameters non-finite."""
    if not np.isfinite(loss):
        raise _NonFinite(f"the loss is {loss}")
    for name, g in grads.items():
        if not np.isfinite(np.sum(g, dtype=np.float64)) and not np.all(np.isfinite(g)):
            raise _NonFinite(f"the gradient of {name} is not finite")


def _check_optimizer(optimizer: Optimizer, model: SequenceModel) -> None:
    """The optimizer must update this model's own parameter arrays, all of them."""
    params = getattr(optimizer, "params", None)
    own = model.params
    if (not isinstance(params, Mapping) or set(params) != set(own)
            or any(params[name] is not own[name] for name in own)):
        raise ValueError(
            "optimizer does not update this model's parameters: make it from this model, "
            "e.g. lc.Adam(model.params)"
        )


def _train_step(model: SequenceModel, loss_fn: LossFunction, optimizer: Optimizer,
                data: _Data, batch: _Batch, totals: _Totals, clip_norm: float | None,
                hx: Any = None) -> Any:
    """One forward, backward and update on batch (x, y, lengths); returns the final state."""
    x, targets, lengths = batch
    y = cast(NDArray[Any], targets)  # fit's data always has targets
    model.zero_grad()
    out, state = model(x, hx, lengths, return_state=True)
    mask = data.loss_mask(lengths, x.shape[data.time_axis], y.ndim)
    loss, grad = loss_fn(out, y, mask)
    model.backward(grad)
    _check_finite(loss, model.grads)
    if clip_norm is not None:
        clip_grad_norm(model.grads, clip_norm)
    optimizer.step(model.grads)
    # the loss is a mean over the batch's counted targets: weight it by their number, so the
    # epoch's loss is the mean over all its targets (chunks of truncated BPTT may be shorter)
    if mask is not None:
        weight = int(np.count_nonzero(mask))
    elif data.per_step:
        weight = x.shape[data.batch_axis] * x.shape[data.time_axis]
    else:
        weight = x.shape[data.batch_axis]
    totals.loss += loss * weight
    totals.weight += weight
    if y.dtype.kind in "iu":
        hits, counted = _hits(out, y, mask)
        totals.hits, totals.counted = totals.hits + hits, totals.counted + counted
    return state


def fit(model: SequenceModel, x: ArrayLike, y: ArrayLike, *, loss: str | LossFunction = "mse",
        optimizer: Optimizer | None = None, epochs: int = 10, batch_size: int = 32,
        lengths: ArrayLike | None = None, validation_data: Sequence[Any] | None = None,
        shuffle: bool = True, seed: int | None = None, patience: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, clip_norm: float | None = None,
        tbptt: int | None = None, progress: bool | Literal["plain"] = True) -> History:
    """Train `model` on (x, y) with mini-batches.

    Data layout follows the model's stack: x is (T, N, I), or (N, T, I) when batch_first.
    Float data is cast to the model's dtype.  The model is left in training mode.

    Parameters
    ----------
    model : SequenceModel
        The model to train, in place.
    x : array_like
        The input sequences, floats.
    y : array_like
        Targets: for output="last" one row per sequence, (N, O) for MSE or (N,) integer
        labels for cross-entropy; for output="all" one per step, laid out like x.
    loss : str or callable, default "mse"
        "mse", "cross_entropy" or a callable (pred, target, mask) -> (loss, dpred).
    optimizer : Optimizer, optional
        An lstm_core optimizer over model.params (default Adam(lr=1e-3)).
    epochs : int, default 10
        The most passes over the data.
    batch_size : int, default 32
        Sequences per update.
    lengths : array_like of int, shape (N,), optional
        Each sequence's length; padding steps are left out of the loss.
    validation_data : tuple, optional
        (x_val, y_val) or (x_val, y_val, lengths_val), evaluated after every epoch in eval
        mode.
    shuffle : bool, default True
        A new permutation of the sequences every epoch, from np.random.default_rng(seed).
    seed : int, optional
        Seed of the shuffling.
    patience : int, optional
        Stop after that many epochs without an improvement larger than min_delta of
        val_loss (of loss without validation data).
    min_delta : float, default 0.0
        The smallest improvement that counts.
    restore_best : bool, default True
        With patience, put back the best epoch's parameters at the end.
    clip_norm : float, optional
        Clip the global gradient norm before every update.
    tbptt : int, optional
        Truncated backpropagation through time for long series (output="all" only): each
        batch is cut into chunks of tbptt steps, one update per chunk, the state carried
        from chunk to chunk and gradients stopped at chunk borders.
    progress : bool or "plain", default True
        True (tqdm if installed, else plain lines on stderr), "plain", or False.

    Returns
    -------
    History
        The metrics of every epoch.

    Raises
    ------
    TypeError
        For a model that is not a SequenceModel, non-float x, or malformed validation_data.
    ValueError
        For wrong shapes, non-positive counts, an unknown loss or progress, tbptt with
        output="last", or an optimizer made over other arrays than this model's parameters.
    FloatingPointError
        When a batch's loss or gradient is not finite (NaN or infinite): training stops
        before that batch's update, naming the epoch and the batch; the parameters keep their
        last finite values, or the best epoch's with patience and restore_best.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((10, 16, 2)).astype(np.float32)
    >>> y = x.sum(axis=(0, 2))[:, None]
    >>> model = lc.SequenceModel(lc.LSTM(2, 8, seed=0), lc.Linear(8, 1, seed=0))
    >>> history = lc.fit(model, x, y, epochs=2, batch_size=8, progress=False)
    >>> len(history["loss"])
    2
    """
    _check_model(model)
    loss_fn = get_loss(loss)
    epochs = _positive(epochs, "epochs")
    batch_size = _positive(batch_size, "batch_size")
    if tbptt is not None:
        tbptt = _positive(tbptt, "tbptt")
        if model.output != "all":
            raise ValueError("tbptt needs per-step targets: a model with output='all'")
    if progress not in (True, False, "plain"):
        raise ValueError(f"progress must be True, False or 'plain', got {progress!r}")
    data = _Data(model, x, y, lengths)
    if data.size == 0:
        raise ValueError("x holds no sequences")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data must be (x_val, y_val) or (x_val, y_val, lengths)")
        val_lengths = validation_data[2] if len(validation_data) == 3 else None
        val = _Data(model, validation_data[0], validation_data[1], val_lengths, name="x_val")
    optimizer = Adam(model.params) if optimizer is None else optimizer
    _check_optimizer(optimizer, model)
    rng = np.random.default_rng(seed)
    history = History()
    best, waited = np.inf, 0
    best_state: dict[str, FloatArray] | None = None
    batches_per_epoch = -(-data.size // batch_size)
    display = _Progress(progress, epochs * batches_per_epoch, epochs)
    model.train()
    try:
        for epoch in range(epochs):
            lr = optimizer.current_lr()
            totals = _Totals()
            order = _batches(data.size, batch_size, rng if shuffle else None)
            for number, index in enumerate(order, start=1):
                batch = data.batch(index)
                try:
                    if tbptt is None:
                        _train_step(model, loss_fn, optimizer, data, batch, totals, clip_norm)
                    else:
                        state = None  # each batch starts from zeros; chunks carry it on
                        for start in range(0, data.steps, tbptt):
                            chunk = data.chunk(*batch, start, min(start + tbptt, data.steps))
                            state = _train_step(model, loss_fn, optimizer, data, chunk, totals,
                                                clip_norm, state)
                except _NonFinite as error:
                    restored = patience is not None and restore_best and best_state is not None
                    if restored:
                        model.load_state_dict(cast(dict[str, FloatArray], best_state))
                    kept = "the best epoch's values" if restored else "their values before it"
                    raise FloatingPointError(
                        f"{error} at epoch {epoch + 1}, batch {number} of {len(order)}: "
                        f"training stopped and the parameters keep {kept} (lower the learning "
                        "rate, clip the gradients with clip_norm, or check the data)"
                    ) from None
                display.batch_done()
            metrics = {"loss": totals.loss / max(totals.weight, 1)}
            if totals.counted:
                metrics["accuracy"] = totals.hits / totals.counted
            if val is not None:
                val_y = cast(NDArray[Any], val.y)  # validation_data always has targets
                for k, v in evaluate(model, val.x, val_y, loss=loss,
                                     lengths=val.lengths).items():
                    metrics["val_" + k] = v
            metrics["lr"] = lr
            for k, v in metrics.items():
                history.setdefault(k, []).append(v)
            display.epoch_done(epoch, metrics)

            if patience is not None:
                monitored = metrics["val_loss" if val is not None else "loss"]
                if monitored < best - min_delta:
                    best, waited, history.best_epoch = monitored, 0, epoch
                    best_state = model.state_dict()
                else:
                    waited += 1
                    if waited >= patience:
                        history.stopped_early = True
                        break
    finally:
        display.close()
        model.train()
    if patience is not None and restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


def predict(model: SequenceModel, x: ArrayLike, *, lengths: ArrayLike | None = None,
            batch_size: int | None = None, hx: Any = None, return_state: bool = False) -> Any:
    """The model's output for x in eval mode (no dropout, no caches).

    The model's mode is restored afterwards.  hx and return_state=True give stateful
    inference: feed a long series chunk by chunk, passing the returned state as the next
    chunk's hx, and the outputs equal those of one call.

    Parameters
    ----------
    model : SequenceModel
        The model.
    x : array_like
        (T, N, I), or (N, T, I) when batch_first; floats.
    lengths : array_like of int, shape (N,), optional
        Each sequence's length.
    batch_size : int, optional
        Run that many sequences at a time (None: all at once).
    hx : optional
        The stack's initial state: (h0, c0) for an LSTM, h0 for a GRU or RNN.
    return_state : bool, default False
        Also return the stack's final state.

    Returns
    -------
    out : ndarray
        The model's output for every sequence.
    state : tuple of ndarray or ndarray
        Only with return_state=True: the stack's final state.

    Raises
    ------
    TypeError
        For a model that is not a SequenceModel or non-float x.
    ValueError
        For wrong shapes or a non-positive batch_size.
    """
    _check_model(model)
    data = _Data(model, x, None, lengths)
    if batch_size is None:
        batch_size = max(1, data.size)
    batch_size = _positive(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    outs: list[FloatArray] = []
    states: list[list[FloatArray]] = []
    try:
        for index in _batches(data.size, batch_size) or [np.arange(0)]:  # N = 0: one empty batch
            xb, _, lb = data.batch(index)
            hb = None
            if hx is not None:
                hb = _state_like([np.take(a, index, axis=1) for a in _state_arrays(hx)], model)
            out, state = model(xb, hb, lb, return_state=True)
            outs.append(out)
            states.append(_state_arrays(state))
    finally:
        model.train(was_training)
    out_axis = data.batch_axis if model.output == "all" else 0
    out = np.concatenate(outs, axis=out_axis)
    if return_state:
        # the batch axis of a state is axis 1: (layers * directions, B, H)
        return out, _state_like([np.concatenate(parts, axis=1) for parts in zip(*states)], model)
    return out


def evaluate(model: SequenceModel, x: ArrayLike, y: ArrayLike, *,
             loss: str | LossFunction = "mse", lengths: ArrayLike | None = None,
             batch_size: int | None = None) -> dict[str, float]:
    """The loss (and accuracy) of the model on (x, y) in eval mode.

    Parameters
    ----------
    model : SequenceModel
        The model.
    x : array_like
        (T, N, I), or (N, T, I) when batch_first; floats.
    y : array_like
        Targets, as fit takes them.
    loss : str or callable, default "mse"
        As fit's.
    lengths : array_like of int, shape (N,), optional
        Each sequence's length; padding steps are excluded.
    batch_size : int, optional
        Run that many sequences at a time (None: all at once).

    Returns
    -------
    dict of str to float
        {"loss": the mean over every counted target}, with integer labels also "accuracy".

    Raises
    ------
    TypeError
        For a model that is not a SequenceModel or non-float x.
    ValueError
        For wrong shapes or an unknown loss.
    """
    _check_model(model)
    loss_fn = get_loss(loss)
    data = _Data(model, x, y, lengths)
    out = predict(model, data.x, lengths=data.lengths, batch_size=batch_size)
    targets = cast(NDArray[Any], data.y)  # given: evaluate's y is required
    mask = data.loss_mask(data.lengths, data.steps, targets.ndim)
    value, _ = loss_fn(out, targets, mask)
    metrics = {"loss": value}
    if targets.dtype.kind in "iu":
        hits, counted = _hits(out, targets, mask)
        metrics["accuracy"] = hits / max(1.0, counted)
    return metrics
