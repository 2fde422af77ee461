"""The reduced-precision formulas of the numpy reference (lstm_core.precision, and
reference.lstm_forward / lstm_backward / lstm_cell with precision=...): the bfloat16 rounding bit
for bit, hand-computed steps, the derived error bounds, the straight-through gradient, and the
peers (torch's bfloat16 conversion, autocast LSTM and dynamic int8 LSTM).  The kernels will be
tested against these functions.
"""

import math
import os

import numpy as np
import pytest

from lstm_core import precision as P
from lstm_core import reference as ref

try:
    import torch
except ImportError:  # the torch comparisons skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
# torch's dynamic quantization throws and catches C++ exceptions inside (its packed-weight
# script objects), which a process under AddressSanitizer cannot survive: its runtime,
# preloaded into a Python not linked against libstdc++, intercepts no __cxa_throw.  The
# sanitizer run (.ci/sanitize) skips those comparisons; the ordinary run has them.
under_sanitizer = pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                                     reason="torch throws C++ exceptions under the sanitizer")


def lstm_problem(T, B, I, H, seed):
    """x, w_ih, w_hh, bias, h0, c0 in float64, torch's initialisation scale; and b_ih, b_hh."""
    rng = np.random.default_rng(seed)
    k = 1 / math.sqrt(H)
    b_ih, b_hh = rng.uniform(-k, k, 4 * H), rng.uniform(-k, k, 4 * H)
    args = (rng.standard_normal((T, B, I)), rng.uniform(-k, k, (4 * H, I)),
            rng.uniform(-k, k, (4 * H, H)), b_ih + b_hh, rng.uniform(-0.5, 0.5, (B, H)),
            rng.uniform(-1, 1, (B, H)))
    return args, (b_ih, b_hh)


def grads_for(T, B, H, seed):
    rng = np.random.default_rng(seed + 1)
    return rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))


# ------------------------------------------------------------------------------ bfloat16 rounding


def float32_grid():
    """Every float32 whose low 13 bits are one of 0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, over
    all 2**19 values of the upper bits (every sign, exponent and bits 13..22: ties at low
    16 bits 0x8000 with bit 16 both 0 and 1, their neighbours, subnormals, infinities, NaNs),
    plus the edges named."""
    upper = np.arange(2**19, dtype=np.uint32) << 13
    low = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF], dtype=np.uint32)
    edges = np.array([0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F7FFF, 0x7F7F8000, 0x00000001, 0x807FFFFF,
                      0x00800000, 0x7F800001, 0xFF800001, 0x7FC00000, 0x7FBFFFFF],
                     dtype=np.uint32)
    return np.concatenate([(upper[:, None] | low[None, :]).ravel(), edges]).view(np.float32)


@needs_torch
def test_bfloat16_bits_match_torch_except_where_the_instruction_differs():
    """torch's .to(torch.bfloat16) is round to nearest even on the float32 bits: the same bits
    as ours for every normal and infinite value; for subnormals it rounds (ours, with daz=False,
    too) where the instruction gives a signed zero; for NaN both give a NaN (torch's
    0xFFFF or 0x7FC0, the instruction's upper bits with the quiet bit set)."""
    values = float32_grid()
    theirs = torch.from_numpy(values.copy()).to(torch.bfloat16).view(torch.int16).numpy()
    theirs = theirs.view(np.uint16)
    ours = P.bfloat16_bits(values)
    u = values.view(np.uint32)
    nan = np.isnan(values)
    subnormal = ((u & 0x7F800000) == 0) & ((u & 0x007FFFFF) != 0)
    plain = ~nan & ~subnormal
    assert plain.sum() > 3_000_000
    np.testing.assert_array_equal(ours[plain], theirs[plain])
    # the instruction: subnormal -> zero of the same sign
    np.testing.assert_array_equal(ours[subnormal], (u[subnormal] >> 16) & 0x8000)
    # daz=False rounds them like torch
    np.testing.assert_array_equal(P.bfloat16_bits(values, daz=False)[~nan], theirs[~nan])
    # NaN stays NaN: upper 16 bits with the quiet bit set
    assert np.isnan(P.round_bfloat16(values[nan])).all()
    np.testing.assert_array_equal(ours[nan], (u[nan] >> 16) | 0x0040)


