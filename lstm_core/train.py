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

import numpy as np

from lstm_core.layers import LSTM, SequenceModel, check_lengths
from lstm_core.losses import get_loss
from lstm_core.optim import Adam, clip_grad_norm


class History(dict):
    """Metric name -> list of one value per epoch: "loss" (the mean over the epoch's counted
    targets, padding steps excluded, each batch's loss as it was trained), "val_loss",
    "accuracy" and "val_accuracy" (integer labels), "lr" (the learning rate at the start of
    the epoch).  Attributes: best_epoch (0-based, the epoch early stopping judged best, or
    None without patience), stopped_early (bool)."""

    best_epoch = None
    stopped_early = False


class _Data:
    """One dataset: x, targets and lengths in the model's layout, sliced by sequence."""

    def __init__(self, model, x, y, lengths=None, name="x"):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floats, got dtype {x.dtype}")
        if x.ndim != 3:
            layout = "(N, T, I)" if model.batch_first else "(T, N, I)"
            raise ValueError(f"{name} must be 3-D {layout}, got shape {x.shape}")
        self.x = x.astype(model.dtype, copy=False)
        self.batch_axis = 0 if model.batch_first else 1
        self.time_axis = 1 - self.batch_axis
        self.size = x.shape[self.batch_axis]
        self.steps = x.shape[self.time_axis]
        self.per_step = model.output == "all"
        self.y = None
        if y is not None:
            y = np.asarray(y)
            if y.dtype.kind == "f":
                y = y.astype(model.dtype, copy=False)
            self.y_batch_axis = self.batch_axis if self.per_step else 0
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

    def batch(self, index):
        """(x, y, lengths) of the sequences in index."""
        x = np.take(self.x, index, axis=self.batch_axis)
        y = None if self.y is None else np.take(self.y, index, axis=self.y_batch_axis)
        lengths = None if self.lengths is None else self.lengths[index]
        return x, y, lengths

    def chunk(self, x, y, lengths, start, stop):
        """Steps [start, stop) of a batch, for truncated BPTT; lengths clipped to the chunk."""
        steps = [slice(None)] * 3
        steps[self.time_axis] = slice(start, stop)
        y_steps = tuple(steps[:y.ndim]) if y is not None else None
        if lengths is not None:
            lengths = np.clip(lengths - start, 0, stop - start)
        return x[tuple(steps)], (None if y is None else y[y_steps]), lengths

    def loss_mask(self, lengths, steps, target_ndim):
        """Which targets count: None, or for per-step targets a mask of the valid steps,
        (T, N) or (N, T) with trailing axes to broadcast against the targets."""
        if lengths is None or not self.per_step:
            return None
        valid = np.arange(steps)[:, None] < lengths[None, :]  # (T, N)
        if not self.batch_axis:
            valid = valid.T
        return valid.reshape(valid.shape + (1,) * (target_ndim - 2))


def _check_model(model):
    if not isinstance(model, SequenceModel):
        raise TypeError(
            "model must be an lstm_core.SequenceModel (recurrent stack + head), "
            f"got {type(model).__name__}"
        )


def _state_arrays(state):
    """The arrays of a recurrent state: (h, c) of an LSTM, or the h of a GRU or RNN."""
    return list(state) if isinstance(state, tuple) else [state]


def _state_like(arrays, model):
    """A state of model's recurrent stack from its arrays (the inverse of _state_arrays)."""
    return tuple(arrays) if isinstance(model.lstm, LSTM) else arrays[0]


