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

import copy
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core import checkpoint as checkpoints
from lstm_core.distributed import Ranks
from lstm_core._typing import FloatArray, IntArray
from lstm_core.layers import LSTM, SequenceModel, check_lengths
from lstm_core.losses import LossFunction, get_loss
from lstm_core.optim import Adam, Optimizer, clip_grad_norm

#: (x, y, lengths) of one batch, in the model's layout.
_Batch = tuple[FloatArray, NDArray[Any] | None, NDArray[np.int64] | None]


class History(dict[str, list[float]]):
    """What fit returns: metric name -> list of one value per epoch.

    The metrics are "loss" (the mean over the epoch's counted targets, padding steps
    excluded, each batch's loss as it was trained), the metrics fit was asked for
    ("accuracy" by default with integer labels, "mae"), the same prefixed with ``val_`` for the
    validation data, and "lr" (the learning rate at the start of the epoch).

    Attributes
    ----------
    history : dict of str to list of float
        The same lists as a plain dict (as Keras's History.history).
    best_epoch : int or None
        The epoch early stopping judged best, counted from 1 as the progress lines count
        them, or None without patience.
    stopped_early : bool
        Whether early stopping, or a callback, ended the training.
    """

    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def history(self) -> dict[str, list[float]]:
        return {name: list(values) for name, values in self.items()}


class Callback(Protocol):
    """What fit calls, if an object has it (every method is optional):

    on_epoch_end(epoch, logs)
        After each epoch, epoch counted from 1, logs its metrics (a fresh dict, the values
        just appended to the History).  Returning True stops the training after this epoch.
    on_train_end(history)
        Once, with the History fit is about to return (after the best epoch was restored).
    """


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

    def subset(self, index: IntArray) -> "_Data":
        """The sequences in index, as a dataset of its own."""
        part = copy.copy(self)
        part.x, part.y, part.lengths = self.batch(index)
        part.size = len(index)
        return part

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
    """What fit shows: one line per epoch that stays on screen (epoch counted from 1, its
    metrics, its time), with a tqdm bar over the epoch's batches while it runs (tqdm when
    installed, else the lines alone), on stderr; and a line when early stopping or a callback
    ends the training.  Mode False shows nothing, "plain" the lines without a bar."""

    def __init__(self, mode: bool | str, batches: int, epochs: int) -> None:
        self.shown, self.batches, self.epochs = mode is not False, batches, epochs
        self.tqdm: Any = None
        self.bar: Any = None
        self.started = 0.0
        if mode is True:
            try:
                from tqdm import tqdm  # optional dependency, imported only when used
            except ImportError:
                pass
            else:
                self.tqdm = tqdm

    def epoch_start(self, epoch: int) -> None:
        self.started = time.perf_counter()
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.batches, unit="batch", leave=False,
                                 desc=f"epoch {epoch + 1}/{self.epochs}")

    def batch_done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_done(self, epoch: int, metrics: dict[str, float]) -> None:
        text = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        seconds = time.perf_counter() - self.started
        self.say(f"epoch {epoch + 1}/{self.epochs}  {text}  ({seconds:.1f} s)")

    def say(self, line: str) -> None:
        self.close()
        if self.tqdm is not None:
            self.tqdm.write(line, file=sys.stderr)
        elif self.shown:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _hits(out: FloatArray, labels: NDArray[Any],
          mask: NDArray[np.bool_] | None) -> tuple[float, float]:
    """(correct predictions, counted targets) of logits out against integer labels."""
    hits = (out.argmax(axis=-1) == labels).astype(np.float64)
    counted = np.ones_like(hits) if mask is None else np.broadcast_to(mask, hits.shape)
    return float((hits * counted).sum()), float(counted.sum())


#: The metrics fit and evaluate compute on request, besides the loss.
METRICS = ("accuracy", "mae")


