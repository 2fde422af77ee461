"""Long-lag tasks: can a recurrent net carry information across T steps?

    results = run_task("adding100", "lstm")         # one cell on one task
    main(out_dir="long_lag_results")                # every cell and task: JSON, table, plot

Tasks (generated from fixed seeds; train / validation / test drawn independently):
  adding T (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): T steps of two
    channels, a value in U(0, 1) and a marker that is 1 at two steps (one in each half of
    the sequence); the target is the sum of the two marked values.  Predicting the mean
    gives MSE = Var(U + U) = 1/6 = 0.167.  Solved: validation MSE < 0.01.
  copy: K = 5 symbols out of 8, then `delay` blanks, a "go" marker, and the net must output
    blanks until it replays the K symbols.  Per-step cross-entropy; the best
    memoryless answer (blanks, then a guess) gives K ln 8 / steps.  Solved: 99 % of the
    replayed symbols right.

Cells: "lstm", "gru", "rnn" (tanh) with hidden sizes chosen so that the whole model (cell
plus linear head) has the parameter count of the LSTM's, the same seeds, the same data
and the fit loop with Adam.  GRU and RNN run when this build of lstm_core has lc.GRU and
lc.RNN; otherwise they are reported as not available.
"""

import json
import os
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

import lstm_core as lc
from lstm_core.demos import one_blas_thread

F32Array = NDArray[np.float32]

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
LAYER_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
SOLVED_MSE = 0.01
SOLVED_ACCURACY = 0.99

# name -> (kind, steps, size of the LSTM's hidden state, most updates per cell).  The budgets
# are numbers of updates, not seconds, so that a run's table does not depend on how fast or
# busy the machine was; they were chosen to keep the whole run near its earlier minutes
# (the runs that had time budgets spent 11,300 updates on the RNN's adding50, and 15,000 to
# 18,000 on each cell's copy task).
TASKS: dict[str, tuple[str, int, int, int]] = {
    "adding50": ("adding", 50, 32, 12000),
    "adding100": ("adding", 100, 32, 6000),
    "adding200": ("adding", 200, 32, 4000),
    "copy": ("copy", 30, 32, 16000),
}


# ----------------------------------------------------------------------------- data

def adding_problem(n: int, steps: int,
                   rng: np.random.Generator) -> tuple[F32Array, F32Array]:
    """x (n, steps, 2) float32, targets (n, 1) float32."""
    values = rng.uniform(0, 1, (n, steps))
    half = steps // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, steps, n)
    markers = np.zeros((n, steps))
    markers[np.arange(n), first] = 1
    markers[np.arange(n), second] = 1
    x = np.stack([values, markers], axis=2).astype(np.float32)
    targets = (values[np.arange(n), first] + values[np.arange(n), second])[:, None]
    return x, targets.astype(np.float32)


COPY_SYMBOLS, COPY_LENGTH = 8, 5   # labels: 0 blank, 1..8 symbols; input channel 9: "go"


def copy_memory(n: int, delay: int,
                rng: np.random.Generator) -> tuple[F32Array, NDArray[np.int64]]:
    """x (n, steps, 10) one-hot float32, labels (n, steps) int64, steps = delay + 2K."""
    K = COPY_LENGTH
    steps = delay + 2 * K
    symbols = rng.integers(1, COPY_SYMBOLS + 1, (n, K))
    inputs = np.zeros((n, steps), np.int64)              # 0 = blank
    inputs[:, :K] = symbols
    inputs[:, K + delay - 1] = COPY_SYMBOLS + 1           # "go": replay from the next step
    labels = np.zeros((n, steps), np.int64)
    labels[:, -K:] = symbols
    x = np.eye(COPY_SYMBOLS + 2, dtype=np.float32)[inputs]
    return x, labels


def make_data(task: str, n_train: int, n_val: int, n_test: int,
              seed: int) -> list[tuple[F32Array, NDArray[Any]]]:
    kind, steps = TASKS[task][:2]
    make = adding_problem if kind == "adding" else copy_memory
    data: list[tuple[F32Array, NDArray[Any]]] = [
        make(n, steps, np.random.default_rng([seed, part]))
        for part, n in enumerate((n_train, n_val, n_test))]
    return data


