"""Saving and loading models; converting weights from and to Keras's layout.

    save_model(model, "model.npz")        # parameters as .npy entries, configuration as JSON
    model = load_model("model.npz")       # read with allow_pickle=False, checked entry by entry

File format: one .npz (zip) archive holding every parameter under its state_dict name and
"__config__", a 0-d unicode array with JSON {"format": "lstm_core.model", "version": 1,
"class": the model class name, "config": its constructor arguments}.  Nothing in it
is pickled, so loading never runs code.  Saving writes a temporary file in the target's folder,
fsyncs it and renames it over the target (os.replace): a crash leaves the old file or the new
one, never half of one.

Keras stores an LSTM layer as [kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)] with the
same gate order i, f, c(=g), o: the kernels are torch's weights transposed, and the one bias is
torch's b_ih + b_hh.
"""

import json
import os
import secrets
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core.embedding import Embedding, TokenSequenceModel
from lstm_core.heads import Dropout, ReLU, Sequential, Tanh, build_head_layer
from lstm_core.layers import GRU, LSTM, RNN, Linear, SequenceModel

#: A SequenceModel's head.
Head = Linear | Sequential
#: A model save_model writes and load_model returns.
Model = (LSTM | GRU | RNN | Linear | SequenceModel | Embedding | Sequential | Dropout | Tanh
         | ReLU)

# The classes a file may name, by name: nothing else is ever constructed from a file.
_RECURRENT: dict[str, type[LSTM] | type[GRU] | type[RNN]] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}

FORMAT = "lstm_core.model"
VERSION = 1
_CONFIG_KEY = "__config__"


# ----------------------------------------------------------------------------- save / load

def _describe(model: object) -> dict[str, Any]:
    """The JSON-able description of a model: class name and constructor arguments."""
    if not isinstance(model, (LSTM, GRU, RNN, Linear, SequenceModel, Embedding, Sequential,
                              Dropout, Tanh, ReLU)):
        raise TypeError(
            "model must be an lstm_core LSTM, GRU, RNN, Linear, SequenceModel, Embedding, "
            f"TokenSequenceModel, Sequential, Dropout, Tanh or ReLU, got {type(model).__name__}"
        )
    return {"format": FORMAT, "version": VERSION, "class": type(model).__name__,
            "config": model.config()}


def _build(description: object) -> Model:
    """A fresh model from _describe's output (parameters still to be loaded)."""
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ValueError(f"not an {FORMAT} configuration: {description!r:.200}")
    if description.get("version") != VERSION:
        raise ValueError(
            f"unsupported {FORMAT} version {description.get('version')!r} (this is {VERSION})"
        )
    kind = description.get("class")
    config: Any = description.get("config")
    try:
        if kind in _RECURRENT:
            return _RECURRENT[kind](**config)
        if kind == "Linear":
            return Linear(**config)
        if kind == "Embedding":
            return Embedding(**config)
        if kind in ("Tanh", "ReLU", "Dropout", "Sequential"):
            return build_head_layer(kind, config)
        if kind in ("SequenceModel", "TokenSequenceModel"):
            # files written before Sequential heads have no head_class: a Linear
            head = None if config["head"] is None else cast(Head, build_head_layer(
                config.get("head_class") or "Linear", config["head"]))
            cell = _RECURRENT[config.get("cell", "LSTM")]  # files before GRU/RNN: an LSTM
            if kind == "TokenSequenceModel":
                return TokenSequenceModel(Embedding(**config["embedding"]),
                                          cell(**config["lstm"]), head, output=config["output"])
            return SequenceModel(cell(**config["lstm"]), head, output=config["output"])
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"invalid {kind} configuration {config!r:.200}: {error}") from error
    raise ValueError(f"unknown model class {kind!r} in the configuration")


