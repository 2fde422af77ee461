"""How a training run is saved after every epoch and resumed: lc.fit(..., checkpoint=path)
and lc.fit(..., resume=path).

A checkpoint is one .npz archive, written atomically as save_model writes (a temporary file,
fsync, rename), holding everything the rest of the run depends on:

    "__checkpoint__"   JSON: format, version, the model's description (class and
                       configuration), the run's fingerprint (what must not change between
                       the runs), the epochs done, whether the run has finished, the History,
                       the early-stopping state, the optimizer's class, step count and
                       buffer layout, and the state of every random generator (fit's
                       shuffling, the recurrent stacks' and the Dropout layers' masks)
    "param/<name>"     the model's parameters
    "best/<name>"      the best epoch's parameters (early stopping with restore_best)
    "optim/<name>/<i>" the optimizer's buffers (SGD's momentum, Adam's m and v)

Nothing is pickled.  Resuming checks the format, the model and the fingerprint, and refuses
anything else with a ValueError that says what differs, so that a resumed run is the run that
was interrupted: the same parameters, bit for bit, as if it had never stopped.
"""

import json
import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from lstm_core.io import _describe, read_archive, write_archive
from lstm_core.optim import Optimizer

FORMAT = "lstm_core.checkpoint"
VERSION = 1
_KEY = "__checkpoint__"


class Resumed(NamedTuple):
    """What fit needs to continue a run: the epochs done, whether it had finished, the
    history (as saved by History.to_json), the early-stopping state and the best epoch's
    parameters (or None)."""

    epochs_done: int
    finished: bool
    history: dict[str, Any]
    best: float
    waited: int
    best_state: dict[str, NDArray[Any]] | None


def generators(model: object) -> dict[str, np.random.Generator]:
    """Every numpy Generator the model draws from (dropout masks), by attribute path, in a
    fixed order: the recurrent stacks' rng, the Dropout layers' _rng, through SequenceModel,
    TokenSequenceModel and Sequential."""
    found: dict[str, np.random.Generator] = {}

    def walk(obj: object, path: str) -> None:
        for name, value in sorted(vars(obj).items()):
            if isinstance(value, np.random.Generator):
                found[f"{path}{name}"] = value
            elif name in ("lstm", "head", "embedding") and value is not None:
                walk(value, f"{path}{name}.")
            elif name == "modules" and isinstance(value, list):
                for i, layer in enumerate(value):
                    walk(layer, f"{path}{name}.{i}.")

    walk(model, "")
    return found


def _optimizer_arrays(optimizer: Optimizer) -> tuple[dict[str, int], dict[str, NDArray[Any]]]:
    """({param name: number of buffers}, {"optim/<name>/<i>": buffer})."""
    layout: dict[str, int] = {}
    arrays: dict[str, NDArray[Any]] = {}
    for name, buffers in optimizer.state.items():
        parts = buffers if isinstance(buffers, tuple) else (buffers,)
        layout[name] = len(parts)
        for i, part in enumerate(parts):
            arrays[f"optim/{name}/{i}"] = np.asarray(part)
    return layout, arrays


def save(path: str | os.PathLike[str], model: Any, optimizer: Optimizer,
         fingerprint: Mapping[str, Any], epochs_done: int, finished: bool,
         history: dict[str, Any], best: float, waited: int,
         best_state: Mapping[str, NDArray[Any]] | None, shuffle_rng: np.random.Generator
         ) -> None:
    """Write the state of a run after `epochs_done` epochs to path, atomically."""
    layout, optim_arrays = _optimizer_arrays(optimizer)
    rngs = {"fit": shuffle_rng.bit_generator.state,
            **{k: g.bit_generator.state for k, g in generators(model).items()}}
    description = {
        "format": FORMAT, "version": VERSION, "model": _describe(model),
        "fingerprint": dict(fingerprint), "epochs_done": epochs_done, "finished": finished,
        "history": history, "best": None if math.isinf(best) else best, "waited": waited,
        "optimizer": {"class": type(optimizer).__name__, "steps": optimizer.steps,
                      "buffers": layout},
        "rngs": rngs,
    }
    arrays: dict[str, NDArray[Any]] = {_KEY: np.array(json.dumps(description))}
    arrays.update({f"param/{k}": v for k, v in model.state_dict().items()})
    if best_state is not None:
        arrays.update({f"best/{k}": np.asarray(v) for k, v in best_state.items()})
    arrays.update(optim_arrays)
    write_archive(path, arrays, "the checkpoint")