def test_bfloat16_bits_follow_the_sdm_pseudocode_on_named_values():
    cases = {
        0x3F808000: 0x3F80,  # 1 + 2**-8: a tie, bit 16 is 0: stays (to even)
        0x3F818000: 0x3F82,  # 1 + 3 * 2**-8: a tie, bit 16 is 1: up (to even)
        0x3F808001: 0x3F81,  # just above the tie: up
        0x3F807FFF: 0x3F80,  # just below: down
        0x7F7FFFFF: 0x7F80,  # the largest float32 rounds to infinity
        0x7F7F7FFF: 0x7F7F,  # the largest bfloat16's neighbourhood stays finite
        0xFF800000: 0xFF80,  # -inf
        0x80000000: 0x8000,  # -0
        0x807FFFFF: 0x8000,  # negative subnormal: -0 (denormals are zero)
        0x00800000: 0x0080,  # the smallest normal is exact
        0x7F800001: 0x7FC0,  # signalling NaN: quiet bit set, payload's upper bits kept
        0xFFBFFFFF: 0xFFFF,  # negative NaN keeps its sign
    }
    u = np.array(list(cases), dtype=np.uint32)
    expected = np.array(list(cases.values()), dtype=np.uint16)
    np.testing.assert_array_equal(P.bfloat16_bits(u.view(np.float32)), expected)


def test_round_bfloat16_returns_exact_bfloat16_values_in_the_input_dtype():
    rng = np.random.default_rng(0)
    x32 = rng.standard_normal(1000).astype(np.float32)
    r32 = P.round_bfloat16(x32)
    assert r32.dtype == np.float32
    assert not (r32.view(np.uint32) & 0xFFFF).any()
    r64 = P.round_bfloat16(x32.astype(np.float64))
    assert r64.dtype == np.float64
    np.testing.assert_array_equal(r64, r32.astype(np.float64))
    # relative error at most half a bfloat16 ulp
    assert np.all(np.abs(r32.astype(np.float64) - x32) <= 2.0**-8 * np.abs(x32))


def test_float64_values_are_rounded_to_float32_first():
    """1 + 2**-8 + 2**-30 rounds to the tie 1 + 2**-8 in float32, which then rounds to even
    (1): the double rounding a float32 kernel does; straight to bfloat16 it would be 1 + 2**-7.
    Beyond float32's range a float64 value becomes infinity."""
    assert P.round_bfloat16(np.array([1 + 2**-8 + 2**-30]))[0] == 1.0
    assert P.round_bfloat16(np.array([-1e39]))[0] == -np.inf


# ------------------------------------------------------------------------------ int8 quantization


def test_int8_quantization_by_hand():
    """x = (0.3, -0.1): lo = -0.1, hi = 0.3, s = 0.4/255, zp = rint(0.1/s) = rint(63.75) = 64,
    q = (rint(191.25) + 64, rint(-63.75) + 64) = (255, 0).  Weight row (127/128, -63.5/128):
    s_w = 1/128 exactly, q = (127, rint(-63.5) = -64 (a true tie: half to even)), column sum 63;
    a zero row gets scale 1."""
    qa = P.quantize_activations(np.array([[0.3, -0.1]]))
    assert qa.scale[0] == 0.4 / 255
    assert qa.zero_point.tolist() == [64] and qa.q.tolist() == [[255, 0]]
    qw = P.quantize_weights(np.array([[127 / 128, -63.5 / 128], [0.0, 0.0]]))
    assert qw.scale.tolist() == [1 / 128, 1.0]
    assert qw.q.tolist() == [[127, -64], [0, 0]] and qw.column_sums.tolist() == [63, 0]
    acc = 255 * 127 + 0 * -64 - 64 * 63  # the integer sum with its zero-point compensation
    assert acc == (255 - 64) * 127 + (0 - 64) * -64
    np.testing.assert_array_equal(P.int8_product(qa, qw),
                                  [[(0.4 / 255) * (1 / 128) * acc, 0.0]])


def test_activation_quantization_keeps_zero_exact_and_errors_within_half_a_step():
    rng = np.random.default_rng(1)
    for a in (rng.standard_normal((5, 40)), rng.uniform(0, 3, (5, 40)),
              -rng.uniform(0, 3, (5, 40)), np.zeros((2, 7))):
        qa = P.quantize_activations(a)
        assert qa.q.min() >= 0 and qa.q.max() <= 255
        dequantized = qa.scale[:, None] * (qa.q - qa.zero_point[:, None])
        assert np.all(np.abs(dequantized - a) <= qa.scale[:, None] / 2 * (1 + 1e-12))
        # 0 is representable: a row's zero elements come back exactly 0
        zeroed = a.copy()
        zeroed[:, ::3] = 0.0
        qz = P.quantize_activations(zeroed)
        assert np.all(qz.q[:, ::3] == qz.zero_point[:, None])


