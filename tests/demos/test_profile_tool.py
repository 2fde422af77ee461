"""benchmarks/profile_lstm.py: how perf's symbols are grouped, and its answer without perf."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "profile_lstm.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("profile_lstm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("symbol, category", [
    ("panel_block_f32.arch_x86_64_v4", "GEMM: lstm_core packed kernel"),
    ("wide_block_f64.arch_x86_64_v3", "GEMM: lstm_core packed kernel"),
    ("matvec_f32.arch_x86_64_v4", "GEMM: lstm_core packed kernel"),  # one row, unpacked
    ("transpose_run_f32.arch_x86_64_v4", "packing / reorder"),
    ("sgemm_kernel_SKYLAKEX", "GEMM: BLAS"),
    ("sgemm_incopy_SKYLAKEX", "GEMM: BLAS"),
    ("jit_brgemm_kernel_t.2", "GEMM: oneDNN"),
    # oneDNN's pointwise and reorder kernels carry "gemm" and "jit" in their names too
    ("jit_uni_lstm_cell_postgemm_fwd.1", "pointwise gates"),
    ("lstm_cell_backward_f32.arch_x86_64_v4", "pointwise gates"),
    ("jit_uni_reorder_kernel_f32.0", "packing / reorder"),
    ("pack_range_f32.constprop.1", "packing / reorder"),
    ("__pyx_f_9lstm_core_8_threads__wait", "threads: barriers, wake-ups"),
    ("__sched_yield", "threads: barriers, wake-ups"),
    ("blas_thread_server", "idle BLAS workers"),
    ("exc_page_fault", "memory: copies, page faults"),
    ("__memmove_avx512_unaligned_erms", "memory: copies, page faults"),
    ("_PyEval_EvalFrameDefault", "Python and other"),
    ("0x000000000001e02a", "Python and other"),
])
def test_symbols_fall_in_their_category(tool, symbol, category):
    assert tool.categorise(symbol) == category


REPORT = """\
# Samples: 6K of event 'cpu-clock:pppH'
#
# Overhead       Samples  Symbol
# ........  ............  ..............................
#
    72.72%          4366  [.] panel_block_f32.arch_x86_64_v4
    11.18%           671  [.] lstm_cell_forward_f32.arch_x86_64_v4
    10.13%           608  [.] __pyx_f_9lstm_core_8_threads__wait
     2.48%           149  [.] panels_product_f32.arch_x86_64_v4
     0.58%            35  [k] __schedule
     0.03%             2  [.] _PyEval_EvalFrameDefault
     0.02%             1  [.] 0x00007f3a2c1d
"""


def test_report_lines_are_summed_by_category(tool):
    samples, others = tool.parse_report(REPORT)
    assert samples == {
        "GEMM: lstm_core packed kernel": 4366 + 149,
        "pointwise gates": 671,
        "threads: barriers, wake-ups": 608 + 35,
        "Python and other": 3,
    }
    assert others == {"_PyEval_EvalFrameDefault": 2, "0x00007f3a2c1d": 1}


def test_cpu_milliseconds_per_call(tool):
    # 999 samples a second: 999 samples over 10 calls are 0.1 s of CPU per call
    result = {"samples": {"pointwise gates": 999, "Python and other": 999},
              "calls_per_s": 5.0, "seconds": 2.0}
    assert tool.cpu_ms(result, "pointwise gates") == pytest.approx(100.0)
    assert tool.share(result, "pointwise gates") == pytest.approx(50.0)
    assert tool.cpu_ms(result, "GEMM: BLAS") == 0.0


def test_without_perf_it_says_so(tool, monkeypatch, capsys):
    monkeypatch.setattr(tool.shutil, "which", lambda name: None)
    assert tool.main(["--cases", "S3"]) == 2
    assert "needs Linux perf" in capsys.readouterr().err
