"""Bad calls of rnn_forward / rnn_backward / gru_forward / gru_backward: each raises TypeError
(not an ndarray, wrong dtype, wrong cache) or ValueError (wrong ndim or size) with a message
naming the argument.  The table runs in-process, one case per row, and once more whole in a
fresh interpreter so that a crash in any row fails the test instead of killing the run.
"""

import json
import re
import textwrap

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import name_pattern, run_python as _run_python

T, B, I, H = 3, 2, 5, 4  # all different: a swapped dimension is always a wrong shape


def valid(cell, dtype=np.float64):
    rng = np.random.default_rng(0)
    G = (1 if cell == "rnn" else 3) * H
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    args = {"x": r(T, B, I), "w_ih": r(G, I), "w_hh": r(G, H), "h0": r(B, H)}
    args.update({"bias": r(G)} if cell == "rnn" else {"b_ih": r(G), "b_hh": r(G)})
    return args


def forward(cell, **override):
    args = {**valid(cell), **override}
    if cell == "rnn":
        return lc.rnn_forward(args["x"], args["w_ih"], args["w_hh"], args["bias"], args["h0"],
                              lengths=args.get("lengths"))
    return lc.gru_forward(args["x"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"],
                          args["h0"], lengths=args.get("lengths"))


def backward(cell, cache="own", **override):
    if cache == "own":
        cache = forward(cell)[2]
    kw = {"dy": np.zeros((T, B, H)), "dh_n": np.zeros((B, H)), **override}
    return (lc.rnn_backward if cell == "rnn" else lc.gru_backward)(cache, kw["dy"], kw["dh_n"])


f32 = lambda a: a.astype(np.float32)  # noqa: E731
# (id, exception, argument named, overrides) for forward; the same for backward.
FORWARD = [
    ("x-list", TypeError, "x", lambda c: {"x": valid(c)["x"].tolist()}),
    ("x-int", TypeError, "x", lambda c: {"x": np.ones((T, B, I), np.int64)}),
    ("x-f16", TypeError, "x", lambda c: {"x": valid(c)["x"].astype(np.float16)}),
    ("x-2d", ValueError, "x", lambda c: {"x": valid(c)["x"][0]}),
    ("w_ih-none", TypeError, "w_ih", lambda c: {"w_ih": None}),
    ("w_ih-f32", TypeError, "w_ih", lambda c: {"w_ih": f32(valid(c)["w_ih"])}),
    ("w_ih-cols", ValueError, "w_ih", lambda c: {"w_ih": valid(c)["w_ih"][:, :-1]}),
    ("w_hh-shape", ValueError, "w_hh", lambda c: {"w_hh": valid(c)["w_hh"][:, :-1]}),
    ("w_hh-1d", ValueError, "w_hh", lambda c: {"w_hh": valid(c)["w_hh"].ravel()}),
    ("h0-shape", ValueError, "h0", lambda c: {"h0": np.zeros((B + 1, H))}),
    ("h0-f32", TypeError, "h0", lambda c: {"h0": np.zeros((B, H), np.float32)}),
    ("lengths-long", ValueError, "lengths", lambda c: {"lengths": [T + 1, 0]}),
    ("lengths-float", TypeError, "lengths", lambda c: {"lengths": [1.0, 2.0]}),
]
FORWARD_RNN = [
    ("bias-size", ValueError, "bias", lambda c: {"bias": np.zeros(H + 1)}),
    ("bias-list", TypeError, "bias", lambda c: {"bias": [0.0] * H}),
]
FORWARD_GRU = [
    ("w_ih-rows", ValueError, "w_ih", lambda c: {"w_ih": np.zeros((3 * H + 1, I))}),
    ("b_ih-size", ValueError, "b_ih", lambda c: {"b_ih": np.zeros(4 * H)}),
    ("b_ih-2d", ValueError, "b_ih", lambda c: {"b_ih": np.zeros((1, 3 * H))}),
    ("b_hh-f32", TypeError, "b_hh", lambda c: {"b_hh": np.zeros(3 * H, np.float32)}),
    ("b_hh-list", TypeError, "b_hh", lambda c: {"b_hh": [0.0] * (3 * H)}),
]
BACKWARD = [
    ("cache-none", TypeError, "cache", lambda c: {"cache": None}),
    ("cache-inference", TypeError, "cache",
     lambda c: {"cache": (lc.rnn_forward if c == "rnn" else lc.gru_forward)(
         *list(valid(c).values())[:3], training=False)[2]}),
    ("cache-other-cell", TypeError, "cache",
     lambda c: {"cache": forward("gru" if c == "rnn" else "rnn")[2]}),
    ("cache-lstm", TypeError, "cache", lambda c: {"cache": lc.lstm_forward(
        np.zeros((T, B, I)), np.zeros((4 * H, I)), np.zeros((4 * H, H)))[3]}),
    ("cache-new", TypeError, "cache",
     lambda c: {"cache": (lc.RNNCache if c == "rnn" else lc.GRUCache).__new__(
         lc.RNNCache if c == "rnn" else lc.GRUCache)}),
    ("dy-shape", ValueError, "dy", lambda c: {"dy": np.zeros((T + 1, B, H))}),
    ("dy-f32", TypeError, "dy", lambda c: {"dy": np.zeros((T, B, H), np.float32)}),
    ("dy-list", TypeError, "dy", lambda c: {"dy": np.zeros((T, B, H)).tolist()}),
    ("dh_n-shape", ValueError, "dh_n", lambda c: {"dh_n": np.zeros((B, H + 1))}),
    ("dh_n-3d", ValueError, "dh_n", lambda c: {"dh_n": np.zeros((1, B, H))}),
]


def build_cases():
    """[(id, exception, argument name, call)] over both cells, forward and backward."""
    cases = []
    for cell in ("rnn", "gru"):
        extra = FORWARD_RNN if cell == "rnn" else FORWARD_GRU
        for case_id, exc, name, make in FORWARD + extra:
            call = lambda cell=cell, make=make: forward(cell, **make(cell))  # noqa: E731
            cases.append((f"{cell}-fwd-{case_id}", exc, name, call))
        for case_id, exc, name, make in BACKWARD:
            call = lambda cell=cell, make=make: backward(cell, **make(cell))  # noqa: E731
            cases.append((f"{cell}-bwd-{case_id}", exc, name, call))
    return cases


CASES = build_cases()


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in CASES])
def test_bad_input_raises(case):
    _, exc, name, call = case
    with pytest.raises(exc, match=name_pattern(name)) as info:
        call()
    assert type(info.value) is exc