def _metrics(names: Sequence[str] | None, targets: NDArray[Any]) -> tuple[str, ...]:
    """The checked metric names: by default "accuracy" for integer labels, nothing else."""
    labels = targets.dtype.kind in "iu"
    if names is None:
        return ("accuracy",) if labels else ()
    if isinstance(names, str):
        raise TypeError(f"metrics must be a list of names, got the string {names!r}")
    chosen = tuple(names)
    unknown = [name for name in chosen if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
    if "accuracy" in chosen and not labels:
        raise ValueError("metric 'accuracy' needs integer class labels as targets")
    if "mae" in chosen and labels:
        raise ValueError("metric 'mae' needs float targets (integer labels are classes)")
    return chosen


def _abs_errors(out: FloatArray, targets: NDArray[Any],
                mask: NDArray[np.bool_] | None) -> tuple[float, float]:
    """(sum of |out - target| over counted elements, their number)."""
    errors = np.abs(out.astype(np.float64) - targets)
    counted = np.ones(errors.shape) if mask is None else np.broadcast_to(mask, errors.shape)
    return float((errors * counted).sum()), float(counted.sum())


class _Totals:
    """Running sums of one epoch: each batch's loss weighted by its number of counted targets
    (valid steps times sequences for per-step targets), and the sums and counts behind the
    accuracy and the mean absolute error."""

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.loss = self.weight = self.hits = self.counted = 0.0
        self.abs_error = self.elements = 0.0

    def add(self, out: FloatArray, targets: NDArray[Any],
            mask: NDArray[np.bool_] | None) -> None:
        """The metrics' sums of one batch."""
        if "accuracy" in self.metrics:
            hits, counted = _hits(out, targets, mask)
            self.hits, self.counted = self.hits + hits, self.counted + counted
        if "mae" in self.metrics:
            error, elements = _abs_errors(out, targets, mask)
            self.abs_error, self.elements = self.abs_error + error, self.elements + elements

    def values(self) -> dict[str, float]:
        """The metrics of the batches added so far."""
        found = {"accuracy": self.hits / max(1.0, self.counted),
                 "mae": self.abs_error / max(1.0, self.elements)}
        return {name: found[name] for name in self.metrics}


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
                hx: Any = None, ranks: Ranks | None = None) -> Any:
    """One forward, backward and update on batch (x, y, lengths); returns the final state.
    With ranks, batch is this rank's shard of the global batch: the gradients are summed over
    the ranks, each weighted by its share of the batch's counted targets, before the update
    (the one-process update on the whole batch, to round-off)."""
    x, targets, lengths = batch
    y = cast(NDArray[Any], targets)  # fit's data always has targets
    model.zero_grad()
    mask = data.loss_mask(lengths, x.shape[data.time_axis], y.ndim)
    # the loss is a mean over the batch's counted targets: weight it by their number, so the
    # epoch's loss is the mean over all its targets (chunks of truncated BPTT may be shorter)
    if mask is not None:
        weight = int(np.count_nonzero(mask))
    elif data.per_step:
        weight = x.shape[data.batch_axis] * x.shape[data.time_axis]
    else:
        weight = x.shape[data.batch_axis]
    loss, out, state, error = 0.0, None, hx, None
    try:
        if ranks is None or x.shape[data.batch_axis] > 0:  # a rank's shard may be empty
            out, state = model(x, hx, lengths, return_state=True)
            loss, grad = loss_fn(out, y, mask)
            model.backward(grad)
    except Exception as raised:
        if ranks is None:
            raise
        error = raised
    total = float(weight)
    if ranks is not None:
        total = ranks.check(error, "in a training step", [float(weight)])[0]
        # sum over the ranks of (share of the targets) x (the shard's mean gradient); the
        # shards' losses ride along in the same buffer
        loss = ranks.sum_gradients(model.grads, weight / max(total, 1.0),
                                   [loss * weight])[0] / max(total, 1.0)
    _check_finite(loss, model.grads)
    if clip_norm is not None:
        clip_grad_norm(model.grads, clip_norm)
    optimizer.step(model.grads)
    totals.loss += loss * total
    totals.weight += total
    if out is not None:
        totals.add(out, y, mask)
    return state