def test_int8_is_batch_invariant():
    """Per-row scales: a sequence's result does not depend on the others in the batch (bit
    for bit)."""
    args, _ = lstm_problem(6, 5, 7, 4, seed=3)
    x, w_ih, w_hh, bias, h0, c0 = args
    y, h_n, c_n, _ = ref.lstm_forward(*args, training=False, precision="int8")
    for b in range(5):
        yb, hb, cb, _ = ref.lstm_forward(x[:, b:b + 1], w_ih, w_hh, bias, h0[b:b + 1],
                                         c0[b:b + 1], training=False, precision="int8")
        np.testing.assert_array_equal(yb[:, 0], y[:, b])
        np.testing.assert_array_equal(cb[0], c_n[b])
    # with lengths: each sequence as if it ran alone for its own number of steps
    lengths = np.array([6, 0, 3, 1, 4])
    y, h_n, c_n, _ = ref.lstm_forward(*args, training=False, lengths=lengths, precision="int8")
    for b, n in enumerate(lengths):
        yb, hb, cb, _ = ref.lstm_forward(x[:n, b:b + 1], w_ih, w_hh, bias, h0[b:b + 1],
                                         c0[b:b + 1], training=False, precision="int8")
        np.testing.assert_array_equal(yb[:, 0], y[:n, b])
        assert not y[n:, b].any()
        np.testing.assert_array_equal(hb[0], h_n[b])
        np.testing.assert_array_equal(cb[0], c_n[b])


# ------------------------------------------------------------------------------ hand-computed steps


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def scalar_lstm_step(z, c_prev):
    """One step of an H = 1 LSTM from its four pre-activations (i, f, g, o), in Python floats."""
    i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), math.tanh(z[2]), sigmoid(z[3])
    c = f * c_prev + i * g
    return o * math.tanh(c), c


def test_bfloat16_step_by_hand():
    """H = 1, I = 2.  Rounded by hand (bfloat16 keeps 8 significant bits):
    x = (1 + 2**-8, -3 - 2**-7): 1 (a tie, to even), -3 - 2**-7 = -3.0078125 rounds to -3.0
    (spacing 2**-6 in [2, 4): a tie, to even, -3's last bit is 0); h0 = 0.3 -> 0.30078125;
    weights below; the bias, c0 and everything after the products stay exact."""
    x = np.array([[[1 + 2**-8, -3 - 2**-7]]])
    w_ih = np.array([[0.5, 0.25], [1 + 2**-9, -0.5], [-0.125, 1.0], [2.0, 2**-10 + 2**-19]])
    w_hh = np.array([[0.3], [-0.7], [1.5], [0.1]])
    bias = np.array([0.01, -0.02, 0.03, 0.04])
    h0, c0 = np.array([[0.3]]), np.array([[-0.4]])
    x_r = [1.0, -3.0]
    w_ih_r = [[0.5, 0.25], [1.0, -0.5], [-0.125, 1.0], [2.0, 2**-10]]
    # 0.3 = 1.00110011001100110011... * 2**-2: 8 significant bits 1.0011010 (round up)
    # = 0.30078125; 0.7 -> 0.69921875; 1.5 exact; 0.1 -> 0.10009765625
    h_r, w_hh_r = 0.30078125, [0.30078125, -0.69921875, 1.5, 0.10009765625]
    z = [x_r[0] * w_ih_r[j][0] + x_r[1] * w_ih_r[j][1] + h_r * w_hh_r[j] + bias[j]
         for j in range(4)]
    h1, c1 = scalar_lstm_step(z, -0.4)
    y, h_n, c_n, _ = ref.lstm_forward(x, w_ih, w_hh, bias, h0, c0, precision="bfloat16")
    assert h_n[0, 0] == pytest.approx(h1, rel=1e-14, abs=1e-15)  # float64 rounding only
    assert c_n[0, 0] == pytest.approx(c1, rel=1e-14, abs=1e-15)
    hc = ref.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias, precision="bfloat16")
    assert hc[0][0, 0] == pytest.approx(h1, rel=1e-14, abs=1e-15)


