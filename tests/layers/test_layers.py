"""lc.LSTM, lc.Linear and lc.SequenceModel without torch: parameters, state dicts, modes,
accumulation, dropout, streaming and errors."""

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import assert_close


def test_parameter_names_shapes_and_init():
    lstm = lc.LSTM(3, 5, 2, bidirectional=True, seed=0)
    expected = {}
    for layer, inputs in ((0, 3), (1, 10)):
        for suffix in ("", "_reverse"):
            expected[f"weight_ih_l{layer}{suffix}"] = (20, inputs)
            expected[f"weight_hh_l{layer}{suffix}"] = (20, 5)
            expected[f"bias_ih_l{layer}{suffix}"] = (20,)
            expected[f"bias_hh_l{layer}{suffix}"] = (20,)
    assert {k: v.shape for k, v in lstm.params.items()} == expected
    assert list(lstm.params)[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    bound = 1 / np.sqrt(5)
    for name, value in lstm.params.items():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound and np.abs(value).max() > 0.8 * bound, name
    assert set(lstm.grads) == set(lstm.params)
    assert not any(g.any() for g in lstm.grads.values())
    assert "bias_ih_l0" not in lc.LSTM(3, 5, bias=False).params


def test_seed_reproduces_and_unit_forget_bias():
    a, b = lc.LSTM(2, 3, seed=4), lc.LSTM(2, 3, seed=4)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["weight_hh_l0"], lc.LSTM(2, 3, seed=5).params["weight_hh_l0"])
    forget = lc.LSTM(2, 3, 2, unit_forget_bias=True, seed=4)
    for layer in range(2):
        total = forget.params[f"bias_ih_l{layer}"] + forget.params[f"bias_hh_l{layer}"]
        assert np.array_equal(total[3:6], np.ones(3, np.float32))
        assert not np.array_equal(total[:3], np.ones(3, np.float32))


def test_load_state_dict_checks_everything_before_copying():
    lstm = lc.LSTM(2, 3, dtype=np.float64, seed=0)
    good = lc.LSTM(2, 3, dtype=np.float64, seed=1).state_dict()
    before = lstm.state_dict()
    bad_cases = [
        ({k: v for k, v in good.items() if k != "bias_hh_l0"}, ValueError, "missing keys \\['bias_hh_l0'\\]"),
        ({**good, "weight_ih_l1": good["weight_ih_l0"]}, ValueError, "unexpected keys \\['weight_ih_l1'\\]"),
        ({**good, "weight_hh_l0": np.zeros((12, 4))}, ValueError, "shape \\(12, 4\\), expected \\(12, 3\\)"),
        ({**good, "bias_ih_l0": good["bias_ih_l0"].astype(np.float32)}, TypeError, "float32, expected float64"),
        ([1, 2], TypeError, "mapping"),
    ]
    for state, error, message in bad_cases:
        with pytest.raises(error, match=message):
            lstm.load_state_dict(state)
        assert all(np.array_equal(lstm.params[k], before[k]) for k in before), "untouched"
    reference = lstm.params["weight_ih_l0"]
    lstm.load_state_dict(good)
    assert lstm.params["weight_ih_l0"] is reference, "loaded in place"
    assert all(np.array_equal(lstm.params[k], good[k]) for k in good)
    lstm.state_dict()["weight_ih_l0"][...] = 0
    assert lstm.params["weight_ih_l0"].any(), "state_dict returns copies"


def test_backward_accumulates_and_zero_grad_clears():
    lstm = lc.LSTM(3, 4, 2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _ = lstm(x)
    lstm.backward(np.ones_like(y))
    once = {k: v.copy() for k, v in lstm.grads.items()}
    lstm.backward(np.ones_like(y))
    for name, value in lstm.grads.items():
        assert_close(value, 2 * once[name], name)
        # The kernel's one bias gradient goes to both of torch's bias vectors.
    assert np.array_equal(lstm.grads["bias_ih_l1"], lstm.grads["bias_hh_l1"])
    lstm.zero_grad()
    assert not any(g.any() for g in lstm.grads.values())


def test_eval_mode_keeps_no_cache_and_matches_training_output():
    lstm = lc.LSTM(3, 4, 2, bidirectional=True, dropout=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y_eval, _ = lstm.eval()(x)
    assert not lstm.training
    with pytest.raises(RuntimeError, match="training mode"):
        lstm.backward(np.ones_like(y_eval))
    y_eval_again, _ = lstm(x)
    assert np.array_equal(y_eval, y_eval_again), "no dropout in eval mode"
    y_train, _ = lstm.train()(x)
    assert not np.array_equal(y_train, y_eval), "dropout is on while training"
    lstm.dropout = 0.0
    y_plain, _ = lstm(x)
    assert_close(y_plain, y_eval, "y")


def test_dropout_is_seeded_and_scaled():
    x = np.random.default_rng(0).standard_normal((50, 40, 3)).astype(np.float32)
    outs = []
    for _ in range(2):
        lstm = lc.LSTM(3, 8, 2, dropout=0.25, seed=11)
        outs.append(lstm(x)[0])
    assert np.array_equal(outs[0], outs[1]), "same seed, same masks"
    # The mask on layer 0's output, read from the forward's tape (caches, masks, ...).
    mask = lstm._tape[1][0]
    kept = mask != 0
    assert abs(kept.mean() - 0.75) < 0.01, "keep probability 1 - p"
    assert np.allclose(mask[kept], 1 / 0.75), "kept units scaled by 1 / (1 - p)"


def test_step_streams_like_the_whole_sequence():
    lstm = lc.LSTM(3, 4, 3, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 3))
    hx = (rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4)))
    y, (h_n, c_n) = lstm.eval()(x, hx)
    state = hx
    for t in range(6):
        y_t, state = lstm.step(x[t], state)
        assert_close(y_t, y[t], f"y[{t}]")
    assert_close(state[0], h_n, "h")
    assert_close(state[1], c_n, "c")
    y_1, (h_1, _) = lstm.step(x[0, 0])  # unbatched, zero state
    assert y_1.shape == (4,) and h_1.shape == (3, 4)
    with pytest.raises(ValueError, match="unidirectional"):
        lc.LSTM(3, 4, bidirectional=True).step(x[0])