def save_model(model: Model, path: str | os.PathLike[str], *, comm: Any = None) -> None:
    """Write model's configuration and parameters to path (an .npz archive), atomically.

    The file is written under a temporary name in the same folder, flushed to disk (fsync)
    and renamed over path; the folder is then fsynced so the rename itself is durable.

    Parameters
    ----------
    model : LSTM, GRU, RNN, Linear, SequenceModel, Embedding or TokenSequenceModel
        The model to save.
    path : str or path-like
        The file to write (replaced if it exists).
    comm : mpi4py communicator, optional
        In a data-parallel run (every rank holds the same model): rank 0 writes, once, and
        every rank returns when the file is complete.

    Raises
    ------
    TypeError
        For a model of another class.
    OSError
        When the file cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> import lstm_core as lc
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> lc.save_model(lc.LSTM(2, 3, seed=0), path)
    >>> lc.load_model(path).hidden_size
    3
    """
    description = json.dumps(_describe(model))
    if comm is None:
        write_archive(path, {_CONFIG_KEY: np.array(description), **model.state_dict()},
                      "the model")
        return
    from lstm_core.distributed import Ranks
    ranks = Ranks(comm)
    error = None
    if ranks.rank == 0:
        try:
            write_archive(path, {_CONFIG_KEY: np.array(description), **model.state_dict()},
                          "the model")
        except Exception as raised:
            error = raised
    ranks.check(error, f"saving the model to {os.fspath(path)}")