def test_int8_step_by_hand():
    """H = 1, I = 2: x = (0.3, -0.1) as in test_int8_quantization_by_hand (q 255, 0; zp 64,
    s_x = 0.4/255); h0 = 0.2: lo = 0, hi = 0.2, s_h = 0.2/255, zp 0, q 255; each weight row is
    quantized on its own (row 0: a true tie -63.5 -> -64, as in the test above)."""
    x = np.array([[[0.3, -0.1]]])
    w_ih = np.array([[127 / 128, -63.5 / 128], [1.0, 0.3], [-0.2, 0.6], [0.127, 0.05]])
    w_hh = np.array([[0.4], [-0.8], [0.2], [1.0]])
    bias = np.array([0.1, 0.2, -0.1, 0.0])
    h0, c0 = np.array([[0.2]]), np.array([[0.5]])
    s_x, zp_x, q_x = 0.4 / 255, 64, [255, 0]
    s_h, zp_h, q_h = 0.2 / 255, 0, 255
    # per row: s_w = max|w|/127, q = rint(w/s_w) (half to even)
    s_ih = [(127 / 128) / 127, 1.0 / 127, 0.6 / 127, 0.127 / 127]
    q_ih = [[127, -64], [127, 38], [-42, 127], [127, 50]]  # 38.1, -42.33, 50.0 rounded
    s_hh = [0.4 / 127, 0.8 / 127, 0.2 / 127, 1.0 / 127]
    q_hh = [127, -127, 127, 127]
    z = []
    for j in range(4):
        acc_x = sum(q_x[k] * q_ih[j][k] for k in range(2)) - zp_x * sum(q_ih[j])
        acc_h = q_h * q_hh[j] - zp_h * q_hh[j]
        z.append(s_x * s_ih[j] * acc_x + s_h * s_hh[j] * acc_h + bias[j])
    h1, c1 = scalar_lstm_step(z, 0.5)
    y, h_n, c_n, cache = ref.lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=False,
                                          precision="int8")
    assert cache is None
    assert h_n[0, 0] == pytest.approx(h1, rel=1e-14, abs=1e-15)
    assert c_n[0, 0] == pytest.approx(c1, rel=1e-14, abs=1e-15)
    np.testing.assert_array_equal(P.quantize_weights(w_ih).q, q_ih)


# ------------------------------------------------------------------------------ default unchanged


@pytest.mark.parametrize("lengths", [None, [3, 0, 2]])
def test_default_precision_is_the_full_precision_path_bit_for_bit(lengths, dtype):
    """precision=None runs the same code as before the argument existed: equal bits to a call
    without it and to the plain step written out here (same operations, same order)."""
    args, _ = lstm_problem(3, 3, 5, 4, seed=11)
    args = tuple(a.astype(dtype) for a in args)
    a = ref.lstm_forward(*args, lengths=lengths)
    b = ref.lstm_forward(*args, lengths=lengths, precision=None)
    for u, v in zip(a[:3], b[:3]):
        assert u.dtype == dtype
        np.testing.assert_array_equal(u, v)
    dy, dh_n, dc_n = grads_for(3, 3, 4, seed=11)
    for u, v in zip(ref.lstm_backward(a[3], dy, dh_n, dc_n),
                    ref.lstm_backward(b[3], dy, dh_n, dc_n)):
        np.testing.assert_array_equal(u, v)
    if lengths is None:
        x, w_ih, w_hh, bias, h, c = (np.asarray(v, dtype=np.float64) for v in args)
        for t in range(3):
            z = x[t] @ w_ih.T + h @ w_hh.T + bias
            i, f, g, o = np.split(ref._gates(z, 4), 4, axis=1)
            c = f * c + i * g
            h = o * np.tanh(c)
        np.testing.assert_array_equal(a[1], h.astype(dtype))
        np.testing.assert_array_equal(a[2], c.astype(dtype))


def test_precision_argument_is_checked():
    args, _ = lstm_problem(2, 1, 3, 2, seed=0)
    with pytest.raises(ValueError, match="precision"):
        ref.lstm_forward(*args, precision="float16")
    with pytest.raises(ValueError, match="inference only"):
        ref.lstm_forward(*args, precision="int8")  # training=True is the default
    with pytest.raises(ValueError, match="precision"):
        ref.lstm_cell(args[0][0], args[4], args[5], *args[1:4], precision="int4")
    with pytest.raises(TypeError):
        ref.lstm_forward(*args, None, None, "bfloat16")  # keyword-only
    # a cache from an int8 forward cannot be built by the public API; the backward refuses it
    cache = ref._lstm_forward(*args, None, "int8")[3]
    with pytest.raises(ValueError, match="inference only"):
        ref.lstm_backward(cache)


# ------------------------------------------------------------------------------ error bounds


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("seed", range(6))
def test_products_within_their_bound(precision, seed):
    """P(a, w) against a @ w.T elementwise, within product_error_bound, on operands of mixed
    scales (so per-row scales and the bfloat16 relative error both matter)."""
    rng = np.random.default_rng(seed)
    K = int(rng.integers(1, 300))
    a = rng.standard_normal((6, K)) * rng.uniform(0.01, 10, (6, 1))
    w = rng.standard_normal((9, K)) * rng.uniform(0.01, 2, (9, 1))
    weights = P.reduce_weights(w, w, precision)
    q = weights.quantized[0] if weights.quantized else None
    error = np.abs(P.product(a, weights.w_ih, q, precision) - a @ w.T)
    bound = P.product_error_bound(a, w, precision)
    assert np.all(error <= bound)
    # the bound is not vacuous: within 200x of the worst error (measured 5-50x: it adds the
    # K rounding errors with one sign)
    assert bound.max() < 200 * error.max()


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 1, 1), (1, 4, 7, 8), (1, 16, 67, 64), (2, 3, 5, 8),
                                     (3, 2, 9, 4)])
