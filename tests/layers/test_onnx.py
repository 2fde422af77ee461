"""ONNX export and import (lc.to_onnx, lc.from_onnx) with onnxruntime as the oracle: every
stack shape, the models with heads and embeddings, round trips to the same parameters and
bits, graphs written elsewhere, and the refusals of what the kernels do not compute."""

import sys

import numpy as np
import pytest

import lstm_core as lc
from lstm_core.embedding import Embedding, TokenSequenceModel

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# lstm_core against onnxruntime, float32: both sum the same products in other orders;
# measured up to 2.4e-7 (two bidirectional layers, lengths); 1e-5 catches any gate, bias or
# layout slip (order 0.1).
TOL = 1e-5


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def close(got, want):
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= TOL


STACKS = [(1, False, False), (2, True, False), (2, False, True), (3, True, True)]


@pytest.mark.parametrize("cls", [lc.LSTM, lc.GRU, lc.RNN])
@pytest.mark.parametrize("layers, bidirectional, batch_first", STACKS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_stacks_run_in_onnxruntime_with_lstm_cores_results(tmp_path, cls, layers,
                                                            bidirectional, batch_first,
                                                            with_lengths):
    stack = cls(3, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                seed=layers).eval()
    x = np.random.default_rng(1).standard_normal((4, 6, 3) if batch_first else (6, 4, 3))
    x = x.astype(np.float32)
    lengths = np.array([6, 2, 0, 5], np.int32) if with_lengths else None
    path = tmp_path / "stack.onnx"
    lc.to_onnx(stack, path, lengths=with_lengths)
    onnx.checker.check_model(onnx.load(str(path)))
    feeds = {"x": x, **({"lengths": lengths} if with_lengths else {})}
    got = session(path).run(None, feeds)
    y, state = stack(x, lengths=lengths)
    close(got, [y, *(state if cls is lc.LSTM else (state,))])
    assert [o.name for o in session(path).get_outputs()] == (
        ["y", "h_n", "c_n"] if cls is lc.LSTM else ["y", "h_n"])
    back = lc.from_onnx(path)
    assert type(back) is cls and back.config() == stack.config()
    for name, value in stack.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], value)
    np.testing.assert_array_equal(back(x, lengths=lengths)[0], y)


def models():
    head = lc.Sequential(lc.Linear(8, 6, seed=2), lc.Tanh(), lc.Dropout(0.3, seed=3),
                         lc.ReLU(), lc.Linear(6, 2, seed=4))
    yield "last-sequential", lc.SequenceModel(
        lc.LSTM(3, 4, bidirectional=True, batch_first=True, seed=1), head)
    yield "all-linear", lc.SequenceModel(lc.GRU(3, 4, num_layers=2, seed=1),
                                         lc.Linear(4, 2, seed=2), output="all")
    yield "last-nohead-nobias", lc.SequenceModel(lc.RNN(3, 4, bias=False, seed=1))
    yield "all-batch-first", lc.SequenceModel(
        lc.LSTM(3, 4, batch_first=True, seed=1), lc.Linear(4, 3, bias=False, seed=2),
        output="all")


@pytest.mark.parametrize("name, model", list(models()))
def test_sequence_models_run_in_onnxruntime(tmp_path, name, model):
    model.eval()
    batch_first = model.lstm.batch_first
    x = np.random.default_rng(5).standard_normal((5, 7, 3) if batch_first else (7, 5, 3))
    x = x.astype(np.float32)
    lengths = np.array([7, 1, 3, 0, 6], np.int32)
    path = tmp_path / f"{name}.onnx"
    lc.to_onnx(model, path, lengths=True)
    (out,) = session(path).run(["out"], {"x": x, "lengths": lengths})
    want = model(x, lengths=lengths)
    close([out], [want])
    back = lc.from_onnx(path)
    assert back.config() == model.config()
    np.testing.assert_array_equal(back(x, lengths=lengths), want)


def test_a_text_model_runs_on_token_ids(tmp_path):
    model = TokenSequenceModel(Embedding(20, 6, padding_idx=0, seed=1),
                               lc.LSTM(6, 5, batch_first=True, seed=2), lc.Linear(5, 3, seed=3))
    model.eval()
    ids = np.random.default_rng(6).integers(1, 20, (4, 9))
    lengths = np.array([9, 4, 1, 7], np.int32)
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    path = tmp_path / "text.onnx"
    lc.to_onnx(model, path, lengths=True)
    inputs = {i.name: i for i in onnx.load(str(path)).graph.input}
    assert inputs["x"].type.tensor_type.elem_type == TensorProto.INT64
    (out,) = session(path).run(["out"], {"x": ids.astype(np.int64), "lengths": lengths})
    want = model(ids[:, :, None].astype(np.float32), lengths=lengths)
    close([out], [want])
    back = lc.from_onnx(path)
    assert isinstance(back, TokenSequenceModel)
    np.testing.assert_array_equal(back(ids[:, :, None].astype(np.float32), lengths=lengths),
                                  want)


