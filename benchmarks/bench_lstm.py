"""Benchmark lstm_core against the numpy reference and PyTorch, side by side in one process.

What is measured
    For each case (T, B, I, H, dtype) and mode, the wall time of one whole call:
      fwd      lstm_core.lstm_forward(training=False); reference.lstm_forward(training=False);
               torch.nn.LSTM forward under torch.no_grad().
      fwd+bwd  lstm_core.lstm_forward(training=True) then lstm_backward(cache, dy);
               reference forward + backward; torch forward with requires_grad on x, h0, c0
               and the parameters, then y.backward(dy), grads reset to None before each run.
      step     (the "cell" case) lstm_core.lstm_cell vs reference.lstm_cell vs
               torch.nn.LSTMCell under torch.no_grad().
    Stacked cases (S3-bi2: 2 layers, bidirectional) time the layers instead, in the
    same two modes: lstm_core.LSTM(I, H, num_layers, bidirectional=...) after eval() for fwd;
    after train(), zero_grad(), forward, backward(dy) for fwd+bwd (zero_grad stands for
    torch's reset of the grads) vs torch.nn.LSTM with the same arguments, loaded with the
    same state dict, called as above.  Their reference column is ReferenceLSTM:
    lstm_core.LSTM's own loop over layers and directions with reference.lstm_forward /
    lstm_backward as its kernels, so the two differ only in the kernels (skipped under
    --quick, as for the other big shapes).
    lstm_core is called once per sequence (a stack: once per layer and direction; no
    per-step Python).  Every implementation gets the same arrays: seeded numpy default_rng,
    weights and both biases U(-1/sqrt(H), 1/sqrt(H)), non-zero h0/c0; torch gets two
    different biases b_ih, b_hh whose sum is lstm_core's bias.
    A stack gets every parameter by torch's name, h0/c0 (layers*directions, B, H) and dy
    (T, B, directions*H).

How
    time.perf_counter.  Per case, every implementation is first warmed up (at least one
    untimed call), then the implementations are interleaved: round r times one sample of each,
    in an order rotated every round, so drift of a shared machine hits all columns alike.
    A sample is the mean of `number` back-to-back calls, with `number` chosen from the
    warm-up so a sample lasts >= 20 ms (1 for anything slower); the reported figure is the
    median of the samples (default 7, `--repeats`).  With more than one thread, each sample
    starts after a 0.3 s pause and one untimed call: idle OpenBLAS workers spin for ~0.1 s
    after a call and would otherwise steal a core from whichever library runs next, while
    the untimed call puts the library's own threads in the state of a loop of calls (a
    training loop), so each sample measures one library in its steady state.  An
    implementation slower than 2 s a call gets min(repeats, 5) samples.  Garbage
    collection is off while sampling.  Before timing a case, lstm_core's results are
    checked against torch (or, without torch, the reference): y within 1e-3 max abs error in
    float32 (1e-9 in float64), gradients within the same bound relative to max(1, max |g|);
    a mismatch aborts the run, so a wrong result is never timed.

    Threads: the whole grid runs once per thread count (default 1 and os.cpu_count()), with
    threadpoolctl.threadpool_limits(n) (scipy's OpenBLAS, which lstm_core calls, numpy's
    OpenBLAS, OpenMP), lstm_core.set_num_threads(n) (lstm_core's own time loops) and
    torch.set_num_threads(n): the same count for every column.

    FLOPs: forward = 2*T*B*(I+H)*4H, summed over layers and directions for a stack (the
    input of every layer above the first is directions*H wide); forward+backward = 3 x
    forward.  The roofline,
    measured in the same run per thread count, is the best GF/s of one float32 GEMM through
    scipy.linalg.blas.sgemm (the OpenBLAS lstm_core uses; Fortran-ordered operands, output
    preallocated) for (M, K, N) = (T*B, I, 4H) of S4 and for 1024^3: `sgemm_gfs`.  The same
    is measured with dgemm for the float64 rows (`dgemm_gfs`).  The one-step cell moves its
    weights once per call and is bound by memory bandwidth instead: the same run measures
    the GB/s at which scipy's sgemv streams a matrix of the cell's weight size
    (`sgemv_gbs`).

    Targets: the speed-ups over torch set for lstm_core, per case and mode.  Column
    "need%" is the share of the roofline (sgemm_gfs, or dgemm_gfs for float64) that
    lstm_core would have to run at to meet its target against this run's torch time;
    above 100, no GEMM-bound implementation on this machine can meet it.  For the cell,
    and for a sequence with a batch of one (S1, whose every step reads all of w_hh for one
    row), a line gives the bandwidth the target needs next to sgemv_gbs.

Peers in reduced precision (off by default; --peers bf16,int8), float32 cases only, timed in
    the same process and interleaving as the other columns:
      torch-bf16  the same torch.nn.LSTM (LSTMCell) under torch.autocast("cpu",
                  dtype=torch.bfloat16): fwd under no_grad, fwd+bwd as torch's column (oneDNN;
                  AMX where present).  A CPU on which oneDNN has no bfloat16 LSTM (it raises)
                  gets no column, with a note.
      torch-int8  torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.LSTMCell},
                  dtype=torch.qint8) of the same module: fwd (step) only, inference.
    Their results are not checked against the oracle (they differ by design); each row
    records their max |y - y_oracle| (peer_max_abs_err) next to the timing.  lstm_core's own
    reduced precisions have no kernels yet: these columns say what they will compete with.

Run:  python benchmarks/bench_lstm.py [--quick] [--cases S1,S3] [--threads 1,2] [--deepbench]
      [--peers bf16,int8]
Machines are noisy: read medians and ratios, never a single absolute time.  Every table
shows how much CPU other processes used while it ran and lists the cells whose samples
spread more than 10% (interquartile range / median): re-run those on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg.blas as blas
from threadpoolctl import threadpool_info, threadpool_limits

import lstm_core
from lstm_core import reference

try:
    import torch
except ImportError:  # torch columns are skipped
    torch = None

MIN_SAMPLE_S = 0.02  # a sample is several calls when one call is shorter than this
SLOW_CALL_S = 2.0  # slower calls get SLOW_REPEATS samples (still >= 5 unless --quick)
SLOW_REPEATS = 5
QUICK_REPEATS = 3
NOISY = 0.10  # samples whose interquartile range exceeds this fraction of the median
# Idle OpenBLAS workers spin for a while after a call (libgomp's for less; see
# docs/performance.rst) and, on few cores, steal the CPU from the next library's threads;
# multi-threaded samples start after this pause, longer than that spin.
SETTLE_S = 0.3
IMPLS = ("lstm_core", "reference", "torch")
PEERS = {"bf16": "torch-bf16", "int8": "torch-int8"}  # --peers name -> column


@dataclass(frozen=True)
class Case:
    name: str
    T: int
    B: int
    I: int  # noqa: E741 (the paper's name)
    H: int
    dtype: type
    cell: bool = False  # single step through the *_cell functions
    big: bool = False  # --quick skips the reference here
    layers: int = 1
    bidirectional: bool = False
    targets: tuple = ()  # (mode, torch/lstm_core speed-up asked of it) pairs

    @property
    def stacked(self):
        """Timed through the layers (lstm_core.LSTM vs torch.nn.LSTM), not the functions."""
        return self.layers > 1 or self.bidirectional

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def modes(self):
        return ("step",) if self.cell else ("fwd", "fwd+bwd")

    def flops(self, mode):
        D, H = self.directions, self.H
        layer_inputs = [self.I] + [D * H] * (self.layers - 1)
        forward = sum(2 * self.T * self.B * (I_k + H) * 4 * H * D for I_k in layer_inputs)
        return 3 * forward if mode == "fwd+bwd" else forward


def _targets(fwd, fwd_bwd=None):
    return (("fwd", fwd), ("fwd+bwd", fwd if fwd_bwd is None else fwd_bwd))


GRID = (
    Case("S1", 100, 1, 64, 64, np.float32, targets=_targets(4.0)),
    Case("S2", 100, 16, 128, 128, np.float32, targets=_targets(1.5)),
    Case("S3", 100, 32, 256, 256, np.float32, targets=_targets(1.1)),
    Case("S4", 50, 64, 512, 512, np.float32, big=True, targets=_targets(1.0)),
    Case("S5", 25, 16, 1024, 1024, np.float32, big=True, targets=_targets(1.0)),
    Case("S3-f64", 100, 32, 256, 256, np.float64, targets=_targets(2.0)),
    Case("S3-bi2", 100, 32, 256, 256, np.float32, big=True, layers=2, bidirectional=True,
         targets=_targets(1.0)),
    Case("cell", 1, 1, 128, 128, np.float32, cell=True, targets=(("step", 10.0),)),
)
DEEPBENCH = tuple(
    Case(f"DB-H{h}-N{n}", 25, n, h, h, np.float32, big=True)
    for h in (512, 1024)
    for n in (16, 32, 64)
)


# ----------------------------------------------------------------------------- inputs


def make_inputs(case, seed):
    """The numpy arrays every implementation of one case receives."""
    rng = np.random.default_rng(seed)
    T, B, I, H, dtype = case.T, case.B, case.I, case.H, case.dtype
    k = 1.0 / math.sqrt(H)

    def uniform(shape, bound):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    if case.stacked:
        D, stacks = case.directions, case.layers * case.directions
        return {
            "x": rng.standard_normal((T, B, I)).astype(dtype),
            "state": {name: uniform(p.shape, k)
                      for name, p in stack_layer(lstm_core, case).params.items()},
            "h0": uniform((stacks, B, H), 0.5),
            "c0": uniform((stacks, B, H), 1.0),
            "dy": rng.standard_normal((T, B, D * H)).astype(dtype),
        }
    inp = {
        "x": rng.standard_normal((T, B, I)).astype(dtype),
        "w_ih": uniform((4 * H, I), k),
        "w_hh": uniform((4 * H, H), k),
        "b_ih": uniform((4 * H,), k),
        "b_hh": uniform((4 * H,), k),
        "h0": uniform((B, H), 0.5),
        "c0": uniform((B, H), 1.0),
        "dy": rng.standard_normal((T, B, H)).astype(dtype),
    }
    inp["bias"] = (inp["b_ih"] + inp["b_hh"]).astype(dtype)
    return inp


# ----------------------------------------------------------------------------- callables


class ReferenceLSTM(lstm_core.LSTM):
    """lstm_core.LSTM running the numpy reference's kernels: the same loop over layers and
    directions (reversal, concatenation, gradient sums) through the stack's per-layer hooks."""

    def _run_forward(self, seq, layer, direction, init, training, length_kw):
        y, h_n, c_n, cache = reference.lstm_forward(seq, *self._weights(layer, direction),
                                                    *init, training=training, **length_kw)
        return y, (h_n, c_n), cache

    def _run_backward(self, cache, dy, dfinal):
        return reference.lstm_backward(cache, dy, *dfinal)


