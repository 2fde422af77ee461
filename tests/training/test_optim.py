"""Optimizer steps against values computed by hand (the arithmetic is in the comments), then
against torch.optim over several steps; clipping and schedules.

One parameter p = 1.0, gradient g = 0.5 (then -1.0), lr = 0.1 unless stated.  float64
throughout; hand values are exact decimals or rounded to 15 digits, hence rel=1e-12.
"""

import numpy as np
import pytest

import lstm_core as lc


def run(optimizer_class, grads, **options):
    """p after one step per gradient in grads, starting from p = 1.0."""
    params = {"p": np.array([1.0])}
    opt = optimizer_class(params, **options)
    for g in grads:
        opt.step({"p": np.array([g])})
    return params["p"][0]


def test_sgd_plain_and_weight_decay():
    assert run(lc.SGD, [0.5], lr=0.1) == pytest.approx(0.95, rel=1e-12)  # 1 - 0.1*0.5
    # g' = 0.5 + 0.1*1.0 = 0.6  ->  1 - 0.1*0.6
    assert run(lc.SGD, [0.5], lr=0.1, weight_decay=0.1) == pytest.approx(0.94, rel=1e-12)


def test_sgd_momentum_and_nesterov():
    # buf1 = 0.5 -> p1 = 0.95;  buf2 = 0.9*0.5 + 0.5 = 0.95 -> p2 = 0.95 - 0.095 = 0.855
    assert run(lc.SGD, [0.5, 0.5], lr=0.1, momentum=0.9) == pytest.approx(0.855, rel=1e-12)
    # Nesterov: step = g + 0.9*buf.  buf1 = 0.5, step1 = 0.95 -> p1 = 0.905;
    # buf2 = 0.95, step2 = 0.5 + 0.855 = 1.355 -> p2 = 0.905 - 0.1355 = 0.7695
    assert run(lc.SGD, [0.5, 0.5], lr=0.1, momentum=0.9, nesterov=True) == pytest.approx(
        0.7695, rel=1e-12)
    with pytest.raises(ValueError, match="nesterov"):
        lc.SGD({"p": np.ones(1)}, lr=0.1, nesterov=True)


def test_adam_two_steps():
    # t=1: m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25 -> p = 1 - 0.1*0.5/(0.5 + 1e-8)
    p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert run(lc.Adam, [0.5], lr=0.1) == pytest.approx(p1, rel=1e-12)
    assert p1 == pytest.approx(0.9000000020, rel=1e-12)
    # t=2 with g = -1: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975;
    # m_hat = -0.055/0.19 = -0.289473684210526, v_hat = 0.00124975/0.001999 = 0.625187593796907
    # sqrt(v_hat) = 0.790688050875253 -> p2 = p1 - 0.1 * -0.289473684210526 / (0.790688050875253 + 1e-8)
    p2 = p1 + 0.1 * 0.289473684210526 / (0.790688050875253 + 1e-8)
    assert run(lc.Adam, [0.5, -1.0], lr=0.1) == pytest.approx(p2, rel=1e-12)


def test_adam_l2_versus_adamw_decoupled():
    # Adam: g' = 0.5 + 0.1 = 0.6, m_hat = 0.6, sqrt(v_hat) = 0.6 -> 1 - 0.1*0.6/(0.6 + 1e-8)
    assert run(lc.Adam, [0.5], lr=0.1, weight_decay=0.1) == pytest.approx(
        1 - 0.1 * 0.6 / (0.6 + 1e-8), rel=1e-12)
    # AdamW: p = 1*(1 - 0.1*0.1) = 0.99, then the plain Adam step of 0.1*0.5/(0.5+1e-8)
    assert run(lc.AdamW, [0.5], lr=0.1, weight_decay=0.1) == pytest.approx(
        0.99 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-12)


def test_clip_grad_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert lc.clip_grad_norm(grads, 1.0) == 5.0  # sqrt(9 + 16)
    factor = 1.0 / (5.0 + 1e-6)
    assert np.allclose(grads["a"], [3 * factor, 0], rtol=1e-14, atol=0)
    assert np.allclose(grads["b"], [[4 * factor]], rtol=1e-14, atol=0)
    small = {"a": np.array([0.3, 0.4])}
    assert lc.clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    assert np.array_equal(small["a"], [0.3, 0.4]), "below the bound: untouched"


def test_schedules_scale_the_learning_rate():
    params = {"p": np.array([0.0])}
    opt = lc.SGD(params, lr=1.0, schedule=lc.step_schedule(2, gamma=0.5))
    lrs = [opt.step({"p": np.array([1.0])}) for _ in range(5)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert params["p"][0] == -3.25  # -(1 + 1 + 0.5 + 0.5 + 0.25)
    cosine = lc.cosine_schedule(total_steps=10, warmup_steps=2, final_factor=0.1)
    assert [cosine(0), cosine(1)] == [0.5, 1.0]  # linear warm-up
    assert cosine(2) == 1.0 and cosine(6) == pytest.approx(0.55) and cosine(10) == pytest.approx(0.1)
    assert cosine(50) == pytest.approx(0.1)


def test_step_checks_keys_and_shapes():
    opt = lc.Adam({"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        opt.step({"a": np.zeros(2)})
    with pytest.raises(ValueError, match=r"grads\['b'\] has shape \(2,\), expected \(3,\)"):
        opt.step({"a": np.zeros(2), "b": np.zeros(2)})
    with pytest.raises(TypeError, match="dict name -> numpy array"):
        lc.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        lc.SGD({"a": np.zeros(2)}, lr=-1.0)


@pytest.mark.parametrize("name,options", [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
])
def test_matches_torch_optim_over_steps(name, options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 4))
    grads = rng.standard_normal((6, 3, 4))
    params = {"w": start.copy()}
    opt = getattr(lc, name)(params, **options)
    tensor = torch.tensor(start, requires_grad=True)
    torch_opt = getattr(torch.optim, name)([tensor], **options)
    for g in grads:
        opt.step({"w": g})
        tensor.grad = torch.from_numpy(g.copy())
        torch_opt.step()
    # float64, 6 steps: the two differ only in the order of a few operations.
    np.testing.assert_allclose(params["w"], tensor.detach().numpy(), rtol=1e-12, atol=1e-14)