# ----------------------------------------------------------------------------- other graphs


def foreign(op, *, H=4, I=3, direction="forward", layout=0, extra_inputs=(), **attrs):
    """One ONNX recurrent node written by hand (gate order and bias split of ONNX), with
    sequence_lens and initial states as graph inputs, as other exporters write them."""
    rng = np.random.default_rng(7)
    D = 2 if direction == "bidirectional" else 1
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op] * H
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), n)
             for n, s in (("W", (D, G, I)), ("R", (D, G, H)), ("B", (D, 2 * G)))]
    names = ["x", "W", "R", "B", "seq", "h0"] + (["c0"] if op == "LSTM" else [])
    names += list(extra_inputs)
    if op == "GRU":
        attrs.setdefault("linear_before_reset", 1)
    outs = ["y", "h_n"] + (["c_n"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, hidden_size=H, direction=direction,
                            layout=layout, **attrs)
    batch = ["B", "T"] if layout else ["T", "B"]
    state = ["B", D, H] if layout else [D, "B", H]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [*batch, I]),
           helper.make_tensor_value_info("seq", TensorProto.INT32, ["B"]),
           helper.make_tensor_value_info("h0", TensorProto.FLOAT, state)]
    if op == "LSTM":
        ins.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, state))
    for name in extra_inputs:
        inits.append(numpy_helper.from_array(np.full((D, 3 * H), 0.1, np.float32), name))
    out_info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs]
    graph = helper.make_graph([node], "foreign", ins, out_info, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_graphs_written_elsewhere_are_read(tmp_path, op, direction):
    model = foreign(op, direction=direction)
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    stack = lc.from_onnx(path)
    assert type(stack).__name__ == op and stack.bidirectional == (direction != "forward")
    rng = np.random.default_rng(8)
    D = 2 if direction == "bidirectional" else 1
    x = rng.standard_normal((6, 3, 3)).astype(np.float32)
    seq = np.array([6, 3, 1], np.int32)
    h0 = rng.standard_normal((D, 3, 4)).astype(np.float32)
    c0 = rng.standard_normal((D, 3, 4)).astype(np.float32)
    feeds = {"x": x, "seq": seq, "h0": h0, **({"c0": c0} if op == "LSTM" else {})}
    got = session(path).run(None, feeds)
    y, state = stack(x, (h0, c0) if op == "LSTM" else h0, lengths=seq)
    # ONNX's Y is (T, D, B, H)
    T, B = x.shape[:2]
    close([got[0].transpose(0, 2, 1, 3).reshape(T, B, -1), *got[1:]],
          [y, *(state if op == "LSTM" else (state,))])
    # layout=1 (batch-major, which onnxruntime's CPU provider does not run): a batch_first
    # stack with the same weights
    onnx.save(foreign(op, direction=direction, layout=1), str(path))
    batch_major = lc.from_onnx(path)
    assert batch_major.batch_first
    for name, value in stack.state_dict().items():
        np.testing.assert_array_equal(batch_major.state_dict()[name], value)


@pytest.mark.parametrize("kwargs, match", [
    ({"op": "LSTM", "extra_inputs": ("P",)}, "peepholes"),
    ({"op": "LSTM", "clip": 3.0}, "cell clip"),
    ({"op": "LSTM", "input_forget": 1}, "input_forget"),
    ({"op": "RNN", "activations": ["Relu"]}, "activations"),
    ({"op": "GRU", "linear_before_reset": 0}, "linear_before_reset=0"),
    ({"op": "LSTM", "direction": "reverse"}, "reverse only"),
])
def test_what_the_kernels_do_not_compute_is_refused(tmp_path, kwargs, match):
    path = tmp_path / "refused.onnx"
    onnx.save(foreign(**kwargs), str(path))
    with pytest.raises(NotImplementedError, match=match):
        lc.from_onnx(path)


def test_bad_files_and_other_graphs_are_refused(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not an onnx file at all")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        lc.from_onnx(path)
    with pytest.raises(FileNotFoundError):
        lc.from_onnx(tmp_path / "missing.onnx")
    relu = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(relu, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="no ONNX LSTM, GRU or RNN node"):
        lc.from_onnx(path)
    model = foreign("LSTM")
    model.graph.node.append(helper.make_node("Gemm", ["h_n", "W"], ["extra"]))
    onnx.save(model, str(path))
    with pytest.raises(NotImplementedError, match="Gemm"):
        lc.from_onnx(path)
    with pytest.raises(TypeError, match="exports an LSTM"):
        lc.to_onnx(lc.Linear(2, 3), tmp_path / "linear.onnx")


def test_without_onnx_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "lstm_core\[onnx\]"'):
        lc.to_onnx(lc.LSTM(2, 3), tmp_path / "m.onnx")
