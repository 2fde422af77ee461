"""Print a hash of lstm_core's outputs on fixed inputs, to compare two builds bit for bit.

.ci/run builds the package a second time without runtime CPU dispatch (the portable
baseline code only) and checks that both builds print the same hash: the AVX-512, AVX2
and baseline versions of the pointwise kernels, and of the one-row matvec kernel
(src/gemm/lstm_matvec.inc), must give identical results.  The problems keep the recurrent products
off the packed kernel with T * B < 8 rows: it (T * B >= 8) fuses multiply-adds where the CPU
has FMA, so its last bits depend on the instruction set.  Three problems: several steps with
a partial length, a wider batch with zero lengths, and a batch of one (the matvec kernel,
with I and H not multiples of a vector); then a streaming cell step of one row.
"""

import hashlib

import numpy as np

import lstm_core as lc


def fingerprint():
    rng = np.random.default_rng(0)
    arrays = []
    # (T, B, lengths), T * B < 8
    problems = [(3, 2, [3, 1]), (1, 7, [1, 0, 1, 1, 0, 1, 1]), (4, 1, [3])]
    for dtype, (T, B, lengths) in [(d, p) for d in (np.float32, np.float64) for p in problems]:
        I, H = 7, 33
        x = (3 * rng.standard_normal((T, B, I))).astype(dtype)
        w_ih = rng.standard_normal((4 * H, I)).astype(dtype)
        w_hh = rng.standard_normal((4 * H, H)).astype(dtype)
        bias = rng.standard_normal(4 * H).astype(dtype)
        h0 = rng.standard_normal((B, H)).astype(dtype)
        c0 = rng.standard_normal((B, H)).astype(dtype)
        y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths=lengths)
        grads = lc.lstm_backward(cache, np.ones_like(y), h_n, c_n)
        # The activations alone over a dense range (pre-activations z = x exactly).
        z = np.linspace(-100, 100, 100_001).astype(dtype).reshape(1, -1, 1)
        _, _, _, sweep = lc.lstm_forward(z, np.ones((4, 1), dtype), np.zeros((4, 1), dtype))
        arrays += [y, h_n, c_n, cache.gates, cache.tanh_c, *grads, sweep.gates]
        arrays += lc.lstm_cell(x[0, :1], h0[:1], c0[:1], w_ih, w_hh, bias)
    return hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()


if __name__ == "__main__":
    print(fingerprint())
