"""save_model / load_model (round trip, atomic writes, refused files) and Keras weights."""

import json
import os
import pickle

import numpy as np
import pytest

import lstm_core as lc
import lstm_core.io
from lstm_problems import assert_close


def model(dtype=np.float32):
    lstm = lc.LSTM(3, 4, 2, bidirectional=True, batch_first=True, dropout=0.1, dtype=dtype,
                   seed=0, unit_forget_bias=True)
    return lc.SequenceModel(lstm, lc.Linear(8, 2, dtype=dtype, seed=1), output="all")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    original = model(dtype)
    path = tmp_path / "model.npz"
    lc.save_model(original, path)
    loaded = lc.load_model(path)
    assert type(loaded) is lc.SequenceModel and loaded.config() == original.config()
    for name, value in original.params.items():
        assert loaded.params[name].dtype == value.dtype
        assert np.array_equal(loaded.params[name], value), name
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(dtype)
    assert np.array_equal(lc.predict(loaded, x), lc.predict(original, x))
    assert os.listdir(tmp_path) == ["model.npz"], "no temporary file left behind"
    for single in (original.lstm, original.head):
        lc.save_model(single, tmp_path / "single.npz")
        again = lc.load_model(tmp_path / "single.npz")
        assert type(again) is type(single)
        assert all(np.array_equal(again.params[k], v) for k, v in single.params.items())


def test_overwrite_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    lc.save_model(model(), path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lstm_core.io.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        lc.save_model(model(np.float64), path)
    assert path.read_bytes() == before, "the old file is intact"
    assert os.listdir(tmp_path) == ["model.npz"], "the temporary file is removed"


def write_npz(path, arrays):
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)


def saved_arrays(tmp_path):
    path = tmp_path / "good.npz"
    lc.save_model(model(), path)
    with np.load(path) as archive:
        return {k: archive[k] for k in archive.files}


def test_corrupt_and_truncated_files_are_refused(tmp_path):
    path = tmp_path / "good.npz"
    lc.save_model(model(), path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.npz"
    middle = len(data) // 2
    corrupt.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64])
                        + data[middle + 64:])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"definitely not a zip archive" * 10)
    for bad in (truncated, corrupt, garbage):
        with pytest.raises(ValueError, match="not a readable lstm_core.model archive"):
            lc.load_model(bad)
    with pytest.raises(FileNotFoundError):
        lc.load_model(tmp_path / "missing.npz")


def test_pickled_content_is_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    with open(pickled, "wb") as stream:
        pickle.dump(model().state_dict(), stream)
    arrays = saved_arrays(tmp_path)
    with_object = tmp_path / "object.npz"
    write_npz(with_object, {**arrays, "head.bias": np.array([{"a": 1}, None], dtype=object)})
    for bad in (pickled, with_object):
        with pytest.raises(ValueError, match="contains pickled data, which is refused"):
            lc.load_model(bad)


def test_entries_must_match_the_configuration(tmp_path):
    arrays = saved_arrays(tmp_path)
    cases = [
        ({k: v for k, v in arrays.items() if k != "head.bias"}, ValueError,
         r"missing keys \['head.bias'\]"),
        ({**arrays, "extra": np.zeros(2)}, ValueError, r"unexpected keys \['extra'\]"),
        ({**arrays, "head.weight": np.zeros((2, 9), np.float32)}, ValueError,
         r"state\['head.weight'\] has shape \(2, 9\), expected \(2, 8\)"),
        ({**arrays, "head.bias": arrays["head.bias"].astype(np.float64)}, TypeError,
         r"state\['head.bias'\] has dtype float64, expected float32"),
        ({k: v for k, v in arrays.items() if k != "__config__"}, ValueError,
         "no '__config__' entry"),
        ({**arrays, "__config__": np.array("{not json")}, ValueError, "not valid JSON"),
        ({**arrays, "__config__": np.array(json.dumps({"format": "other"}))}, ValueError,
         "not an lstm_core.model configuration"),
    ]
    for i, (entries, error, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.npz"
        write_npz(path, entries)
        with pytest.raises(error, match=message):
            lc.load_model(path)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        lc.load_model(single)


def keras_lstm(x, kernel, recurrent_kernel, bias):
    """Keras's LSTM equations in numpy: z = x_t @ kernel + h @ recurrent_kernel + bias, gates
    i, f, c, o."""
    H = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[1], H))
    c = np.zeros((x.shape[1], H))
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    ys = []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys)


