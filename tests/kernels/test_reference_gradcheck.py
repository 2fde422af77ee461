"""The numpy twins (lstm_core.reference): each cell's backward against central finite
differences of its forward; the LSTM twin's bias, one-step cell, sigmoid and lengths."""

import numpy as np
import pytest

from lstm_core import reference as ref
from lstm_problems import Problem, numeric_gradient


@pytest.mark.parametrize(
    "T,B,I,H,lengths",
    [
        (1, 1, 1, 1, None),
        (3, 2, 3, 2, None),
        (4, 3, 2, 3, None),
        (6, 1, 4, 2, None),
        (5, 4, 3, 2, [5, 0, 2, 4]),  # variable lengths, an empty sequence among them
    ],
)
def test_reference_backward_matches_finite_differences(T, B, I, H, lengths, cell):
    """The twin's backward against central differences of L = <dy, y> + <dh_n, h_n>
    (+ <dc_n, c_n>), whose gradient <cell>_backward computes: relative error in the 2-norm
    <= 1e-6 for every argument of the forward."""
    p = cell.problem(T, B, I, H, seed=T * 100 + H)
    args = list(p.args(np.float64))

    def loss():
        *outputs, _ = cell.ref_forward(*args, training=False, lengths=lengths)
        return sum(np.sum(d * out) for d, out in zip(p.output_grads, outputs, strict=True))

    *_, cache = cell.ref_forward(*args, lengths=lengths)
    grads = cell.ref_backward(cache, *p.output_grads)
    # The gradient fields come in the order of the forward's arguments: dx for x, ..., dh0 for h0.
    assert len(grads) == len(args)
    for arg, name, analytic in zip(args, grads._fields, grads):
        numeric = numeric_gradient(loss, arg)
        error = np.linalg.norm(numeric - analytic) / max(np.linalg.norm(numeric), 1e-300)
        assert error <= 1e-6, f"{name}: relative error {error:.2e}"


def test_reference_without_bias_returns_no_bias_gradient():
    p = Problem(3, 2, 3, 2)
    _, _, _, cache = ref.lstm_forward(*p.args(np.float64, bias=False))
    assert ref.lstm_backward(cache, p.dy).dbias is None


def test_reference_cell_is_one_forward_step():
    p = Problem(1, 3, 4, 5)
    x, w_ih, w_hh, bias, h0, c0 = p.args(np.float64)
    y, _, c_n, _ = ref.lstm_forward(x, w_ih, w_hh, bias, h0, c0)
    h1, c1 = ref.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias)
    np.testing.assert_array_equal(h1, y[0])
    np.testing.assert_array_equal(c1, c_n)


def test_reference_sigmoid_saturates_without_overflow():
    z = np.array([-1e30, -710.0, -89.0, 0.0, 89.0, 710.0, 1e30])
    with np.errstate(over="raise"):
        s = ref.sigmoid(z)
    np.testing.assert_array_equal(s[[0, 5, 6]], [0.0, 1.0, 1.0])
    assert s[3] == 0.5 and s[4] == 1.0
    # exp(-89) and exp(-710) (subnormal) are still representable in float64
    np.testing.assert_allclose(s[[1, 2]], np.exp([-710.0, -89.0]), rtol=1e-12)


def test_reference_lengths_freeze_state_and_zero_outputs():
    p = Problem(6, 3, 4, 5, seed=4)
    args = p.args(np.float64)
    lengths = np.array([6, 2, 0])
    y, h_n, c_n, _ = ref.lstm_forward(*args, lengths=lengths)
    for b, n in enumerate(lengths):
        # sequence b alone, cut at its length, gives the same outputs and final state
        x, w_ih, w_hh, bias, h0, c0 = args
        y_b, h_b, c_b, _ = ref.lstm_forward(x[:n, b : b + 1], w_ih, w_hh, bias,
                                             h0[b : b + 1], c0[b : b + 1])
        np.testing.assert_allclose(y[:n, b], y_b[:, 0], rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(y[n:, b], 0.0)
        np.testing.assert_allclose(h_n[b], h_b[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(c_n[b], c_b[0], rtol=1e-13, atol=1e-15)