def test_forward_within_the_derived_bound(precision, T, B, I, H):
    """The reference's reduced forward against the exact float64 forward, within
    forward_error_bound elementwise on y, h_n and c_n."""
    for seed in range(4):
        args, _ = lstm_problem(T, B, I, H, seed=100 * seed + T)
        exact = ref.lstm_forward(*args)
        reduced = ref.lstm_forward(*args, training=False, precision=precision)
        bound = P.forward_error_bound(*args, precision=precision)
        for name, r, e, b in zip(("y", "h_n", "c_n"), reduced[:3], exact[:3], bound):
            assert np.all(np.abs(r - e) <= b), name
        if precision == "bfloat16" or min(I, H) > 1:  # int8 is exact on rows of one value
            assert np.abs(reduced[0] - exact[0]).max() > 0  # the precision changed something


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_cell_is_one_step_of_the_forward(precision):
    args, _ = lstm_problem(1, 4, 6, 5, seed=2)
    x, w_ih, w_hh, bias, h0, c0 = args
    _, h_n, c_n, _ = ref.lstm_forward(*args, training=False, precision=precision)
    h1, c1 = ref.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias, precision=precision)
    np.testing.assert_array_equal(h1, h_n)
    np.testing.assert_array_equal(c1, c_n)


# ------------------------------------------------------------------------------ bfloat16 backward


def surrogate_forward(args, offsets):
    """The bfloat16 forward with its rounding frozen as additive offsets: every operand v of a
    product is v + offset(v), the offsets those of the base point (round_bfloat16(v) - v).
    At the base point this equals the bfloat16 forward; its exact derivative is the
    straight-through gradient (rounding taken as the identity)."""
    x, w_ih, w_hh, bias, h, c = args
    d_x, d_ih, d_hh, d_h = offsets
    H = w_hh.shape[1]
    ys = []
    for t in range(x.shape[0]):
        z = (x[t] + d_x[t]) @ (w_ih + d_ih).T + (h + d_h[t]) @ (w_hh + d_hh).T + bias
        i, f, g, o = np.split(ref._gates(z, H), 4, axis=1)
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


def test_bfloat16_backward_is_the_straight_through_gradient():
    """Central finite differences of the surrogate (step 1e-6: truncation ~1e-12, cancellation
    ~1e-10) in random directions against _lstm_backward(round_dz=False), and against the
    public backward within the effect of rounding dz (test below): 1e-7 relative."""
    T, B, I, H = 4, 3, 5, 4
    args, _ = lstm_problem(T, B, I, H, seed=21)
    dy, dh_n, dc_n = grads_for(T, B, H, seed=21)
    y, h_n, c_n, cache = ref.lstm_forward(*args, precision="bfloat16")
    x, w_ih, w_hh = args[:3]
    rb = P.round_bfloat16
    offsets = (rb(x) - x, rb(w_ih) - w_ih, rb(w_hh) - w_hh, rb(cache.h[:T]) - cache.h[:T])
    ys, hs, cs = surrogate_forward(args, offsets)
    np.testing.assert_allclose(ys, y, rtol=0, atol=1e-15)  # it is the bfloat16 forward

    def loss(a):
        out = surrogate_forward(a, offsets)
        return np.sum(out[0] * dy) + np.sum(out[1] * dh_n) + np.sum(out[2] * dc_n)

    grads = ref._lstm_backward(cache, dy, dh_n, dc_n, round_dz=False)
    by_arg = {0: grads.dx, 1: grads.dw_ih, 2: grads.dw_hh, 3: grads.dbias, 4: grads.dh0,
              5: grads.dc0}
    rng = np.random.default_rng(5)
    eps = 1e-6
    for index, g in by_arg.items():
        for _ in range(3):
            direction = rng.standard_normal(g.shape)
            plus = list(args)
            minus = list(args)
            plus[index] = args[index] + eps * direction
            minus[index] = args[index] - eps * direction
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = float(np.sum(g * direction))
            assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic)), index