def test_keras_weights_import_and_export():
    rng = np.random.default_rng(0)
    I, H = 3, 4
    weights = [rng.uniform(-0.5, 0.5, (I, 4 * H)), rng.uniform(-0.5, 0.5, (H, 4 * H)),
               rng.uniform(-0.5, 0.5, 4 * H)]
    lstm = lc.LSTM(I, H, dtype=np.float64)
    lstm.load_state_dict(lc.from_keras_weights(weights))
    x = rng.standard_normal((6, 2, I))
    y, _ = lstm(x)
    assert_close(y, keras_lstm(x, *weights), "y vs Keras equations")
    exported = lc.to_keras_weights(lstm.params)
    for a, b in zip(exported, weights):
        assert np.array_equal(a, b)
    # A bidirectional, 2-layer stack assembled from per-layer, per-direction Keras weights.
    stack = lc.LSTM(I, H, 2, bidirectional=True, dtype=np.float64, seed=0)
    state = {}
    for layer in range(2):
        for reverse in (False, True):
            exported = lc.to_keras_weights(stack.params, layer=layer, reverse=reverse)
            state.update(lc.from_keras_weights(exported, layer=layer, reverse=reverse))
    copy = lc.LSTM(I, H, 2, bidirectional=True, dtype=np.float64, seed=1)
    copy.load_state_dict(state)
    assert_close(copy(x)[0], stack(x)[0], "stack through Keras layout")
    with pytest.raises(ValueError, match=r"kernel must have shape \(I, 4H\)"):
        lc.from_keras_weights([weights[0].T, weights[1], weights[2]])
    with pytest.raises(ValueError, match="no parameters for layer 3"):
        lc.to_keras_weights(stack.params, layer=3)


@pytest.mark.parametrize("cell", ["GRU", "RNN"])
def test_gru_and_rnn_models_round_trip(tmp_path, cell):
    stack = getattr(lc, cell)(3, 4, 2, bidirectional=True, dtype=np.float64, seed=2)
    original = lc.SequenceModel(stack, lc.Linear(8, 1, dtype=np.float64, seed=3))
    lc.save_model(original, tmp_path / "model.npz")
    loaded = lc.load_model(tmp_path / "model.npz")
    assert type(loaded.lstm) is type(stack) and loaded.config() == original.config()
    x = np.random.default_rng(4).standard_normal((6, 2, 3))
    assert np.array_equal(lc.predict(loaded, x), lc.predict(original, x))
    lc.save_model(stack, tmp_path / "stack.npz")
    assert type(lc.load_model(tmp_path / "stack.npz")) is type(stack)


def test_unknown_cell_in_a_file_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    lc.save_model(model(np.float64), path)
    with np.load(path, allow_pickle=False) as archive:
        entries = {k: archive[k] for k in archive.files}
    description = json.loads(str(entries["__config__"]))
    description["config"]["cell"] = "Transformer"
    entries["__config__"] = np.array(json.dumps(description))
    np.savez(path, **entries)
    with pytest.raises(ValueError, match="Transformer|configuration"):
        lc.load_model(path)


# ----------------------------------------------------------------------------- every class