# ----------------------------------------------------------------------------- models

def available_cells() -> list[str]:
    return [cell for cell in GATES if hasattr(lc, LAYER_NAMES[cell])]


def parameter_count(cell: str, input_size: int, hidden_size: int, output_size: int) -> int:
    """Parameters of cell (two bias vectors, torch's layout) plus a Linear head."""
    gates = GATES[cell]
    return (gates * hidden_size * (input_size + hidden_size + 2)
            + (hidden_size + 1) * output_size)


def matched_hidden_size(cell: str, input_size: int, output_size: int, budget: int) -> int:
    """The hidden size whose model's parameter count is closest to budget."""
    return min(range(1, 4 * budget), key=lambda h: abs(
        parameter_count(cell, input_size, h, output_size) - budget))


def build_model(cell: str, input_size: int, hidden_size: int, output_size: int, output: str,
                seed: int) -> lc.SequenceModel:
    layer_class = getattr(lc, LAYER_NAMES[cell])
    options: dict[str, Any] = {"batch_first": True, "seed": seed}
    if cell == "lstm":
        options["unit_forget_bias"] = True  # the usual LSTM start: remember by default
    layer = layer_class(input_size, hidden_size, **options)
    head = lc.Linear(hidden_size, output_size, seed=seed + 1)
    return lc.SequenceModel(layer, head, output=output)


# ----------------------------------------------------------------------------- training

def copy_recall_accuracy(model: lc.SequenceModel, x: F32Array, labels: NDArray[Any]) -> float:
    """The share of replayed symbols (the last K steps) predicted right."""
    logits = lc.predict(model, x)                        # (n, steps, classes)
    return float((logits[:, -COPY_LENGTH:].argmax(-1) == labels[:, -COPY_LENGTH:]).mean())