def backward_rounding_bound(cache, dy, dh_n, dc_n):
    """Elementwise bounds on |public bfloat16 backward - straight-through gradient|: the only
    difference is round_bfloat16(dz) (relative error <= u = 2**-8 + 2**-23) as the operand of
    the three products.  Backwards in time, with E_dh, E_dc the bounds on the running dh, dc:
        E_dz_t = [E_dc_t |g i (1-i)|, E_dc_t |c_prev f (1-f)|, E_dc_t |i (1-g^2)|,
                  E_dh_t |tanh(c) o (1-o)|],  E_dc_t = E_dc + E_dh_t |o (1 - tanh(c)^2)|
        E_dh (carried) = (E_dz_t + u |dz~_t|) @ |w~_hh|,  E_dc (carried) = E_dc_t |f|
    and dx, dw_ih, dw_hh from (E_dz + u |dz~|) against |w~_ih|, |x~|, |h~| (dz~: the exact
    straight-through dz, recomputed here).  Float64 arithmetic adds ~1e-15 relative."""
    u = P.BF16_UNIT_ROUNDOFF
    T, B, I = cache.x.shape
    H = cache.w_hh.shape[1]
    w_ih, w_hh = np.abs(cache.reduced.w_ih), np.abs(cache.reduced.w_hh)
    x = np.abs(P.round_bfloat16(cache.x))
    h = np.abs(P.round_bfloat16(cache.h[:T]))
    dh, dc = dh_n.copy(), dc_n.copy()
    e_dh, e_dc = np.zeros((B, H)), np.zeros((B, H))
    e_dz_all = np.zeros((T, B, 4 * H))
    e_dz_sum = np.zeros(4 * H)
    for t in reversed(range(T)):
        i, f, g, o = np.split(cache.gates[t], 4, axis=1)
        tanh_c = np.tanh(cache.c[t + 1])
        dh_t = dh + dy[t]
        dc_t = dc + dh_t * o * (1 - tanh_c**2)
        dz = np.concatenate([dc_t * g * i * (1 - i), dc_t * cache.c[t] * f * (1 - f),
                             dc_t * i * (1 - g**2), dh_t * tanh_c * o * (1 - o)], axis=1)
        e_dc_t = e_dc + e_dh * np.abs(o * (1 - tanh_c**2))
        e_dz = np.concatenate([e_dc_t * np.abs(g * i * (1 - i)),
                               e_dc_t * np.abs(cache.c[t] * f * (1 - f)),
                               e_dc_t * np.abs(i * (1 - g**2)),
                               e_dh * np.abs(tanh_c * o * (1 - o))], axis=1)
        e_dz_sum = e_dz_sum + e_dz.sum(axis=0)
        e_dz_all[t] = e_dz + u * np.abs(dz)
        e_dh = e_dz_all[t] @ w_hh
        e_dc = e_dc_t * np.abs(f)
        dh = dz @ cache.reduced.w_hh
        dc = dc_t * f
    rows = e_dz_all.reshape(T * B, 4 * H)
    e_dbias = e_dz_sum  # dbias sums dz itself, unrounded: only the carried error
    return {"dx": (rows @ w_ih).reshape(T, B, I), "dw_ih": rows.T @ x.reshape(T * B, I),
            "dw_hh": rows.T @ h.reshape(T * B, H), "dbias": e_dbias, "dh0": e_dh,
            "dc0": e_dc}


@pytest.mark.parametrize("T,B,I,H", [(1, 2, 3, 4), (5, 3, 6, 8), (12, 4, 16, 16)])
def test_bfloat16_backward_within_the_rounding_of_dz(T, B, I, H):
    args, _ = lstm_problem(T, B, I, H, seed=T + H)
    dy, dh_n, dc_n = grads_for(T, B, H, seed=T)
    cache = ref.lstm_forward(*args, precision="bfloat16")[3]
    public = ref.lstm_backward(cache, dy, dh_n, dc_n)
    straight = ref._lstm_backward(cache, dy, dh_n, dc_n, round_dz=False)
    bound = backward_rounding_bound(cache, dy, dh_n, dc_n)
    for name in public._fields:
        a, s = getattr(public, name), getattr(straight, name)
        slack = 1e-13 * max(1.0, np.abs(s).max())  # float64 evaluation order
        assert np.all(np.abs(a - s) <= bound[name] + slack), name
    assert np.abs(public.dw_hh - straight.dw_hh).max() > 0  # rounding dz did something


@pytest.mark.parametrize("T,B,I,H", [(10, 4, 16, 16), (30, 8, 32, 32)])
def test_bfloat16_gradients_near_float64(T, B, I, H):
    """Measured, not derived: every gradient within 2**-5 (3.1e-2) of max(1, max |g|) of the
    float64 gradient.  Each gradient is a sum of products whose factors carry the operands'
    2**-8 relative rounding and the forward's error (~2e-3 here); the measured worst is
    4.1e-3 over these and S2-sized problems, 2**-5 leaves 7x for other seeds, and a wrong
    operand (an unrounded or transposed weight, dz of the wrong step) gives O(1)."""
    args, _ = lstm_problem(T, B, I, H, seed=5)
    dy, dh_n, dc_n = grads_for(T, B, H, seed=5)
    exact = ref.lstm_backward(ref.lstm_forward(*args)[3], dy, dh_n, dc_n)
    reduced = ref.lstm_backward(ref.lstm_forward(*args, precision="bfloat16")[3], dy, dh_n,
                                dc_n)
    for name, r, e in zip(exact._fields, reduced, exact):
        assert np.abs(r - e).max() <= 2.0**-5 * max(1.0, np.abs(e).max()), name