def _seeded_instances():
    """A seeded instance of every public model class, with an input it runs on: (model,
    x, lengths).  Keyed by class name; the test below fails when a public class is missing."""
    from lstm_core.embedding import Embedding, TokenSequenceModel
    rng = np.random.default_rng(7)
    seq = rng.standard_normal((4, 3, 2)).astype(np.float32)  # (T, N, I)
    ids = rng.integers(0, 20, (3, 5, 1)).astype(np.float32)  # (N, T, 1) token ids
    return {
        "LSTM": (lc.LSTM(2, 3, 2, bidirectional=True, seed=1), seq, None),
        "GRU": (lc.GRU(2, 3, seed=2), seq, None),
        "RNN": (lc.RNN(2, 3, num_layers=2, seed=3), seq, None),
        "Linear": (lc.Linear(2, 5, seed=4), seq, None),
        "SequenceModel": (lc.SequenceModel(lc.GRU(2, 3, seed=5), lc.Linear(3, 1, seed=6)),
                          seq, None),
        "Embedding": (Embedding(20, 3, padding_idx=0, seed=8), ids[..., 0].astype(np.int64),
                      None),
        "Dropout": (lc.Dropout(0.3, seed=12), seq, None),
        "Tanh": (lc.Tanh(), seq, None),
        "ReLU": (lc.ReLU(), seq, None),
        "Sequential": (lc.Sequential(lc.Linear(2, 4, seed=13), lc.Tanh(), lc.Dropout(0.2, seed=14),
                                     lc.Linear(4, 3, seed=15)), seq, None),
        "SequenceModel with a Sequential head": (lc.SequenceModel(
            lc.LSTM(2, 3, seed=16), lc.Sequential(lc.Linear(3, 5, seed=17), lc.ReLU(),
                                                  lc.Linear(5, 1, seed=18))), seq, None),
        "LSTM in bfloat16": (lc.LSTM(2, 3, seed=19, precision="bfloat16"), seq, None),
        "SequenceModel with an int8 LSTM": (lc.SequenceModel(
            lc.LSTM(2, 3, seed=20, precision="int8"), lc.Linear(3, 1, seed=21)), seq, None),
        "TokenSequenceModel": (TokenSequenceModel(
            Embedding(20, 4, seed=9), lc.LSTM(4, 3, batch_first=True, seed=10),
            lc.Linear(3, 2, seed=11)), ids, np.array([5, 2, 4])),
    }


def _public_model_classes():
    """Every class a user can import from lstm_core or lstm_core.embedding that is a Module."""
    import inspect

    import lstm_core.embedding
    from lstm_core.layers import Module
    from lstm_core.layers import RecurrentStack
    found = {}
    for namespace in (lc, lstm_core.embedding):
        for name, value in vars(namespace).items():
            # the two bases are not models one builds
            if (inspect.isclass(value) and issubclass(value, Module)
                    and value not in (Module, RecurrentStack) and not name.startswith("_")):
                found[name] = value
    return found


def test_every_public_model_class_round_trips(tmp_path):
    instances = _seeded_instances()
    classes = _public_model_classes()
    assert set(classes) <= set(instances), f"no round-trip case for {set(classes) - set(instances)}"
    for name, (original, x, lengths) in instances.items():
        assert name not in classes or type(original) is classes[name], name
        path = tmp_path / f"{name}.npz"
        lc.save_model(original, path)
        loaded = lc.load_model(path)
        assert type(loaded) is type(original) and loaded.config() == original.config(), name
        want, got = original.state_dict(), loaded.state_dict()
        assert list(got) == list(want), name
        for key in want:
            assert np.array_equal(got[key], want[key]) and got[key].dtype == want[key].dtype, key
        for m in (original, loaded):
            if hasattr(m, "eval"):
                m.eval()
        kwargs = {} if lengths is None else {"lengths": lengths}
        out_a, out_b = original(x, **kwargs), loaded(x, **kwargs)
        out_a, out_b = (out_a[0], out_b[0]) if isinstance(out_a, tuple) else (out_a, out_b)
        assert np.array_equal(out_a, out_b), f"{name}: outputs differ after loading"


def test_a_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    lc.save_model(model(np.float64), path)
    with np.load(path, allow_pickle=False) as archive:
        entries = {k: archive[k] for k in archive.files}
    description = json.loads(str(entries["__config__"]))
    description["version"] = lstm_core.io.VERSION + 1
    entries["__config__"] = np.array(json.dumps(description))
    np.savez(path, **entries)
    with pytest.raises(ValueError, match=rf"version {lstm_core.io.VERSION + 1} \(this is "
                                         rf"{lstm_core.io.VERSION}\)"):
        lc.load_model(path)


def test_keras_activations_the_kernels_do_not_compute_are_refused():
    weights = [np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(8)]
    assert set(lc.from_keras_weights(weights, recurrent_activation="sigmoid")) == {
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
    with pytest.raises(NotImplementedError, match="recurrent_activation='hard_sigmoid'"):
        lc.from_keras_weights(weights, recurrent_activation="hard_sigmoid")
    with pytest.raises(NotImplementedError, match="activation='relu'"):
        lc.from_keras_weights(weights, activation="relu")