def test_input_errors_name_the_argument():
    lstm = lc.LSTM(3, 4, 2)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(TypeError, match="x has dtype float64 but the model's parameters are float32"):
        lstm(x.astype(np.float64))
    with pytest.raises(ValueError, match="input_size = 3"):
        lstm(np.zeros((5, 2, 4), np.float32))
    with pytest.raises(ValueError, match="x must be 3-D"):
        lstm(np.zeros((5,), np.float32))
    with pytest.raises(ValueError, match=r"h0 must have shape .* = \(2, 2, 4\), got \(1, 2, 4\)"):
        lstm(x, (np.zeros((1, 2, 4), np.float32), np.zeros((2, 2, 4), np.float32)))
    with pytest.raises(TypeError, match="hx must be a pair"):
        lstm(x, np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 5\]"):
        lstm(x, lengths=np.array([6, 1]))
    with pytest.raises(TypeError, match="lengths must hold integers"):
        lstm(x, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        lstm(x, lengths=np.array([1, 2, 3]))
    y, _ = lstm(x)
    with pytest.raises(ValueError, match=r"dy must have the shape of y, \(5, 2, 4\)"):
        lstm.backward(np.zeros((5, 2, 3), np.float32))
    for bad, error in [((0, 4), ValueError), ((3.5, 4), TypeError), ((3, 4, 0), ValueError)]:
        with pytest.raises(error):
            lc.LSTM(*bad)
    with pytest.raises(ValueError, match="dropout"):
        lc.LSTM(3, 4, dropout=1.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        lc.LSTM(3, 4, dtype=np.float16)


def test_linear_matches_numpy_and_accumulates():
    rng = np.random.default_rng(0)
    layer = lc.Linear(4, 3, dtype=np.float64, seed=0)
    assert layer.params["weight"].shape == (3, 4) and layer.params["bias"].shape == (3,)
    assert np.abs(layer.params["weight"]).max() <= 0.5  # U(-1/sqrt(4), 1/sqrt(4))
    x = rng.standard_normal((5, 2, 4))
    dy = rng.standard_normal((5, 2, 3))
    y = layer(x)
    assert_close(y, x @ layer.params["weight"].T + layer.params["bias"], "y")
    dx = layer.backward(dy)
    assert_close(dx, dy @ layer.params["weight"], "dx")
    assert_close(layer.grads["weight"], np.einsum("tbo,tbi->oi", dy, x), "dweight")
    assert_close(layer.grads["bias"], dy.sum(axis=(0, 1)), "dbias")
    layer.backward(dy)
    assert_close(layer.grads["bias"], 2 * dy.sum(axis=(0, 1)), "accumulated dbias")
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\)"):
        layer(np.zeros((2, 3)))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_model_last_and_all(bidirectional):
    rng = np.random.default_rng(1)
    D = 2 if bidirectional else 1
    lstm = lc.LSTM(3, 4, 2, bidirectional=bidirectional, batch_first=True, dtype=np.float64,
                   seed=0)
    head = lc.Linear(4 * D, 2, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 6, 3))  # batch_first: (B, T, I)
    last = lc.SequenceModel(lstm, head, output="last")
    y, (h_n, _) = lstm(x)
    expected = np.concatenate(list(h_n[-D:]), axis=-1) @ head.params["weight"].T + head.params["bias"]
    assert_close(last(x), expected, "last")
    every = lc.SequenceModel(lstm, head, output="all")
    assert_close(every(x), y @ head.params["weight"].T + head.params["bias"], "all")
    assert set(last.params) == {"lstm." + k for k in lstm.params} | {"head.weight", "head.bias"}
    assert last.params["lstm.weight_ih_l0"] is lstm.params["weight_ih_l0"], "shared arrays"
    last.eval()
    assert not lstm.training and not head.training
    with pytest.raises(ValueError, match="head.in_features"):
        lc.SequenceModel(lstm, lc.Linear(3, 2, dtype=np.float64))