def stack_layer(api, case, state=None):
    """lstm_core.LSTM (api lstm_core) or ReferenceLSTM (api reference) shaped like the case,
    holding `state` ({torch parameter name: array}) when given."""
    cls = lstm_core.LSTM if api is lstm_core else ReferenceLSTM
    layer = cls(case.I, case.H, case.layers, bidirectional=case.bidirectional, dtype=case.dtype)
    if state is not None:
        layer.load_state_dict(state)
    return layer


def stack_calls(layer, inp):
    """{mode: callable} for a stack; fwd+bwd returns dx, dh0, dc0 and every parameter's
    gradient in one dict (the stack's own grads arrays, zeroed first, as torch's are reset)."""
    x, hx, dy = inp["x"], (inp["h0"], inp["c0"]), inp["dy"]

    def fwd():
        return layer.eval()(x, hx)

    def fwd_bwd():
        layer.train()
        layer.zero_grad()
        layer(x, hx)
        dx = layer.backward(dy)
        return {"dx": dx, "dh0": layer.dhx[0], "dc0": layer.dhx[1], **layer.grads}

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def api_calls(api, inp, case):
    """{mode: zero-argument callable} for a module with lstm_core's functional API
    (lstm_core itself, or lstm_core.reference, which computes in float64 internally);
    a stacked case runs through the layer over that API (stack_layer)."""
    if case.stacked:
        return stack_calls(stack_layer(api, case, inp["state"]), inp)
    x, w_ih, w_hh, bias, h0, c0, dy = (
        inp[k] for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0", "dy")
    )
    if case.cell:
        return {"step": lambda: api.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias)}

    def fwd_bwd():
        _, _, _, cache = api.lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=True)
        return api.lstm_backward(cache, dy)

    return {
        "fwd": lambda: api.lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=False),
        "fwd+bwd": fwd_bwd,
    }