def _batches(size, batch_size, rng=None):
    order = np.arange(size) if rng is None else rng.permutation(size)
    return [order[i:i + batch_size] for i in range(0, size, batch_size)]


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _Progress:
    """A progress display: tqdm when installed (a bar over all batches), else one plain line
    per epoch on stderr; mode False shows nothing, "plain" forces the plain lines."""

    def __init__(self, mode, total, epochs):
        self.bar, self.plain, self.epochs = None, mode == "plain", epochs
        if mode is True:
            try:
                from tqdm import tqdm  # optional dependency, imported only when used
            except ImportError:
                self.plain = True
            else:
                self.bar = tqdm(total=total, unit="batch", leave=False)

    def batch_done(self):
        if self.bar is not None:
            self.bar.update(1)

    def epoch_done(self, epoch, metrics):
        text = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        if self.bar is not None:
            self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.epochs} {text}")
        elif self.plain:
            print(f"epoch {epoch + 1}/{self.epochs} {text}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _hits(out, labels, mask):
    """(correct predictions, counted targets) of logits out against integer labels."""
    hits = (out.argmax(axis=-1) == labels).astype(np.float64)
    counted = np.ones_like(hits) if mask is None else np.broadcast_to(mask, hits.shape)
    return float((hits * counted).sum()), float(counted.sum())


class _Totals:
    """Running sums of one epoch: each batch's loss weighted by its number of counted targets
    (valid steps times sequences for per-step targets), and the hits and counts behind the
    accuracy."""

    def __init__(self):
        self.loss = self.weight = self.hits = self.counted = 0.0


def _train_step(model, loss_fn, optimizer, data, batch, totals, clip_norm, hx=None):
    """One forward, backward and update on batch (x, y, lengths); returns the final state."""
    x, y, lengths = batch
    model.zero_grad()
    out, state = model(x, hx, lengths, return_state=True)
    mask = data.loss_mask(lengths, x.shape[data.time_axis], y.ndim)
    loss, grad = loss_fn(out, y, mask)
    model.backward(grad)
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


def fit(model, x, y, *, loss="mse", optimizer=None, epochs=10, batch_size=32, lengths=None,
        validation_data=None, shuffle=True, seed=None, patience=None, min_delta=0.0,
        restore_best=True, clip_norm=None, tbptt=None, progress=True):
    """Train `model` on (x, y) with mini-batches; returns a History.

    loss: "mse", "cross_entropy" or a callable (pred, target, mask) -> (loss, dpred).
    optimizer: an lstm_core optimizer over model.params (default Adam(lr=1e-3)).
    shuffle: a new permutation of the sequences every epoch, from np.random.default_rng(seed).
    validation_data: (x_val, y_val) or (x_val, y_val, lengths_val), evaluated after every epoch
    in eval mode.  patience: stop after that many epochs without an improvement larger than
    min_delta of val_loss (of loss without validation data); restore_best then puts back the
    best epoch's parameters.  clip_norm: clip the global gradient norm before every update.
    tbptt: truncated backpropagation through time for long series (output="all" only): each
    batch is cut into chunks of tbptt steps, one update per chunk, the LSTM state carried from
    chunk to chunk and gradients stopped at chunk borders.
    progress: True (tqdm if installed, else plain lines on stderr), "plain", or False.
    The model is left in training mode.
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
        val = _Data(model, *validation_data, name="x_val")
    optimizer = Adam(model.params) if optimizer is None else optimizer
    rng = np.random.default_rng(seed)
    history = History()
    best, best_state, waited = np.inf, None, 0
    batches_per_epoch = -(-data.size // batch_size)
    display = _Progress(progress, epochs * batches_per_epoch, epochs)
    model.train()
    try:
        for epoch in range(epochs):
            lr = optimizer.current_lr()
            totals = _Totals()
            for index in _batches(data.size, batch_size, rng if shuffle else None):
                batch = data.batch(index)
                if tbptt is None:
                    _train_step(model, loss_fn, optimizer, data, batch, totals, clip_norm)
                else:
                    state = None  # each batch starts from zeros; chunks carry it on
                    for start in range(0, data.steps, tbptt):
                        chunk = data.chunk(*batch, start, min(start + tbptt, data.steps))
                        state = _train_step(model, loss_fn, optimizer, data, chunk, totals,
                                            clip_norm, state)
                display.batch_done()
            metrics = {"loss": totals.loss / max(totals.weight, 1)}
            if totals.counted:
                metrics["accuracy"] = totals.hits / totals.counted
            if val is not None:
                for k, v in evaluate(model, val.x, val.y, loss=loss, lengths=val.lengths).items():
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


def predict(model, x, *, lengths=None, batch_size=None, hx=None, return_state=False):
    """The model's output for x in eval mode (no dropout, no caches); the model's mode is
    restored afterwards.

    batch_size: run that many sequences at a time (None: all at once).  hx (the stack's initial
    state: (h0, c0) for an LSTM, h0 for a GRU or RNN) and return_state=True give stateful
    inference: feed a long series chunk by chunk, passing the returned state as the next
    chunk's hx, and the outputs equal those of one call.
    """
    _check_model(model)
    data = _Data(model, x, None, lengths)
    if batch_size is None:
        batch_size = max(1, data.size)
    batch_size = _positive(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    try:
        outs, states = [], []
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


def evaluate(model, x, y, *, loss="mse", lengths=None, batch_size=None):
    """{"loss": ...} of the model on (x, y) in eval mode, the mean over every counted target
    (padding steps excluded); with integer labels also "accuracy"."""
    _check_model(model)
    loss_fn = get_loss(loss)
    data = _Data(model, x, y, lengths)
    out = predict(model, data.x, lengths=data.lengths, batch_size=batch_size)
    mask = data.loss_mask(data.lengths, data.steps, data.y.ndim)
    value, _ = loss_fn(out, data.y, mask)
    metrics = {"loss": value}
    if data.y.dtype.kind in "iu":
        hits, counted = _hits(out, data.y, mask)
        metrics["accuracy"] = hits / max(1.0, counted)
    return metrics