def fit(model: SequenceModel, x: ArrayLike, y: ArrayLike, *, loss: str | LossFunction = "mse",
        optimizer: Optimizer | None = None, epochs: int = 10, batch_size: int = 32,
        lengths: ArrayLike | None = None, validation_data: Sequence[Any] | None = None,
        shuffle: bool = True, seed: int | None = None, patience: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, clip_norm: float | None = None,
        tbptt: int | None = None, progress: bool | Literal["plain"] = True,
        metrics: Sequence[str] | None = None, validation_split: float = 0.0,
        callbacks: Sequence[Callback] = (), checkpoint: str | os.PathLike[str] | None = None,
        resume: str | os.PathLike[str] | None = None, comm: Any = None) -> History:
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
    validation_split : float, default 0.0
        In [0, 1): instead of validation_data, hold out the last fraction of the sequences
        (as Keras: the first int(N * (1 - validation_split)) train), before any shuffling.
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
        On stderr, one line per epoch that stays (epoch from 1, its metrics, its time) and a
        line when training stops early: True adds a tqdm bar over each epoch's batches (when
        tqdm is installed), "plain" shows the lines alone, False nothing.
    metrics : list of str, optional
        Besides the loss, "accuracy" (integer labels) and "mae" (mean absolute error, float
        targets), for the training batches and the validation data; default: "accuracy"
        with integer labels, else none.
    callbacks : list, optional
        Objects with any of on_epoch_end(epoch, logs) and on_train_end(history) (see
        Callback); on_epoch_end returning True stops the training.
    checkpoint : path, optional
        After every epoch, write the whole state of the run there (model, optimizer,
        random generators, epoch, History, early stopping), atomically: a run killed at any
        moment loses at most the epoch in progress (lstm_core.checkpoint).
    resume : path, optional
        Continue the run saved there by checkpoint=: the same model (class and
        configuration), optimizer class and run (data size, batch size, shuffling and seed,
        loss, tbptt, validation, patience) are required, and the result equals, bit for bit,
        that of the run had it never stopped.  ``epochs`` may be raised to train further.
        Pass the same path as checkpoint= to keep saving.
    comm : mpi4py communicator, optional
        Data-parallel training over its ranks (lstm_core.distributed): every rank calls fit
        with the same model and the same arguments; each global batch is split into one
        contiguous shard per rank, each rank runs forward and backward on its shard only, one
        Allreduce sums the gradients weighted by each shard's share of the counted targets,
        and every rank makes the same update: the result equals one-process training on the
        same batches to round-off (dropout masks aside: each rank draws its own).  Rank 0's
        parameters are broadcast first, after the ranks have checked that they hold the same
        model and settings (ValueError otherwise).  Progress shows on rank 0 only, the
        validation metrics and early stopping are rank 0's, checkpoints are written by rank 0.
        An exception on one rank stops every rank (RankFailed on the others, naming it).

    Returns
    -------
    History
        The metrics of every epoch.

    Raises
    ------
    TypeError
        For a model that is not a SequenceModel, non-float x, or malformed validation_data.
    ValueError
        For wrong shapes, non-positive counts, an unknown loss, progress or metric, tbptt
        with output="last", validation_split out of range or together with validation_data,
        an optimizer made over other arrays than this model's parameters, or a resume file
        that is not a checkpoint of this model and run (the message says what differs).
    FileNotFoundError
        For resume= naming no file.
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
    chosen = _metrics(metrics, cast(NDArray[Any], data.y))
    hooks = _callback_hooks(callbacks)
    val = None
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data must be (x_val, y_val) or (x_val, y_val, lengths)")
        val_lengths = validation_data[2] if len(validation_data) == 3 else None
        val = _Data(model, validation_data[0], validation_data[1], val_lengths, name="x_val")
    elif validation_split:
        data, val = _split(data, validation_split)
    optimizer = Adam(model.params) if optimizer is None else optimizer
    _check_optimizer(optimizer, model)
    ranks = None if comm is None else Ranks(comm)
    root = ranks is None or ranks.rank == 0
    if not root:
        progress = False
    rng = np.random.default_rng(seed)
    history = History()
    best, waited = np.inf, 0
    best_state: dict[str, FloatArray] | None = None
    fingerprint = {"sequences": data.size, "validation": 0 if val is None else val.size,
                   "batch_size": batch_size, "shuffle": bool(shuffle), "seed": seed,
                   "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
                   "tbptt": tbptt, "patience": patience, "min_delta": min_delta,
                   "clip_norm": clip_norm, "metrics": list(chosen)}
    first_epoch, finished = 0, False
    if ranks is not None:
        ranks.agree({"model": model.config(), "optimizer": type(optimizer).__name__,
                     "shapes": {k: list(v.shape) for k, v in model.params.items()},
                     "epochs": epochs, **fingerprint})
        ranks.broadcast(model.params)
    if resume is not None:
        saved = checkpoints.load(resume, model, optimizer, fingerprint, rng)
        first_epoch, finished = saved.epochs_done, saved.finished
        best, waited, best_state = saved.best, saved.waited, saved.best_state
        history.update({k: list(v) for k, v in saved.history["metrics"].items()})
        history.best_epoch = saved.history["best_epoch"]
        history.stopped_early = saved.history["stopped_early"]
    display = _Progress(progress, -(-data.size // batch_size), epochs)
    monitored_name = "val_loss" if val is not None else "loss"
    model.train()
    try:
        for epoch in range(first_epoch, 0 if finished else epochs):
            lr = optimizer.current_lr()
            totals = _Totals(chosen)
            display.epoch_start(epoch)
            order = _batches(data.size, batch_size, rng if shuffle else None)
            for number, index in enumerate(order, start=1):
                batch = data.batch(index if ranks is None else ranks.shard(index))
                try:
                    if tbptt is None:
                        _train_step(model, loss_fn, optimizer, data, batch, totals, clip_norm,
                                    ranks=ranks)
                    else:
                        state = None  # each batch starts from zeros; chunks carry it on
                        for start in range(0, data.steps, tbptt):
                            chunk = data.chunk(*batch, start, min(start + tbptt, data.steps))
                            state = _train_step(model, loss_fn, optimizer, data, chunk, totals,
                                                clip_norm, state, ranks)
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
            if ranks is not None:  # the metrics' sums over every rank's shards
                (totals.hits, totals.counted, totals.abs_error,
                 totals.elements) = ranks.sum([totals.hits, totals.counted, totals.abs_error,
                                               totals.elements])
            logs = {"loss": totals.loss / max(totals.weight, 1), **totals.values()}
            if val is not None:
                val_y = cast(NDArray[Any], val.y)  # validation data always has targets
                for k, v in evaluate(model, val.x, val_y, loss=loss, lengths=val.lengths,
                                     metrics=chosen).items():
                    logs["val_" + k] = v
            logs["lr"] = lr
            if ranks is not None:  # every rank decides on rank 0's numbers
                logs = ranks.from_root(logs)
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            display.epoch_done(epoch, logs)
            stop = any([bool(hook(epoch + 1, dict(logs))) for hook in hooks["on_epoch_end"]])
            if ranks is not None:
                stop = ranks.from_root(stop)  # rank 0's callbacks decide
            if stop:
                history.stopped_early = True
                display.say(f"stopped by a callback after epoch {epoch + 1}")
            if patience is not None:
                monitored = logs[monitored_name]
                if monitored < best - min_delta:
                    best, waited, history.best_epoch = monitored, 0, epoch + 1
                    best_state = model.state_dict()
                else:
                    waited += 1
                    if waited >= patience and not stop:
                        history.stopped_early = stop = True
                        display.say(f"early stopping: {monitored_name} did not improve by more "
                                    f"than {min_delta:g} for {patience} epochs; stopped after "
                                    f"epoch {epoch + 1}")
            if checkpoint is not None and root:
                checkpoints.save(checkpoint, model, optimizer, fingerprint, epoch + 1, stop,
                                 {"metrics": history.history, "best_epoch": history.best_epoch,
                                  "stopped_early": history.stopped_early},
                                 best, waited, best_state, rng)
            if stop:
                break
    finally:
        display.close()
        model.train()
    if patience is not None and restore_best and best_state is not None:
        model.load_state_dict(best_state)
        if history.best_epoch != len(history["loss"]):
            display.say(f"restored the parameters of epoch {history.best_epoch} "
                        f"({monitored_name} {best:.4g})")
    for hook in hooks["on_train_end"]:
        hook(history)
    return history


def _callback_hooks(callbacks: Sequence[Callback]) -> dict[str, list[Any]]:
    """The callbacks' methods by name; every callback must have at least one."""
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise TypeError("callbacks must be a list of objects with on_epoch_end and/or "
                        f"on_train_end, got {type(callbacks).__name__}")
    hooks: dict[str, list[Any]] = {"on_epoch_end": [], "on_train_end": []}
    for callback in callbacks:
        found = [name for name in hooks if callable(getattr(callback, name, None))]
        if not found:
            raise TypeError(f"callback {callback!r} has neither on_epoch_end nor on_train_end")
        for name in found:
            hooks[name].append(getattr(callback, name))
    return hooks


def _split(data: _Data, fraction: float) -> tuple[_Data, _Data]:
    """(training, validation): the last `fraction` of the sequences held out, as Keras."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0 < fraction < 1):
        raise ValueError(f"validation_split must be in (0, 1), got {fraction!r}")
    split_at = int(data.size * (1.0 - fraction))
    if split_at < 1 or split_at >= data.size:
        raise ValueError(f"validation_split={fraction} of {data.size} sequences leaves "
                         f"{split_at} to train on and {data.size - split_at} to validate")
    return data.subset(np.arange(split_at)), data.subset(np.arange(split_at, data.size))


def predict(model: SequenceModel, x: ArrayLike, *, lengths: ArrayLike | None = None,
            batch_size: int | None = None, hx: Any = None, return_state: bool = False,
            comm: Any = None) -> Any:
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
    comm : mpi4py communicator, optional
        Sharded inference: each rank computes a contiguous shard of the sequences and every
        rank returns the whole output (and state), the same as one process's.

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
    if comm is not None:
        return _sharded_predict(model, data, Ranks(comm), batch_size, hx, return_state)
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


def _sharded_predict(model: SequenceModel, data: _Data, ranks: Ranks, batch_size: int | None,
                     hx: Any, return_state: bool) -> Any:
    """predict over ranks: each rank computes a contiguous shard of the sequences, and every
    rank returns the whole output (and state), gathered in rank order."""
    index = ranks.shard(np.arange(data.size))
    part = data.subset(index)
    shard_hx = None
    if hx is not None:
        shard_hx = _state_like([np.take(a, index, axis=1) for a in _state_arrays(hx)], model)
    out, state = predict(model, part.x, lengths=part.lengths, batch_size=batch_size,
                         hx=shard_hx, return_state=True)
    out = ranks.gather(out, data.batch_axis if model.output == "all" else 0)
    if return_state:
        return out, _state_like([ranks.gather(a, 1) for a in _state_arrays(state)], model)
    return out


def evaluate(model: SequenceModel, x: ArrayLike, y: ArrayLike, *,
             loss: str | LossFunction = "mse", lengths: ArrayLike | None = None,
             batch_size: int | None = None,
             metrics: Sequence[str] | None = None, comm: Any = None) -> dict[str, float]:
    """The loss (and metrics) of the model on (x, y) in eval mode.

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
    metrics : list of str, optional
        As fit's: "accuracy", "mae"; default "accuracy" with integer labels.
    comm : mpi4py communicator, optional
        The outputs computed sharded over its ranks, as predict's; every rank returns the
        same numbers.

    Returns
    -------
    dict of str to float
        {"loss": the mean over every counted target} and each metric.

    Raises
    ------
    TypeError
        For a model that is not a SequenceModel or non-float x.
    ValueError
        For wrong shapes, an unknown loss or metric.
    """
    _check_model(model)
    loss_fn = get_loss(loss)
    data = _Data(model, x, y, lengths)
    chosen = _metrics(metrics, cast(NDArray[Any], data.y))
    out = predict(model, data.x, lengths=data.lengths, batch_size=batch_size, comm=comm)
    targets = cast(NDArray[Any], data.y)  # given: evaluate's y is required
    mask = data.loss_mask(data.lengths, data.steps, targets.ndim)
    value, _ = loss_fn(out, targets, mask)
    totals = _Totals(chosen)
    totals.add(out, targets, mask)
    return {"loss": value, **totals.values()}