def write_archive(path: str | os.PathLike[str], arrays: Mapping[str, NDArray[Any]],
                  what: str) -> None:
    """Write arrays to the .npz at path atomically (save_model's way; `what` names the
    content in the error for a missing folder)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save {what} to {path}: the folder {folder} does "
                                "not exist")
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through someone else's file; mode 0o666 lets the umask decide.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            np.savez(stream, allow_pickle=False, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_PROTOCOL = b"\x80"  # the first byte of every pickle of protocol 2 or later


def read_archive(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    """Every entry of the .npz at path, loaded with allow_pickle=False; ValueError for
    anything that is not a readable, pickle-free archive.

    The magic bytes are checked first: numpy would treat any non-zip, non-.npy file as a
    pickle.  The file is opened here, so it is closed whatever goes wrong while reading.
    """
    with open(path, "rb") as stream:
        magic = stream.read(len(_NPY_MAGIC))
        if magic.startswith(_PICKLE_PROTOCOL):
            raise ValueError(_refusal(path, "a Python pickle"))
        if magic.startswith(_NPY_MAGIC):
            raise ValueError(f"{path} holds a single .npy array, not an {FORMAT} archive (.npz)")
        if not magic.startswith(_ZIP_MAGIC):
            raise ValueError(_refusal(path, f"it starts with {magic!r}, not a zip header"))
        stream.seek(0)
        try:
            with np.load(stream, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
            raise ValueError(_refusal(path, error)) from error


def _refusal(path: str | os.PathLike[str], error: object) -> str:
    if "pickle" in str(error):
        return (f"{path} contains pickled data, which is refused: model files are read with "
                f"allow_pickle=False because unpickling can run arbitrary code ({error})")
    return f"{path} is not a readable {FORMAT} archive (corrupt or truncated?): {error}"


def load_model(path: str | os.PathLike[str]) -> Model:
    """The model saved at path by save_model.

    The file is read with allow_pickle=False, so loading never runs code.

    Parameters
    ----------
    path : str or path-like
        A file written by save_model.

    Returns
    -------
    LSTM, GRU, RNN, Linear, SequenceModel, Embedding or TokenSequenceModel
        A new model with the saved configuration and parameters.

    Raises
    ------
    ValueError
        For a file that is corrupt, truncated, pickled, lacks the configuration, or whose
        entries do not match the configuration (missing or extra keys, wrong shapes).
    TypeError
        For entries of the wrong dtype.
    FileNotFoundError
        When there is no file.
    """
    arrays = read_archive(path)
    config = arrays.pop(_CONFIG_KEY, None)
    if config is None or config.shape != () or config.dtype.kind != "U":
        raise ValueError(f"{path} has no {_CONFIG_KEY!r} entry: not an {FORMAT} archive")
    try:
        description = json.loads(str(config))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the configuration is not valid JSON: {error}") from error
    model = _build(description)
    try:
        model.load_state_dict(arrays)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{path}: {error}") from error
    return model


# ----------------------------------------------------------------------------- Keras layout

def from_keras_weights(weights: Sequence[ArrayLike], *, layer: int = 0,
                       reverse: bool = False, activation: str = "tanh",
                       recurrent_activation: str = "sigmoid") -> dict[str, NDArray[Any]]:
    """Torch-named parameters of one LSTM layer and direction from Keras's weight list.

    Merge the dicts of every layer and pass them to LSTM.load_state_dict.

    Parameters
    ----------
    weights : list of array_like
        [kernel (I, 4H), recurrent_kernel (H, 4H)] or [..., bias (4H,)] as Keras's
        layer.get_weights() returns them (for a Bidirectional wrapper, the first three are
        the forward layer's, the last three the backward layer's: pass reverse=True for
        those).
    layer : int, default 0
        The layer index k of the names.
    reverse : bool, default False
        Name them for the reverse direction ("_reverse" suffix).
    activation, recurrent_activation : str, default "tanh", "sigmoid"
        The Keras layer's own (``layer.get_config()``): the kernels compute tanh and the
        logistic sigmoid, Keras 2.3+'s defaults.  Anything else, such as Keras 1/2.0's
        default recurrent_activation="hard_sigmoid" (max(0, min(1, 0.2 x + 0.5))), is
        refused rather than silently computed as sigmoid.

    Returns
    -------
    dict of str to ndarray
        {"weight_ih_l{k}": kernel.T, "weight_hh_l{k}": recurrent_kernel.T,
        "bias_ih_l{k}": bias, "bias_hh_l{k}": zeros} (the biases only when given).

    Raises
    ------
    ValueError
        For a list of another length or arrays of inconsistent shapes.
    NotImplementedError
        For an activation or recurrent_activation the kernels do not compute.
    """
    if activation != "tanh" or recurrent_activation != "sigmoid":
        raise NotImplementedError(
            f"the Keras layer uses activation={activation!r}, recurrent_activation="
            f"{recurrent_activation!r}; lstm_core's kernels compute tanh and the logistic "
            "sigmoid (Keras's defaults since 2.3), so its weights would give another model. "
            "Retrain the Keras layer with recurrent_activation='sigmoid' before converting")
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        raise ValueError("weights must be [kernel, recurrent_kernel] or "
                         "[kernel, recurrent_kernel, bias]")
    kernel, recurrent = np.asarray(weights[0]), np.asarray(weights[1])
    if recurrent.ndim != 2 or recurrent.shape[1] != 4 * recurrent.shape[0]:
        raise ValueError(f"recurrent_kernel must have shape (H, 4H), got {recurrent.shape}")
    hidden = recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 4 * hidden:
        raise ValueError(f"kernel must have shape (I, 4H) = (I, {4 * hidden}), got {kernel.shape}")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    out: dict[str, NDArray[Any]] = {"weight_ih" + suffix: np.ascontiguousarray(kernel.T),
           "weight_hh" + suffix: np.ascontiguousarray(recurrent.T)}
    if len(weights) == 3:
        bias = np.array(weights[2])
        if bias.shape != (4 * hidden,):
            raise ValueError(f"bias must have shape (4H,) = ({4 * hidden},), got {bias.shape}")
        out["bias_ih" + suffix] = bias
        out["bias_hh" + suffix] = np.zeros_like(bias)
    return out


def to_keras_weights(state: Mapping[str, ArrayLike], *, layer: int = 0,
                     reverse: bool = False) -> list[NDArray[Any]]:
    """Keras's weight list of one LSTM layer and direction from torch-named parameters.

    Parameters
    ----------
    state : dict of str to array_like
        An LSTM's params or state_dict.
    layer : int, default 0
        The layer k.
    reverse : bool, default False
        The reverse direction's parameters.

    Returns
    -------
    list of ndarray
        [kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]; the bias is b_ih + b_hh, and
        is left out when the LSTM has no bias.

    Raises
    ------
    ValueError
        When state has no parameters for that layer and direction.
    """
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    try:
        w_ih, w_hh = np.asarray(state["weight_ih" + suffix]), np.asarray(state["weight_hh" + suffix])
    except KeyError as error:
        raise ValueError(f"state has no parameters for layer {layer}{suffix[3:]}: "
                         f"missing {error}") from error
    out = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    if "bias_ih" + suffix in state:
        out.append(np.asarray(state["bias_ih" + suffix]) + np.asarray(state["bias_hh" + suffix]))
    return out
