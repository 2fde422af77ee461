"""The RNN and GRU twins' backward against central finite differences of their forward
(relative error in the 2-norm <= 1e-6)."""

import numpy as np
import pytest

from cell_problems import CELLS, CellProblem
from test_reference_gradcheck import numeric_gradient


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "T,B,I,H,lengths",
    [(1, 1, 1, 1, None), (3, 2, 3, 2, None), (6, 1, 4, 2, None), (5, 4, 3, 2, [5, 0, 2, 4])],
)
def test_twin_backward_matches_finite_differences(T, B, I, H, lengths, cell):
    p = CellProblem(cell, T, B, I, H, seed=T * 100 + H)
    args = p.args(np.float64)
    forward, backward = CELLS[cell][3], CELLS[cell][4]

    def loss():
        y, h_n, _ = forward(*args, training=False, lengths=lengths)
        return np.sum(p.dy * y) + np.sum(p.dh_n * h_n)

    _, _, cache = forward(*args, lengths=lengths)
    grads = backward(cache, p.dy, p.dh_n)
    # The gradient fields come in the order of the forward's arguments: dx for x, ..., dh0 for h0.
    assert len(grads) == len(args)
    for arg, name, analytic in zip(args, grads._fields, grads):
        numeric = numeric_gradient(loss, arg)
        error = np.linalg.norm(numeric - analytic) / max(np.linalg.norm(numeric), 1e-300)
        assert error <= 1e-6, f"{name}: relative error {error:.2e}"