def run_task(task: str, cell: str, *, n_train: int = 6400, n_val: int = 500,
             n_test: int = 2000, batch_size: int = 64, lr: float = 3e-3,
             max_updates: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Train one cell on one task until solved or max_updates (default: the task's budget,
    rounded up to whole epochs).

    Returns a dict: hidden size, parameters, steps (updates) to solve or None, updates run,
    test MSE (adding) or test cross-entropy and recall accuracy (copy), seconds (wall time,
    for information), the model.
    """
    kind, steps, lstm_hidden = TASKS[task][:3]
    (x_train, y_train), val, (x_test, y_test) = make_data(task, n_train, n_val, n_test, seed)
    input_size = x_train.shape[2]
    output_size = 1 if kind == "adding" else COPY_SYMBOLS + 1
    budget = parameter_count("lstm", input_size, lstm_hidden, output_size)
    hidden = lstm_hidden if cell == "lstm" else matched_hidden_size(cell, input_size,
                                                                    output_size, budget)
    model = build_model(cell, input_size, hidden, output_size,
                        "last" if kind == "adding" else "all", seed)
    loss = "mse" if kind == "adding" else "cross_entropy"
    optimizer = lc.Adam(model.params, lr=lr)
    updates_per_epoch = -(-n_train // batch_size)
    budget_updates = TASKS[task][3] if max_updates is None else max_updates
    max_epochs = max(1, -(-budget_updates // updates_per_epoch))
    started = time.perf_counter()
    solved_at: int | None = None
    curve: list[float] = []
    for epoch in range(max_epochs):
        # One epoch per call: the optimizer carries its state over, so this is one long fit
        # that can stop as soon as the task is solved.
        lc.fit(model, x_train, y_train, loss=loss, optimizer=optimizer, epochs=1,
               batch_size=batch_size, seed=seed * 1000 + epoch, clip_norm=1.0, progress=False)
        if kind == "adding":
            score = lc.evaluate(model, *val, loss="mse")["loss"]
            solved = score < SOLVED_MSE
        else:
            score = copy_recall_accuracy(model, *val)
            solved = score >= SOLVED_ACCURACY
        curve.append(score)
        if solved:
            solved_at = (epoch + 1) * updates_per_epoch
            break
    result: dict[str, Any] = {
        "task": task, "cell": cell, "steps": steps, "hidden_size": hidden,
        "parameters": int(sum(p.size for p in model.params.values())),
        "solved_at_update": solved_at, "updates": len(curve) * updates_per_epoch,
        "validation_curve": [round(float(v), 5) for v in curve],
    }
    if kind == "adding":
        result["test_mse"] = lc.evaluate(model, x_test, y_test, loss="mse")["loss"]
    else:
        result["test_cross_entropy"] = lc.evaluate(model, x_test, y_test,
                                                   loss="cross_entropy")["loss"]
        result["test_recall_accuracy"] = copy_recall_accuracy(model, x_test, y_test)
        result["memoryless_cross_entropy"] = COPY_LENGTH * np.log(COPY_SYMBOLS) / x_test.shape[1]
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["model"] = model
    return result


# ----------------------------------------------------------------------------- gradients

def hidden_gradient_norms(model: lc.SequenceModel, x: F32Array, targets: NDArray[Any],
                          distances: Sequence[int] | NDArray[np.integer[Any]]
                          ) -> NDArray[np.float64]:
    """Mean over the batch of ‖∂L/∂h_t‖ at t = T - d for each d in distances (adding task).

    ∂L/∂h_t is the gradient through h_t alone (the cell state c_t held fixed for an LSTM, as
    torch's h_t.grad): the net is rerun from step t with h_t (and c_t) as its initial state,
    and backward of the same loss gives it as the initial-state gradient.
    """
    layer, head = model.lstm, cast(lc.Linear, model.head)  # build_model's models have a head
    model.train()
    out = model(x)
    _, dout = lc.mse_loss(out, targets)
    dh_last = head.backward(dout)                     # ∂L/∂h_T (B, H)
    y, _ = layer(x)                                   # (B, T, H): h_1 .. h_T
    cells = lc.lstm_gates(layer)[0]["c"] if isinstance(layer, lc.LSTM) else None
    T = x.shape[1]
    norms: list[float] = []
    for d in distances:
        if d == 0:
            grad = dh_last
        else:
            t = T - d                                 # h_t is y[:, t - 1]; rerun steps t+1..T
            h_t = y[:, t - 1][None]
            state: Any = (h_t, cells[:, t - 1][None]) if cells is not None else h_t
            layer(np.ascontiguousarray(x[:, t:]), state)
            layer.backward(None, dh_last[None])
            grad = layer.dhx[0] if isinstance(layer.dhx, tuple) else layer.dhx
            grad = grad[0]
        norms.append(float(np.linalg.norm(grad, axis=-1).mean()))
    layer.zero_grad()
    head.zero_grad()
    return np.asarray(norms)


# ----------------------------------------------------------------------------- report

def format_table(results: Sequence[dict[str, Any]]) -> str:
    """The markdown table of a list of run_task results."""
    lines = ["| task | T | cell | hidden | params | solved at update | test metric |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        kind, steps = TASKS[r["task"]][:2]
        T: int | str = steps if kind == "adding" else f"{steps}+{2 * COPY_LENGTH}"
        if r.get("unavailable"):
            lines.append(f"| {r['task']} | {T} | {r['cell']} | – | – | "
                         f"not run: lc.{LAYER_NAMES[r['cell']]} not in this build | – |")
            continue
        solved = (f"{r['solved_at_update']}" if r["solved_at_update"] is not None
                  else f"not solved in {r['updates']}")
        if "test_mse" in r:
            metric = f"MSE {r['test_mse']:.4f} (mean: 0.167)"
        else:
            metric = (f"recall {100 * r['test_recall_accuracy']:.1f} % (chance 12.5 %), "
                      f"CE {r['test_cross_entropy']:.3f} (memoryless "
                      f"{r['memoryless_cross_entropy']:.3f})")
        lines.append(f"| {r['task']} | {T} | {r['cell']} | {r['hidden_size']} | "
                     f"{r['parameters']} | {solved} | {metric} |")
    return "\n".join(lines)


README_START = "<!-- long-lag table: written by examples/long_lag.py, do not edit by hand -->"
README_END = "<!-- end of long-lag table -->"


def replace_readme_table(readme_path: str | os.PathLike[str], table: str) -> None:
    """Put table between the README's two markers (which must exist)."""
    with open(readme_path, encoding="utf-8") as f:
        text = f.read()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme_path} lacks the long-lag table markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    with open(readme_path, "w", encoding="utf-8") as f:
        f.write(f"{head}{README_START}\n{table}\n{README_END}{tail}")


SIZES: dict[str, dict[str, int]] = {  # quick: a smoke test of every code path, seconds in total
    "full": dict(n_train=6400, n_val=500, n_test=2000),       # each task's update budget
    "quick": dict(n_train=64, n_val=32, n_test=32, max_updates=1),
}


def main(out_dir: str = "long_lag_results", *, quick: bool = False,
         cells: list[str] | None = None, tasks: list[str] | None = None,
         readme: str | os.PathLike[str] | None = None, seed: int = 0,
         verbose: bool = True) -> list[dict[str, Any]]:
    """Run every task for every cell; write results.json, table.md and gradient_norms.png
    into out_dir (and the table into readme when given); return the results."""
    size = SIZES["quick" if quick else "full"]
    cells = cells or list(GATES)
    tasks = tasks or list(TASKS)
    unknown = [c for c in cells if c not in GATES] + [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown cells or tasks {unknown}: cells {list(GATES)}, "
                         f"tasks {list(TASKS)}")
    os.makedirs(out_dir, exist_ok=True)
    present = available_cells()
    results: list[dict[str, Any]] = []
    models: dict[tuple[str, str], lc.SequenceModel] = {}
    for task in tasks:
        for cell in cells:
            if cell not in present:
                results.append({"task": task, "cell": cell, "unavailable": True})
                continue
            with one_blas_thread():
                r = run_task(task, cell, seed=seed, **size)
            models[task, cell] = r.pop("model")
            results.append(r)
            if verbose:
                print(f"{format_table([r]).splitlines()[-1]}  ({r['seconds']} s)", flush=True)

    # Gradient norms of the trained models on the longest adding task that ran.
    norms: dict[str, tuple[NDArray[Any], NDArray[np.float64]]] = {}
    adding = [t for t in tasks if TASKS[t][0] == "adding" and any(k[0] == t for k in models)]
    if adding:
        task = max(adding, key=lambda t: TASKS[t][1])
        _, _, (x_test, y_test) = make_data(task, 1, 1, 64, seed)
        T = TASKS[task][1]
        # Every 1/11th of the sequence, from the loss back to the first step.
        distances = np.unique(np.linspace(0, T - 1, 12).astype(int))
        for cell in ("rnn", "gru", "lstm"):
            if (task, cell) in models:
                trained = models[task, cell]
                # The same architecture and seed before training: where vanishing starts.
                head = cast(lc.Linear, trained.head)  # build_model's models have a head
                untrained = build_model(cell, 2, head.in_features, 1, "last", seed)
                for label, model in ((f"{cell} trained", trained), (f"{cell} init", untrained)):
                    with one_blas_thread():
                        norms[label] = (distances, hidden_gradient_norms(model, x_test, y_test,
                                                                         distances))
        gradient_report = {cell: {"distance": d.tolist(), "norm": v.tolist()}
                           for cell, (d, v) in norms.items()}
    else:
        gradient_report = {}

    table = format_table(results)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"results": results, "gradient_norms": gradient_report,
                   "sizes": size, "seed": seed,
                   "update_budgets": {t: TASKS[t][3] for t in tasks}}, f, indent=1,
                  default=float)
    with open(os.path.join(out_dir, "table.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    if norms:
        try:
            from lstm_core.plotting import plot_gradient_norms
            plot_gradient_norms(norms, path=os.path.join(out_dir, "gradient_norms.png"),
                                title=f"‖∂L/∂h_t‖ on {task}, trained and at initialisation")
        except ImportError as error:
            print(f"no gradient plot: {error}")
    if readme is not None:
        replace_readme_table(readme, table)
    if verbose:
        print("\n" + table)
        for cell, (d, v) in norms.items():
            print(f"‖∂L/∂h_t‖ {cell}: " + ", ".join(f"d={a}: {b:.2e}" for a, b in zip(d, v)))
        print(f"\nwritten: {out_dir}/results.json, table.md"
              + (", gradient_norms.png" if norms else ""))
    return results