# ------------------------------------------------------------------------------ the peers


def torch_lstm(args, biases):
    x, w_ih, w_hh = args[:3]
    module = torch.nn.LSTM(x.shape[2], w_hh.shape[1])
    with torch.no_grad():
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh),
                            ("bias_ih_l0", biases[0]), ("bias_hh_l0", biases[1])):
            getattr(module, name).copy_(torch.from_numpy(value))
    return module


def _cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@needs_torch
def test_bfloat16_against_torch_autocast():
    """torch.autocast("cpu", torch.bfloat16) runs the LSTM through oneDNN with bfloat16
    operands (rounded as ours: the same bits, test above), float32 accumulation, and rounds y,
    h_n, c_n and the state between steps to bfloat16 too (our state stays full precision).
    Tolerance 2**-6 (1.6e-2) absolute on the outputs: each is within ~4e-3 of float64
    (measured: ours 2.2-3.5e-3, torch's 2.2-4.9e-3 on S2/S3-sized problems), plus torch's
    output rounding (half an ulp, 2**-9 relative, <= 3.9e-3 for |c| < 2); gradients 2**-5 of
    max(1, max |g|), as test_bfloat16_gradients_near_float64.  oneDNN has no bfloat16 LSTM on
    CPUs without AVX-512 (the call raises a C++ exception, which a process running under
    AddressSanitizer cannot survive: its runtime, preloaded into a Python not linked against
    libstdc++, intercepts no __cxa_throw): the test skips there before calling torch."""
    if "avx512f" not in _cpu_flags():
        pytest.skip("torch has no bfloat16 LSTM on CPUs without AVX-512 (oneDNN)")
    T, B, I, H = 20, 8, 32, 32
    args, biases = lstm_problem(T, B, I, H, seed=7)
    x, _, _, _, h0, c0 = args
    dy = grads_for(T, B, H, seed=7)[0]
    module = torch_lstm(args, biases).float()
    xt = torch.from_numpy(x).float().requires_grad_()
    h0t = torch.from_numpy(h0).float()[None].requires_grad_()
    c0t = torch.from_numpy(c0).float()[None].requires_grad_()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, (h_n, c_n) = module(xt, (h0t, c0t))
    except RuntimeError as error:
        pytest.skip(f"torch has no bfloat16 LSTM on this CPU: {str(error)[:80]}")
    y.float().backward(torch.from_numpy(dy).float())
    ours = ref.lstm_forward(*args, precision="bfloat16")
    for name, t, o in (("y", y, ours[0]), ("h_n", h_n[0], ours[1]), ("c_n", c_n[0], ours[2])):
        assert np.abs(t.detach().float().numpy() - o).max() <= 2.0**-6, name
    grads = ref.lstm_backward(ours[3], dy)
    theirs = (xt.grad, module.weight_ih_l0.grad, module.weight_hh_l0.grad,
              module.bias_ih_l0.grad, h0t.grad[0], c0t.grad[0])
    for name, t, o in zip(grads._fields, theirs, grads):
        assert np.abs(t.float().numpy() - o).max() <= 2.0**-5 * max(1.0, np.abs(o).max()), name


def torch_int8_lstm(args, biases):
    """torch.ao.quantization.quantize_dynamic of an nn.LSTM (inside a container: the function
    replaces children, never the module it is given)."""
    holder = torch.nn.ModuleDict({"lstm": torch_lstm(args, biases)})
    return torch.ao.quantization.quantize_dynamic(holder, {torch.nn.LSTM},
                                                  dtype=torch.qint8)["lstm"]


