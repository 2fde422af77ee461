"""training=False keeps no per-step activations: its working memory does not grow with T."""

import tracemalloc

import numpy as np

import lstm_core as lc


def extra_memory(T, B, I, H, training):
    """Peak bytes lstm_forward allocates beyond its outputs (y, h_n, c_n), via tracemalloc
    (numpy reports its array allocations to it)."""
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((T, B, I), dtype=np.float32),
            rng.standard_normal((4 * H, I), dtype=np.float32),
            rng.standard_normal((4 * H, H), dtype=np.float32))
    outputs = (T * B * H + 2 * B * H) * 4
    lc.free_workspace()  # count the call's workspace, not a spare from an earlier call
    tracemalloc.start()
    try:
        result = lc.lstm_forward(*args, training=training)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - outputs


def test_inference_memory_is_a_small_fraction_of_training():
    # A long sequence: T=1000, B=32, H=256 (training keeps ~230 MB of caches).
    training = extra_memory(1000, 32, 64, 256, training=True)
    inference = extra_memory(1000, 32, 64, 256, training=False)
    assert training >= 7 * 1000 * 32 * 256 * 4  # gates (4H), c, h, tanh_c per step
    assert inference * 20 <= training, (inference, training)


def test_inference_memory_does_not_grow_with_T():
    # both longer than one chunk of the input projection (INFERENCE_CHUNK_ROWS = 1024 rows,
    # 128 steps of B = 8), whose workspace is the only memory that depends on T
    short = extra_memory(200, 8, 16, 32, training=False)
    long = extra_memory(2000, 8, 16, 32, training=False)
    assert long <= short + 4096, (short, long)