def run_table():
    out = []
    for case_id, exc, name, call in CASES:
        try:
            call()
            got, message = "nothing", ""
        except Exception as e:  # noqa: BLE001 - we report whatever was raised
            got, message = type(e).__name__, str(e)
        out.append({"id": case_id, "expected": exc.__name__, "got": got,
                    "named": re.search(name_pattern(name), message) is not None})
    return out


_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, os, sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(sys.argv[1])))  # tests/: the shared helpers
    spec = importlib.util.spec_from_file_location("_cells_bad_input", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.stdout.write("RESULTS " + json.dumps(mod.run_table()) + "\\n")
    """
)


def test_whole_table_in_fresh_process_does_not_crash(tmp_path):
    assert len(CASES) >= 50
    proc = _run_python(_SCRIPT, __file__, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, f"exit code {proc.returncode}: {proc.stderr[-2000:]}"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert len(line) == 1, proc.stdout[-2000:]
    results = json.loads(line[0][len("RESULTS "):])
    assert [r["id"] for r in results] == [c[0] for c in CASES]
    wrong = [r for r in results if r["got"] != r["expected"] or not r["named"]]
    assert not wrong, wrong


@pytest.mark.parametrize("cls", [lc.RNNCache, lc.GRUCache])
def test_caches_cannot_be_made_by_hand(cls):
    with pytest.raises(TypeError, match="created by"):
        cls()


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_noncontiguous_inputs_give_the_same_results(cell):
    args = valid(cell)
    fortran = {k: np.asfortranarray(v) for k, v in args.items()}
    strided = {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in args.items()}
    expected = forward(cell)
    for variant in (fortran, strided):
        got = forward(cell, **variant)
        for a, e in zip(got[:2], expected[:2]):
            np.testing.assert_array_equal(a, e)
    for name, value in valid(cell).items():  # inputs are never modified
        np.testing.assert_array_equal(fortran[name], value, err_msg=name)


@pytest.mark.parametrize("forward, gates", [("rnn_forward", 1), ("gru_forward", 3)])
def test_outputs_larger_than_memory_are_refused_before_allocating(forward, gates):
    """x of shape (1, 2^31 - 1, 0) costs nothing (zero strides) but its outputs would take
    terabytes: MemoryError naming x, before any allocation."""
    one = np.zeros(1, np.float32)
    x = np.lib.stride_tricks.as_strided(one, shape=(1, 2**31 - 1, 0), strides=(0, 0, 0))
    w_ih = np.zeros((gates * 1024, 0), np.float32)
    w_hh = np.zeros((gates * 1024, 1024), np.float32)
    with pytest.raises(MemoryError, match=r"^x of shape \(1, 2147483647, 0\) needs"):
        getattr(lc, forward)(x, w_ih, w_hh)
