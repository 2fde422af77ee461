"""Figures for the demos and for looking inside a model: gate heat maps, forecasts, gradient
norms over time, loss curves.  matplotlib is optional (`pip install "lstm_core[demo]"`); it is imported
only when a function here is called.

Every function draws one figure, saves it when `path` is given, and returns the Figure.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Where a figure is saved: a file name, or None to only return the figure.
_Path = str | os.PathLike[str] | None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            'plotting needs matplotlib: pip install "lstm_core[demo]" (or pip install matplotlib)'
        ) from error
    # No display is assumed: a script or a CI job saves files, it does not open windows.
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(plt: Any, fig: Any, path: _Path) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_gates(trace: Mapping[str, ArrayLike], sample: int = 0, *,
               batch_first: bool | None = None,
               units: Sequence[int] | slice | None = None, path: _Path = None,
               title: str | None = None) -> Any:
    """Heat maps of i, f, g, o and c for one sequence of a gate trace (see lstm_core.gates).

    Parameters
    ----------
    trace : dict of str to array_like
        {"i", "f", "g", "o", "c"} -> (T, B, H) ((B, T, H) with batch_first, or (T, H)).
        A GateTrace (lstm_core.gate_trace, lstm_core.lstm_gates) says its own layout.
    sample : int, default 0
        Which sequence of the batch.
    batch_first : bool, optional
        The trace's arrays are (B, T, H).  Default: the GateTrace's layout, else False.
    units : sequence of int or slice, optional
        The hidden units to show (default all).
    path : str or path-like, optional
        Save the figure there (and close it).
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    ValueError
        When batch_first contradicts the GateTrace's layout.
    """
    layout = getattr(trace, "layout", None)
    if batch_first is None:
        batch_first = layout == "BTH"
    elif layout in ("TBH", "BTH") and batch_first != (layout == "BTH"):
        raise ValueError(f"batch_first={batch_first} contradicts the trace's layout {layout!r}: "
                         "leave batch_first out, the trace says its layout")
    plt = _pyplot()
    names = ("i", "f", "g", "o", "c")
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.6 * len(names)), sharex=True)
    for ax, name in zip(axes, names):
        a = np.asarray(trace[name])
        if a.ndim == 3:
            a = a[sample] if batch_first else a[:, sample]
        if units is not None:
            a = a[:, units]
        # Gates live in [0, 1] (g in [-1, 1]); c is unbounded, so it gets its own scale.
        limits = {"g": (-1, 1), "c": (None, None)}.get(name, (0, 1))
        image = ax.imshow(a.T, aspect="auto", interpolation="nearest", cmap="viridis",
                          vmin=limits[0], vmax=limits[1])
        ax.set_ylabel(f"{name}\nunit")
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[-1].set_xlabel("time step")
    axes[0].set_title(title or f"gates and cell state of sequence {sample}")
    return _finish(plt, fig, path)


def plot_forecast(x_axis: ArrayLike, actual: ArrayLike, forecasts: Mapping[str, ArrayLike], *,
                  path: _Path = None, title: str | None = None, ylabel: str | None = None,
                  history: tuple[ArrayLike, ArrayLike] | None = None) -> Any:
    """A series and one or more forecasts of it.

    Parameters
    ----------
    x_axis : array_like, shape (N,)
        The abscissae of the forecast window.
    actual : array_like, shape (N,)
        The true values.
    forecasts : dict of str to array_like
        {label: (N,) array}.
    path : str or path-like, optional
        Save the figure there (and close it).
    title : str, optional
        The figure's title.
    ylabel : str, optional
        The y axis label.
    history : tuple (x_axis, values), optional
        Drawn before the forecast window in grey.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    if history is not None:
        ax.plot(history[0], history[1], color="0.6", lw=1, label="earlier data")
    ax.plot(x_axis, actual, color="black", lw=2, label="actual")
    for label, values in forecasts.items():
        ax.plot(x_axis, values, lw=1.5, label=label)
    ax.legend(loc="upper left", fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _finish(plt, fig, path)


def plot_gradient_norms(norms: Mapping[str, tuple[ArrayLike, ArrayLike]], *,
                        path: _Path = None, title: str | None = None) -> Any:
    """‖∂L/∂h_t‖ against the distance T - t to the loss, log scale, one line per model.

    Parameters
    ----------
    norms : dict of str to tuple
        {label: (distances (K,), norms (K,))}.
    path : str or path-like, optional
        Save the figure there (and close it).
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (distance, value) in norms.items():
        ax.semilogy(distance, np.maximum(value, 1e-30), marker="o", ms=3, label=label)
    ax.set_xlabel("distance to the loss, T - t (steps)")
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return _finish(plt, fig, path)


def plot_history(history: Mapping[str, Sequence[float]], *, path: _Path = None,
                 title: str | None = None, log_scale: bool = False) -> Any:
    """The loss curves of a training run: what lc.fit returned, epoch by epoch.

    The left panel shows "loss" and, if present, "val_loss", with the best epoch (early
    stopping's, ``history.best_epoch``) marked; a right panel shows the other metrics (each
    with its val_ twin), if any; "lr" is left out.  Epochs count from 1, as fit's lines do.

    Parameters
    ----------
    history : History or dict of str to list of float
        lc.fit's History, or its ``.history`` dict ("loss" required).
    path : str or path-like, optional
        Save the figure there (and close it).
    title : str, optional
        The figure's title.
    log_scale : bool, default False
        A logarithmic loss axis (losses that fall by orders of magnitude).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For a history without "loss", or with no epoch.
    ImportError
        When matplotlib is not installed.
    """
    curves = {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}
    if "loss" not in curves or curves["loss"].size == 0:
        raise ValueError("history must hold a non-empty 'loss' list (what lc.fit returns)")
    plt = _pyplot()
    metrics = [k for k in curves if k not in ("loss", "val_loss", "lr")
               and not k.startswith("val_")]
    fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(10 if metrics else 6, 3.8),
                             squeeze=False)
    ax = axes[0][0]
    for name in ("loss", "val_loss"):
        if name in curves:
            ax.plot(np.arange(1, curves[name].size + 1), curves[name], marker="o", ms=3,
                    label=name)
    best = getattr(history, "best_epoch", None)
    if best is not None:
        ax.axvline(best, color="0.5", ls="--", lw=1, label=f"best epoch ({best})")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    if metrics:
        side = axes[0][1]
        for name in metrics:
            for key in (name, "val_" + name):
                if key in curves:
                    side.plot(np.arange(1, curves[key].size + 1), curves[key], marker="o",
                              ms=3, label=key)
        side.set_xlabel("epoch")
        side.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(plt, fig, path)