def torch_module(inp, case):
    """torch.nn.LSTM (or LSTMCell) holding copies of the numpy weights and both biases."""
    tdtype = torch.float64 if inp["x"].dtype == np.float64 else torch.float32
    if case.stacked:
        module = torch.nn.LSTM(case.I, case.H, case.layers, bidirectional=case.bidirectional,
                               dtype=tdtype)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in inp["state"].items()})
        return module
    four_h, input_size = inp["w_ih"].shape
    cls = torch.nn.LSTMCell if case.cell else torch.nn.LSTM
    module = cls(input_size, four_h // 4, bias=True, dtype=tdtype)
    suffix = "" if case.cell else "_l0"
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            key = {"weight_ih": "w_ih", "weight_hh": "w_hh", "bias_ih": "b_ih",
                   "bias_hh": "b_hh"}[name]
            getattr(module, name + suffix).copy_(torch.from_numpy(inp[key]))
    return module


def torch_tensors(inp, case, requires_grad):
    """x, h0, c0 as torch tensors (fresh copies); torch.nn.LSTM wants (layers*directions, B, H)
    states: (1, B, H) for one layer (a stack's already have that shape)."""
    x, h0, c0 = (torch.from_numpy(inp[k].copy()) for k in ("x", "h0", "c0"))
    if case.cell:
        x = x[0]
    elif not case.stacked:
        h0, c0 = h0[None], c0[None]
    if requires_grad:
        for t in (x, h0, c0):
            t.requires_grad_(True)
    return x, h0, c0


def torch_calls(inp, case):
    """{mode: callable} for PyTorch; {} when torch is not installed.  fwd+bwd returns the
    leaves x, h0, c0 and the module's parameters (in torch's order), each with its .grad."""
    if torch is None:
        return {}
    module = torch_module(inp, case)
    x, h0, c0 = torch_tensors(inp, case, requires_grad=False)

    def fwd():
        with torch.no_grad():
            return module(x, (h0, c0))

    if case.cell:
        return {"step": fwd}
    xg, h0g, c0g = torch_tensors(inp, case, requires_grad=True)
    dy = torch.from_numpy(inp["dy"])
    leaves = (xg, h0g, c0g, *module.parameters())

    def fwd_bwd():
        for leaf in leaves:
            leaf.grad = None
        y, _ = module(xg, (h0g, c0g))
        y.backward(dy)
        return leaves

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def _int8_module(module):
    """quantize_dynamic of one module: it replaces children, so the module goes in a holder."""
    holder = torch.nn.ModuleDict({"m": module})
    return torch.ao.quantization.quantize_dynamic(
        holder, {torch.nn.LSTM, torch.nn.LSTMCell}, dtype=torch.qint8)["m"]


def peer_calls(inp, case, peers):
    """{column: {mode: callable}} for the reduced-precision torch peers asked for ({} without
    torch, for float64 cases, or when none were asked); a bf16 peer whose first call raises
    (no oneDNN bfloat16 LSTM on this CPU) is left out with a note."""
    if torch is None or not peers or case.dtype != np.float32:
        return {}
    out = {}
    x, h0, c0 = torch_tensors(inp, case, requires_grad=False)
    if "bf16" in peers:
        module = torch_module(inp, case)

        def bf16_fwd():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                return module(x, (h0, c0))

        calls = {"step" if case.cell else "fwd": bf16_fwd}
        if not case.cell:
            xg, h0g, c0g = torch_tensors(inp, case, requires_grad=True)
            dy = torch.from_numpy(inp["dy"])
            leaves = (xg, h0g, c0g, *module.parameters())

            def bf16_fwd_bwd():
                for leaf in leaves:
                    leaf.grad = None
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y, _ = module(xg, (h0g, c0g))
                y.float().backward(dy)
                return leaves

            calls["fwd+bwd"] = bf16_fwd_bwd
        try:
            bf16_fwd()
            out[PEERS["bf16"]] = calls
        except RuntimeError as error:
            progress(f"  {PEERS['bf16']}: left out, {str(error).splitlines()[0][:100]}")
    if "int8" in peers:
        import warnings

        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
            warnings.simplefilter("ignore")
            qmodule = _int8_module(torch_module(inp, case))

        def int8_fwd():
            with torch.no_grad():
                return qmodule(x, (h0, c0))

        out[PEERS["int8"]] = {"step" if case.cell else "fwd": int8_fwd}
    return out


def peer_errors(peers, y_want):
    """{column: max |y - y_oracle|} of each peer's fwd (step) output, in float64."""
    errors = {}
    for name, calls in peers.items():
        fn = calls.get("fwd") or calls["step"]
        out = fn()[0]
        errors[name] = _max_err(out.float().numpy(), y_want)
    return errors


# ----------------------------------------------------------------------------- correctness


def _max_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _check(label, got, want, tol, relative=False):
    err = _max_err(got, want)
    scale = max(1.0, float(np.max(np.abs(want)))) if relative and np.size(want) else 1.0
    if not err <= tol * scale:
        raise AssertionError(
            f"{label}: lstm_core differs from the oracle by {err:.3g} (> {tol * scale:.3g}); "
            "refusing to time a wrong result"
        )
    return err


def _grads_dict(grads):
    """What an api_calls fwd+bwd returned (LSTMGrads, or a stack's dict) as a dict."""
    return grads if isinstance(grads, dict) else grads._asdict()


def _torch_grads(case, inp, leaves):
    """{name: numpy gradient}, named as lstm_core's, from torch_calls' fwd+bwd leaves."""
    if case.stacked:
        # The state dict's keys follow lstm_core.LSTM's parameter order, which is torch's.
        names = ("dx", "dh0", "dc0", *inp["state"])
        return {name: leaf.grad.numpy() for name, leaf in zip(names, leaves, strict=True)}
    xg, h0g, c0g, w_ih_t, w_hh_t, b_ih_t, _ = leaves
    grads = {"dx": xg.grad, "dw_ih": w_ih_t.grad, "dw_hh": w_hh_t.grad, "dbias": b_ih_t.grad,
             "dh0": h0g.grad[0], "dc0": c0g.grad[0]}
    return {k: v.numpy() for k, v in grads.items()}


def _oracle_results(case, inp):
    """(name, y or h1, grads as a dict or None) from torch, else from the reference."""
    if torch is None:
        calls = api_calls(reference, inp, case)
        if case.cell:
            return "reference", calls["step"]()[0], None
        return "reference", calls["fwd"]()[0], _grads_dict(calls["fwd+bwd"]())
    if case.cell:
        return "torch", torch_calls(inp, case)["step"]()[0].numpy(), None
    y = torch_calls(inp, case)["fwd"]()[0].numpy()
    return "torch", y, _torch_grads(case, inp, torch_calls(inp, case)["fwd+bwd"]())


def _training_y(case, inp):
    """lstm_core's y from a training-mode forward (the kernels that also fill the cache)."""
    x, h0, c0 = inp["x"], inp["h0"], inp["c0"]
    if case.stacked:
        return stack_layer(lstm_core, case, inp["state"]).train()(x, (h0, c0))[0]
    return lstm_core.lstm_forward(x, inp["w_ih"], inp["w_hh"], inp["bias"], h0, c0,
                                  training=True)[0]


def check_case(case, inp):
    """Assert lstm_core agrees with the oracle (torch when present); return the errors."""
    tol = 1e-3 if case.dtype == np.float32 else 1e-9
    oracle, y_want, grads_want = _oracle_results(case, inp)
    calls = api_calls(lstm_core, inp, case)
    if case.cell:
        return {"oracle": oracle, "h1": _check(f"{case.name} h1", calls["step"]()[0], y_want, tol)}
    errors = {"oracle": oracle, "y_fwd": _check(f"{case.name} y", calls["fwd"]()[0], y_want, tol)}
    errors["y_train"] = _check(f"{case.name} y (training)", _training_y(case, inp), y_want, tol)
    grads = _grads_dict(calls["fwd+bwd"]())
    for name, want in grads_want.items():
        errors[name] = _check(f"{case.name} {name}", grads[name], want, tol, relative=True)
    return errors


# ----------------------------------------------------------------------------- timing


def _time_calls(fn, number):
    """Mean seconds per call over `number` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _warm_up(fn):
    """Untimed warm-up, then a calibration call; returns the seconds of one call."""
    seconds = _time_calls(fn, 1)
    if seconds < MIN_SAMPLE_S:
        seconds = _time_calls(fn, 1)
    return seconds


def _sample(fn, number, settle_s):
    """One sample: seconds per call, after the settle pause and an untimed call."""
    if settle_s > 0:
        time.sleep(settle_s)
        fn()
    return _time_calls(fn, number)


def time_interleaved(calls, repeats, quick, settle_s=0.0):
    """{name: {"times_s", "median_s", "number", "repeats"}} for {name: callable}.

    Every callable is warmed up, then sampled round-robin with the order rotated each round.
    With settle_s > 0 (multi-threaded runs), each sample starts after a pause of settle_s,
    so the worker threads of the previous library have stopped spinning, and one untimed
    call: a sample is the steady state of one library.
    """
    plan = {}
    for name, fn in calls.items():
        time.sleep(settle_s)
        seconds = _warm_up(fn)
        n = repeats
        if seconds > SLOW_CALL_S and not quick:
            n = min(repeats, SLOW_REPEATS)
        plan[name] = {"number": max(1, math.ceil(MIN_SAMPLE_S / seconds)), "repeats": n,
                      "times_s": []}
    names = list(calls)
    gc.collect()
    gc.disable()
    try:
        for r in range(max((p["repeats"] for p in plan.values()), default=0)):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                if r < plan[name]["repeats"]:
                    plan[name]["times_s"].append(_sample(calls[name], plan[name]["number"],
                                                         settle_s))
    finally:
        gc.enable()
    for p in plan.values():
        p["median_s"] = float(np.median(p["times_s"]))
        q1, q3 = np.percentile(p["times_s"], [25, 75])
        p["iqr_over_median"] = float((q3 - q1) / p["median_s"])
    return plan


def gemm_roofline(repeats, quick, shapes, settle_s):
    """Best GF/s of one sgemm (and one dgemm) through scipy's BLAS over `shapes`."""
    rng = np.random.default_rng(1)
    result = {}
    for routine, dtype in (("sgemm", np.float32), ("dgemm", np.float64)):
        gemm = getattr(blas, routine)
        per_shape = {}
        for m, k, n in shapes:
            a = np.asfortranarray(rng.standard_normal((m, k)).astype(dtype))
            b = np.asfortranarray(rng.standard_normal((k, n)).astype(dtype))
            c = np.zeros((m, n), dtype=dtype, order="F")
            timing = time_interleaved(
                {"gemm": lambda: gemm(1.0, a, b, 0.0, c, overwrite_c=1)}, repeats, quick,
                settle_s,
            )["gemm"]
            timing["gflops"] = 2 * m * k * n / timing["median_s"] / 1e9
            per_shape[f"{m}x{k}x{n}"] = timing
        result[routine] = per_shape
        result[f"{routine}_gfs"] = max(v["gflops"] for v in per_shape.values())
    cell = next(c for c in GRID if c.cell)
    w = np.asfortranarray(rng.standard_normal((4 * cell.H, cell.I + cell.H)).astype(np.float32))
    x = rng.standard_normal(cell.I + cell.H).astype(np.float32)
    timing = time_interleaved({"gemv": lambda: blas.sgemv(1.0, w, x)}, repeats, quick,
                              settle_s)["gemv"]
    timing["gbytes_per_s"] = w.nbytes / timing["median_s"] / 1e9
    result["sgemv"] = {"x".join(map(str, w.shape)): timing}
    result["sgemv_gbs"] = timing["gbytes_per_s"]
    return result


# ----------------------------------------------------------------------------- the grid


def run_case(case, args, repeats, roofline, settle_s):
    """Check, then time every implementation of one case; returns one row per mode."""
    inp = make_inputs(case, args.seed)
    errors = check_case(case, inp)
    skip_reference = args.quick and case.big
    peers = peer_calls(inp, case, args.peers)
    if peers:
        errors["peer_max_abs_err"] = peer_errors(peers, _oracle_results(case, inp)[1])
    per_impl = {
        "lstm_core": api_calls(lstm_core, inp, case),
        "reference": {} if skip_reference else api_calls(reference, inp, case),
        "torch": torch_calls(inp, case),
        **peers,
    }
    rows = []
    for mode in case.modes:
        calls = {impl: c[mode] for impl, c in per_impl.items() if mode in c}
        timings = time_interleaved(calls, repeats, args.quick, settle_s)
        rows.append(make_row(case, mode, timings, roofline, errors))
    return rows


def make_row(case, mode, timings, roofline, errors):
    flops = case.flops(mode)
    core = timings["lstm_core"]["median_s"]
    for t in timings.values():
        t["gflops"] = flops / t["median_s"] / 1e9
    row = {
        "case": case.name, "T": case.T, "B": case.B, "I": case.I, "H": case.H,
        "layers": case.layers, "bidirectional": case.bidirectional,
        "dtype": np.dtype(case.dtype).name, "mode": mode, "flops": flops,
        "timings": timings,
        "lstm_core_gflops": timings["lstm_core"]["gflops"],
        "pct_sgemm": 100 * timings["lstm_core"]["gflops"] / roofline["sgemm_gfs"],
        "check_max_err": errors,
    }
    if case.dtype == np.float64:
        row["pct_dgemm"] = 100 * timings["lstm_core"]["gflops"] / roofline["dgemm_gfs"]
    for impl in ("torch", "reference", *PEERS.values()):
        if impl in timings:
            row[f"ratio_{impl}_over_lstm_core"] = timings[impl]["median_s"] / core
    target = dict(case.targets).get(mode)
    if target is not None and "torch" in timings:
        # what meeting the target would take: lstm_core at target x torch's speed
        row["target"] = target
        itemsize = np.dtype(case.dtype).itemsize
        if case.cell:  # bound by the bandwidth that streams its weights, not by FLOPs
            weight_bytes = 4 * case.H * (case.I + case.H) * itemsize
            row["need_gbytes_per_s"] = weight_bytes * target / timings["torch"]["median_s"] / 1e9
            row["streamed"] = "the weights"
        else:
            roof = roofline["dgemm_gfs" if case.dtype == np.float64 else "sgemm_gfs"]
            row["need_pct_roofline"] = 100 * target * timings["torch"]["gflops"] / roof
        if case.B == 1 and not case.cell and not case.stacked:
            # a batch of one: each step's recurrent product reads all of w_hh (in the forward,
            # and again for dh in the backward) for 2 flops per weight, a matrix-vector
            # product bound by bandwidth like the cell's
            passes = 1 if mode == "fwd" else 2
            weight_bytes = case.T * passes * 4 * case.H * case.H * itemsize
            row["need_gbytes_per_s"] = weight_bytes * target / timings["torch"]["median_s"] / 1e9
            row["streamed"] = "w_hh (read once per step)" if passes == 1 else (
                "w_hh (read twice per step)")
    return row


def run_grid(cases, threads, args, repeats):
    """{"threads", "roofline", "rows", ...} for one thread count."""
    s4 = next(c for c in GRID if c.name == "S4")
    shapes = [(s4.T * s4.B, s4.I, 4 * s4.H), (1024, 1024, 1024)]
    settle_s = SETTLE_S if threads > 1 else 0.0
    lstm_core.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        before = cpu_snapshot()
        roofline = gemm_roofline(repeats, args.quick, shapes, settle_s)
        rows = []
        for case in cases:
            progress(f"[{threads} thread(s)] {case.name} ...")
            rows.extend(run_case(case, args, repeats, roofline, settle_s))
        load = foreign_load(before, cpu_snapshot())
    return {"threads": threads, "settle_s": settle_s, "roofline": roofline, "rows": rows,
            "foreign_load": load, "peers": list(args.peers)}


def cpu_snapshot():
    """(wall s, machine busy CPU s, steal CPU s, this process's CPU s); busy None off Linux."""
    busy = steal = None
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick  # all but idle and iowait
        steal = fields[7] / tick
    except (OSError, ValueError, IndexError):
        pass
    return time.perf_counter(), busy, steal, time.process_time()


def foreign_load(before, after):
    """CPU used by other processes (and stolen by the hypervisor) while a grid ran, in cores."""
    wall = after[0] - before[0]
    if before[1] is None or wall <= 0:
        return None
    own = after[3] - before[3]
    return {"wall_s": wall,
            "other_cores": max(0.0, (after[1] - before[1]) - own) / wall,
            "steal_cores": (after[2] - before[2]) / wall}


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- reporting


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit():
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def import_seconds(runs=5):
    """Median time of `import lstm_core` in fresh interpreters (numpy and scipy included)."""
    code = "import time; t = time.perf_counter(); import lstm_core; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=Path(lstm_core.__file__).parents[1], check=True)
        times.append(float(out.stdout))
    return statistics.median(times)


def header_info():
    blas_info = [
        {k: d.get(k) for k in ("internal_api", "version", "architecture", "threading_layer",
                               "num_threads", "filepath")}
        for d in threadpool_info()
    ]
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "lstm_core": f"{lstm_core.__version__} ({Path(lstm_core.__file__).parent})",
        "git": _git_commit(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "blas": blas_info,
        "import_s": import_seconds(),
    }


def format_header(info):
    lines = [f"# {k}: {info[k]}" for k in ("date", "python", "numpy", "scipy", "torch",
                                            "lstm_core", "git", "cpu", "cores", "loadavg",
                                            "import_s")]
    for d in info["blas"]:
        lines.append(f"# blas: {d['internal_api']} {d['version']} arch={d['architecture']} "
                     f"threading={d['threading_layer']} {Path(d['filepath']).name}")
    return "\n".join(lines)


COLUMNS = (("case", 11), ("T", 4), ("B", 3), ("I", 5), ("H", 5), ("dtype", 7), ("mode", 8),
           ("core ms", 9), ("ref ms", 9), ("torch ms", 9), ("core GF/s", 9), ("%sgemm", 7),
           ("torch/core", 10), ("target", 6), ("need%", 6), ("ref/core", 9))


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def peer_columns(peers):
    """The extra (name, width) columns of the asked-for peers: ms and ratio to lstm_core."""
    cols = []
    for peer in peers:
        cols += [(f"{PEERS[peer]} ms", 14), (f"{peer}/core", 10)]
    return tuple(cols)


def format_row(row, peers=()):
    t = row["timings"]
    ms = {impl: t[impl]["median_s"] * 1e3 if impl in t else None
          for impl in (*IMPLS, *PEERS.values())}
    cells = (row["case"], row["T"], row["B"], row["I"], row["H"], row["dtype"], row["mode"],
             _fmt(ms["lstm_core"], ".3f"), _fmt(ms["reference"], ".3f"),
             _fmt(ms["torch"], ".3f"), _fmt(row["lstm_core_gflops"], ".2f"),
             _fmt(row["pct_sgemm"], ".1f"), _fmt(row.get("ratio_torch_over_lstm_core"), ".2f"),
             _fmt(row.get("target"), ".1f"), _fmt(row.get("need_pct_roofline"), ".0f"),
             _fmt(row.get("ratio_reference_over_lstm_core"), ".2f"))
    for peer in peers:
        column = PEERS[peer]
        cells += (_fmt(ms[column], ".3f"), _fmt(row.get(f"ratio_{column}_over_lstm_core"), ".2f"))
    return " ".join(str(c).rjust(w) for c, (_, w) in zip(cells, COLUMNS + peer_columns(peers)))


def format_grid(grid):
    roof = grid["roofline"]
    load = grid["foreign_load"]
    lines = [f"\n## {grid['threads']} thread(s)"]
    if load is not None:
        lines[0] += (f"; other processes used {load['other_cores']:.2f} cores on average "
                     f"(hypervisor steal {load['steal_cores']:.2f}) over {load['wall_s']:.0f} s")
    for routine in ("sgemm", "dgemm"):
        shapes = ", ".join(f"{s} {v['gflops']:.1f}" for s, v in roof[routine].items())
        lines.append(f"# {routine} GF/s (MxKxN): {shapes} -> {routine}_gfs = "
                     f"{roof[f'{routine}_gfs']:.1f}")
    lines.append(f"# sgemv GB/s ({next(iter(roof['sgemv']))} float32 weights): "
                 f"sgemv_gbs = {roof['sgemv_gbs']:.1f}")
    peers = grid.get("peers", ())
    lines.append(" ".join(name.rjust(w) for name, w in COLUMNS + peer_columns(peers)))
    lines.extend(format_row(row, peers) for row in grid["rows"])
    noisy = [f"{row['case']} {row['mode']} {impl} {t['iqr_over_median']:.2f}"
             for row in grid["rows"] for impl, t in row["timings"].items()
             if t["iqr_over_median"] > NOISY]
    noisy += [f"{routine} {shape} {t['iqr_over_median']:.2f}"
              for routine in ("sgemm", "dgemm", "sgemv") for shape, t in roof[routine].items()
              if t["iqr_over_median"] > NOISY]
    if noisy:
        lines.append(f"# NOISY (interquartile range / median > {NOISY:.0%}): " + "; ".join(noisy))
    for row in grid["rows"]:
        peer_err = row["check_max_err"].get("peer_max_abs_err")
        if peer_err and row["mode"] != "fwd+bwd":
            oracle = row["check_max_err"]["oracle"]
            lines.append(f"# {row['case']} {row['mode']}: max |y - y_{oracle}| "
                         + ", ".join(f"{k} {v:.1e}" for k, v in peer_err.items()))
        if "pct_dgemm" in row:
            lines.append(f"# {row['case']} {row['mode']}: {row['pct_dgemm']:.1f}% of dgemm_gfs")
        if "need_gbytes_per_s" in row:
            lines.append(f"# {row['case']} {row['mode']}: the target needs {row['streamed']} "
                         f"streamed at {row['need_gbytes_per_s']:.0f} GB/s with no other cost "
                         f"(sgemv_gbs {roof['sgemv_gbs']:.0f})")
    lines.append("# need%: share of the roofline (sgemm_gfs; dgemm_gfs for float64) lstm_core "
                 "would need to meet its target; > 100 is beyond any GEMM-bound code here")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed samples per cell (>= 5)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_REPEATS} samples, no reference on big shapes")
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--threads", help="comma-separated thread counts (default: 1,cpu_count)")
    p.add_argument("--deepbench", action="store_true",
                   help="add the DeepBench LSTM train shapes (T=25, H=I in {512,1024}, "
                        "N in {16,32,64})")
    p.add_argument("--peers", default="",
                   help="comma-separated reduced-precision torch peers to add: bf16 "
                        "(torch.autocast bfloat16), int8 (quantize_dynamic qint8); float32 "
                        "cases only; default none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON results (default: "
                   "benchmarks/results/bench-<YYYY-MM-DD>-<commit>.json)")
    args = p.parse_args(argv)
    if not args.quick and args.repeats < 5:
        p.error("--repeats must be at least 5 (use --quick for a smoke run)")
    args.peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = [name for name in args.peers if name not in PEERS]
    if unknown:
        p.error(f"unknown peer(s) {unknown}; known: {sorted(PEERS)}")
    if args.peers and torch is None:
        p.error("--peers needs torch")
    return args