@needs_torch
@under_sanitizer
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.ao.quantization's notice
@pytest.mark.filterwarnings("ignore::UserWarning")  # and its quantized tensors' notice
@pytest.mark.parametrize("seed", range(3))
def test_int8_step_against_torch_quantize_dynamic(seed):
    """The schemes differ: torch quantizes the weights per tensor (s = max |w| / 127.5 over
    all 4H rows) and the activations per tensor (x over the whole (T, B, I) sequence, h per
    step over (B, H)) as uint8 with reduce_range (7 bits: s = range / 127); ours per row, 8
    bits.  So the two agree within the sum of the two schemes' bounds; for one step both are
    derived: ours from forward_error_bound, torch's by the same formulas with its steps (taken
    coarse: s_w = max |w| / 127, s_a = range / 127), plus 1e-6 for torch's float32 rescale
    and pointwise math (K <= 70 sums at 2**-24, values O(1))."""
    T, B, I, H = 1, 6, 24, 16
    args, biases = lstm_problem(T, B, I, H, seed=seed)
    x, w_ih, w_hh, bias, h0, c0 = args
    module = torch_int8_lstm(args, biases)
    with torch.no_grad():
        y, (h_n, c_n) = module(torch.from_numpy(x).float(),
                               (torch.from_numpy(h0).float()[None],
                                torch.from_numpy(c0).float()[None]))
    ours = ref.lstm_forward(*args, training=False, precision="int8")
    exact = ref.lstm_forward(*args, training=False)
    bound_ours = P.forward_error_bound(*args, precision="int8")

    def per_tensor(a):  # torch's activation error: half a 7-bit step over the whole tensor
        lo, hi = min(0.0, a.min()), max(0.0, a.max())
        return np.full(a.shape, (hi - lo) / 127 / 2)

    def per_tensor_weights(w):
        return np.full(w.shape, np.abs(w).max() / 127 / 2)

    dz = (P.quantization_product_bound(np.abs(x[0]), np.abs(w_ih), per_tensor(x[0]),
                                       per_tensor_weights(w_ih))
          + P.quantization_product_bound(np.abs(h0), np.abs(w_hh), per_tensor(h0),
                                         per_tensor_weights(w_hh)))
    dh_torch, dc_torch = P.step_error_bound(dz, c0)
    assert np.all(np.abs(h_n[0].numpy() - exact[1]) <= dh_torch + 1e-6)  # torch's own bound
    assert np.all(np.abs(h_n[0].numpy() - ours[1]) <= dh_torch + bound_ours.h_n + 1e-6)
    assert np.all(np.abs(c_n[0].numpy() - ours[2]) <= dc_torch + bound_ours.c_n + 1e-6)
    # not trivially far apart: both are int8 LSTMs of the same weights
    assert np.abs(h_n[0].numpy() - ours[1]).max() < 0.05


# ------------------------------------------------------------------------------ the kernels' tolerance


def float32_step(args, precision):
    """One step as a float32 kernel would compute it: float32 operands and state, the
    reduced operands (bfloat16 values, or int8 codes from float32 arithmetic), float32
    sums (numpy's sgemm), float32 pointwise math."""
    x, w_ih, w_hh, bias, h0, c0 = (a.astype(np.float32) for a in args)
    f32 = np.float32
    if precision == "bfloat16":
        rb = P.round_bfloat16
        z = rb(x[0]) @ rb(w_ih).T + rb(h0) @ rb(w_hh).T + bias
    else:
        z = bias.copy()
        for a, w in ((x[0], w_ih), (h0, w_hh)):
            lo = np.minimum(a.min(axis=1), f32(0))
            hi = np.maximum(a.max(axis=1), f32(0))
            s_a = np.where(hi > lo, (hi - lo) / f32(255), f32(1))
            zp = np.clip(np.rint(-lo / s_a), 0, 255).astype(np.int64)
            q_a = np.clip(np.rint(a / s_a[:, None]) + zp[:, None], 0, 255).astype(np.int64)
            s_w = np.abs(w).max(axis=1) / f32(127)
            q_w = np.rint(w / s_w[:, None]).astype(np.int64)
            acc = q_a @ q_w.T - zp[:, None] * q_w.sum(axis=1)[None, :]
            z = z + (s_a[:, None] * s_w[None, :]) * acc.astype(np.float32)
    H = w_hh.shape[1]
    sig = lambda v: f32(1) / (f32(1) + np.exp(-v))  # noqa: E731
    i, f, o = sig(z[:, :H]), sig(z[:, H:2 * H]), sig(z[:, 3 * H:])
    g = np.tanh(z[:, 2 * H:3 * H])
    c = f * c0 + i * g
    return o * np.tanh(c), c


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("seed", range(4))
def test_a_float32_emulation_meets_the_kernels_tolerance(precision, seed):
    """The tolerance the kernels will be tested with, for one step on float32 inputs:
    forward_error_bound(accumulation="float32", pointwise_eps=4 * 2**-24) against the exact
    forward.  A float32 emulation of each scheme (float32 sums, float32 quantization
    arithmetic, so codes may differ from the reference's by one where a / s_a lies within a
    float32 rounding of a half-integer) must meet it."""
    args, _ = lstm_problem(1, 8, 40, 32, seed=seed)
    args = tuple(a.astype(np.float32).astype(np.float64) for a in args)
    exact = ref.lstm_forward(*args)
    h1, c1 = float32_step(args, precision)
    bound = P.forward_error_bound(*args, precision=precision, accumulation="float32",
                                  pointwise_eps=4 * 2.0**-24)
    assert np.all(np.abs(h1 - exact[1]) <= bound.h_n)
    assert np.all(np.abs(c1 - exact[2]) <= bound.c_n)
