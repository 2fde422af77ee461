"""Losses: values by hand, gradients by finite differences, cross-entropy against torch."""

import numpy as np
import pytest

import lstm_core as lc


def test_mse_by_hand_and_with_a_mask():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    target = np.array([[1.0, 0.0], [2.0, 5.0]])
    loss, grad = lc.mse_loss(pred, target)
    assert loss == (0 + 4 + 1 + 0) / 4
    assert np.array_equal(grad, np.array([[0.0, 1.0], [0.5, 0.0]]))  # 2 (pred - target) / 4
    # Row 0 only: (0 + 4) / 2; row 1 gets no gradient.
    loss, grad = lc.mse_loss(pred, target, mask=np.array([[True], [False]]))
    assert loss == 2.0
    assert np.array_equal(grad, np.array([[0.0, 2.0], [0.0, 0.0]]))
    loss, grad = lc.mse_loss(pred, target, mask=np.zeros((2, 1)))
    assert loss == 0.0 and not grad.any()
    f32 = lc.mse_loss(pred.astype(np.float32), target)[1]
    assert f32.dtype == np.float32


def test_cross_entropy_by_hand():
    # Two classes, logits (0, log 3): softmax (1/4, 3/4).  Label 1: loss -log(3/4).
    logits = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])
    labels = np.array([1, 0])
    loss, grad = lc.cross_entropy_loss(logits, labels)
    assert loss == pytest.approx((-np.log(0.75) - np.log(0.5)) / 2, rel=1e-15)
    expected = np.array([[0.25, -0.25], [-0.5, 0.5]]) / 2  # (softmax - onehot) / count
    assert np.allclose(grad, expected, rtol=1e-15, atol=1e-16)
    loss, grad = lc.cross_entropy_loss(logits, labels, mask=np.array([1, 0]))
    assert loss == pytest.approx(-np.log(0.75), rel=1e-15) and not grad[1].any()
    # Huge logits: stable (log-sum-exp), no overflow warning (warnings are errors here).
    loss, _ = lc.cross_entropy_loss(np.array([[1000.0, -1000.0]]), np.array([1]))
    assert loss == pytest.approx(2000.0)


@pytest.mark.parametrize("loss_fn,target", [
    (lc.mse_loss, np.random.default_rng(1).standard_normal((3, 4, 5))),
    (lc.cross_entropy_loss, np.random.default_rng(1).integers(0, 5, (3, 4))),
])
def test_gradients_match_finite_differences(loss_fn, target):
    pred = np.random.default_rng(0).standard_normal((3, 4, 5))
    mask = np.random.default_rng(2).random((3, 4, 1) if target.ndim == 3 else (3, 4)) < 0.7
    _, grad = loss_fn(pred, target, mask)
    numeric = np.empty_like(pred)
    flat, out = pred.reshape(-1), numeric.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + 1e-6
        up = loss_fn(pred, target, mask)[0]
        flat[i] = saved - 1e-6
        down = loss_fn(pred, target, mask)[0]
        flat[i] = saved
        out[i] = (up - down) / 2e-6
    # Central differences of a smooth loss of O(1): error ~1e-10.
    assert np.abs(numeric - grad).max() < 1e-8


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 7)) * 3
    labels = rng.integers(0, 7, 6)
    loss, grad = lc.cross_entropy_loss(logits, labels)
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-14)
    np.testing.assert_allclose(grad, t_logits.grad.numpy(), rtol=0, atol=1e-15)


def test_loss_errors():
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        lc.mse_loss(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="labels must hold integers"):
        lc.cross_entropy_loss(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        lc.cross_entropy_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must have shape logits.shape\[:-1\]"):
        lc.cross_entropy_loss(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="pred must be float32 or float64"):
        lc.mse_loss(np.zeros(3, np.int64), np.zeros(3))