def select_cases(args):
    cases = GRID + (DEEPBENCH if args.deepbench else ())
    if not args.cases:
        return list(cases)
    by_name = {c.name: c for c in GRID + DEEPBENCH}
    wanted = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {sorted(by_name)}")
    return [by_name[name] for name in wanted]


def select_threads(args):
    if args.threads:
        return [int(n) for n in args.threads.split(",")]
    return sorted({1, os.cpu_count() or 1})


def main(argv=None):
    args = parse_args(argv)
    repeats = QUICK_REPEATS if args.quick else args.repeats
    info = header_info()
    # Results are named by date and the commit they ran on (the header records both).
    out = args.out or (Path(__file__).resolve().parent / "results"
                       / f"bench-{dt.date.today().isoformat()}-{info['git'] or 'nogit'}.json")
    print(format_header(info), flush=True)
    start = time.perf_counter()
    grids = []
    for threads in select_threads(args):
        grids.append(run_grid(select_cases(args), threads, args, repeats))
        print(format_grid(grids[-1]), flush=True)
    info["total_seconds"] = time.perf_counter() - start
    print(f"\n# total {info['total_seconds']:.1f} s; ratios > 1 mean lstm_core is faster")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": info, "repeats": repeats, "quick": args.quick,
                               "grids": grids}, indent=1, default=str))
    print(f"# results: {out}")


if __name__ == "__main__":
    main()