def _refuse(path: str | os.PathLike[str], why: str) -> ValueError:
    return ValueError(f"cannot resume from {os.fspath(path)}: {why}")


def _differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return [f"{k}: {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


def load(path: str | os.PathLike[str], model: Any, optimizer: Optimizer,
         fingerprint: Mapping[str, Any], shuffle_rng: np.random.Generator) -> Resumed:
    """Put the run saved at path back into model, optimizer and the generators; the rest
    for fit.  ValueError for a file that is not such a checkpoint, or one written for another
    model, optimizer or run; FileNotFoundError when there is no file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)} to resume from (a first "
                                "run passes checkpoint= alone)")
    try:
        arrays = read_archive(path)
    except ValueError as error:
        raise _refuse(path, f"not a readable {FORMAT} file ({error})") from None
    try:
        description = json.loads(str(arrays[_KEY][()]))
        if description.get("format") != FORMAT:
            raise _refuse(path, f"not a {FORMAT} file")
        if description.get("version") != VERSION:
            raise _refuse(path, f"written by format version {description.get('version')}; "
                                f"this lstm_core reads version {VERSION} (upgrade lstm_core)")
        if description["model"] != _describe(model):
            saved_model, now_model = description["model"], _describe(model)
            diffs = (_differences(saved_model["config"], now_model["config"])
                     if saved_model["class"] == now_model["class"]
                     else [f"a {saved_model['class']}, not a {now_model['class']}"])
            raise _refuse(path, "written for another model: " + "; ".join(diffs))
        changed = _differences(description["fingerprint"], fingerprint)
        if changed:
            raise _refuse(path, "written by another run: " + "; ".join(changed))
        saved_optimizer = description["optimizer"]
        if saved_optimizer["class"] != type(optimizer).__name__:
            raise _refuse(path, f"written with the optimizer {saved_optimizer['class']}, "
                                f"not {type(optimizer).__name__}")
        params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
        best_state = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
        state: dict[str, Any] = {}
        for name, count in saved_optimizer["buffers"].items():
            parts = tuple(arrays[f"optim/{name}/{i}"] for i in range(count))
            state[name] = parts if count > 1 else parts[0]
        model_rngs = generators(model)
        rngs = description["rngs"]
        if set(rngs) != {"fit", *model_rngs}:
            raise _refuse(path, "its random generators do not match the model's")
    except KeyError as error:
        raise _refuse(path, f"an entry is missing ({error}): the file is damaged") from None
    for name, buffers in state.items():
        param = optimizer.params.get(name)
        for part in buffers if isinstance(buffers, tuple) else (buffers,):
            if param is None or part.shape != param.shape or part.dtype != param.dtype:
                raise _refuse(path, f"the optimizer's buffer of {name} does not fit the model")
    model.load_state_dict(params)
    optimizer.state = {k: tuple(p.copy() for p in v) if isinstance(v, tuple) else v.copy()
                       for k, v in state.items()}
    optimizer.steps = int(saved_optimizer["steps"])
    shuffle_rng.bit_generator.state = rngs["fit"]
    for name, generator in model_rngs.items():
        generator.bit_generator.state = rngs[name]
    best = description["best"]
    return Resumed(int(description["epochs_done"]), bool(description["finished"]),
                   description["history"], math.inf if best is None else float(best),
                   int(description["waited"]), best_state or None)
