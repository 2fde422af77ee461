"""Variable-length batches inside the fused kernels: against the reference and torch packing."""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import reference as ref
from lstm_problems import Problem, assert_close

DTYPES = [np.float32, np.float64]
CASES = {
    # name: (T, B, I, H, lengths)
    "unsorted": (9, 5, 6, 4, [3, 9, 0, 7, 1]),
    "all-full": (6, 3, 4, 5, [6, 6, 6]),
    "all-empty": (4, 3, 2, 3, [0, 0, 0]),
    "one-row": (7, 1, 3, 2, [4]),
    "wide": (33, 16, 13, 64, list(range(33, 1, -2))),
    "no-steps": (0, 3, 2, 3, [0, 0, 0]),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES)
def test_lengths_match_reference(case, dtype):
    T, B, I, H, lengths = CASES[case]
    p = Problem(T, B, I, H, seed=len(case))
    lengths = np.array(lengths, dtype=np.int64)
    out = lc.lstm_forward(*p.args(dtype), lengths=lengths)
    expected = ref.lstm_forward(*p.args(np.float64), lengths=lengths)
    for name, a, e in zip(["y", "h_n", "c_n"], out[:3], expected[:3]):
        assert_close(a, e, name)
    # Outputs past each length are exact zeros, not small numbers.
    for b, n in enumerate(lengths):
        assert not out[0][n:, b].any()
    # Inference mode (state carried in place, chunked input GEMM) gives the same results:
    # the same bits in float64; in float32 within tolerance, as some BLAS kernels (AVX2)
    # round a row differently with the number of rows in the call.
    inference = lc.lstm_forward(*p.args(dtype), lengths=lengths, training=False)
    for name, a, b in zip(["y", "h_n", "c_n"], inference[:3], out[:3]):
        if dtype == np.float64:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert_close(a, b, name)
    for b, n in enumerate(lengths):
        assert not inference[0][n:, b].any()  # zeros past each length, in this mode too
    cast = lambda a: a.astype(dtype)  # noqa: E731
    grads = lc.lstm_backward(out[3], cast(p.dy), cast(p.dh_n), cast(p.dc_n))
    expected_grads = ref.lstm_backward(expected[3], p.dy, p.dh_n, p.dc_n)
    for name, a, e in zip(grads._fields, grads, expected_grads):
        assert_close(a, e, name)


def test_full_lengths_equal_no_lengths():
    p = Problem(7, 3, 5, 4, seed=1)
    full = np.full(3, 7)
    a = lc.lstm_forward(*p.args(np.float64), lengths=full)
    b = lc.lstm_forward(*p.args(np.float64))
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(u, v)
    ga, gb = lc.lstm_backward(a[3], p.dy, p.dh_n), lc.lstm_backward(b[3], p.dy, p.dh_n)
    for u, v in zip(ga, gb):
        np.testing.assert_array_equal(u, v)


def test_lengths_accept_lists_and_any_integer_dtype():
    p = Problem(5, 3, 2, 3)
    expected = lc.lstm_forward(*p.args(np.float32), lengths=np.array([5, 2, 0]))
    for lengths in ([5, 2, 0], np.array([5, 2, 0], np.uint8), np.array([5, 2, 0], np.int16)):
        got = lc.lstm_forward(*p.args(np.float32), lengths=lengths)
        np.testing.assert_array_equal(got[0], expected[0])
    assert got[3].lengths.dtype == np.intc


@pytest.mark.parametrize(
    "lengths, error, match",
    [
        (np.array([1.0, 2.0, 3.0]), TypeError, "lengths must hold integers"),
        (np.array([True, False, True]), TypeError, "lengths must hold integers"),
        ("abc", TypeError, "lengths"),
        (np.array([1, 2]), ValueError, r"lengths must have shape \(B,\) = \(3,\)"),
        (np.array([[1, 2, 3]]), ValueError, "lengths must have shape"),
        (np.array([1, 6, 2]), ValueError, r"lengths must lie in \[0, T\] = \[0, 5\]"),
        (np.array([1, -1, 2]), ValueError, r"lengths must lie in \[0, T\]"),
    ],
    ids=["float", "bool", "str", "short", "2-D", "too-long", "negative"],
)
def test_bad_lengths_raise(lengths, error, match):
    p = Problem(5, 3, 2, 3)
    with pytest.raises(error, match=match):
        lc.lstm_forward(*p.args(np.float32), lengths=lengths)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_lengths_match_torch_packed_sequence(dtype):
    torch = pytest.importorskip("torch")
    T, B, I, H, lengths = CASES["unsorted"]
    lengths = np.array([3, 9, 1, 7, 2])  # torch packing needs lengths >= 1
    p = Problem(T, B, I, H, seed=9)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    module = torch.nn.LSTM(I, H, dtype=tdtype)
    with torch.no_grad():
        for name, value in [("weight_ih_l0", p.w_ih), ("weight_hh_l0", p.w_hh),
                            ("bias_ih_l0", p.b_ih), ("bias_hh_l0", p.b_hh)]:
            getattr(module, name).copy_(torch.from_numpy(value))
    tensor = lambda a: torch.tensor(a, dtype=tdtype, requires_grad=True)  # noqa: E731
    x, h0, c0 = tensor(p.x), tensor(p.h0[None]), tensor(p.c0[None])
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.from_numpy(lengths), enforce_sorted=False
    )
    out, (h_n_t, c_n_t) = module(packed, (h0, c0))
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    loss = ((y_t * torch.from_numpy(p.dy)).sum() + (h_n_t[0] * torch.from_numpy(p.dh_n)).sum()
            + (c_n_t[0] * torch.from_numpy(p.dc_n)).sum())
    loss.backward()

    y, h_n, c_n, cache = lc.lstm_forward(*p.args(dtype), lengths=lengths)
    assert_close(y, y_t.detach().double().numpy(), "y")
    assert_close(h_n, h_n_t[0].detach().double().numpy(), "h_n")
    assert_close(c_n, c_n_t[0].detach().double().numpy(), "c_n")
    g = lc.lstm_backward(cache, *(a.astype(dtype) for a in (p.dy, p.dh_n, p.dc_n)))
    for name, value in [("dx", x.grad), ("dw_ih", module.weight_ih_l0.grad),
                        ("dw_hh", module.weight_hh_l0.grad), ("dbias", module.bias_ih_l0.grad),
                        ("dh0", h0.grad[0]), ("dc0", c0.grad[0])]:
        assert_close(getattr(g, name), value.double().numpy(), name)
