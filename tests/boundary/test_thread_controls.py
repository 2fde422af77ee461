"""lstm_core's own threads obey the ecosystem's controls: the default count follows
LSTM_CORE_NUM_THREADS, then OMP_NUM_THREADS, then the CPUs the process may use;
threadpoolctl lists lstm_core and its threadpool_limits limit it; a count above the cap of 64
warns.  Defaults are read at import, so each case runs in a fresh interpreter."""

import json
import os
import warnings

import pytest

import lstm_core as lc
from lstm_problems import run_python

REPORT = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import lstm_core as lc
print(json.dumps({"threads": lc.get_num_threads(),
                  "warnings": [str(w.message) for w in caught
                               if issubclass(w.category, RuntimeWarning)]}))
"""


def default_threads(tmp_path, **env):
    """lc.get_num_threads() and the RuntimeWarnings of `import lstm_core` in a fresh process
    whose environment has these variables (and neither of the two otherwise)."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("LSTM_CORE_NUM_THREADS", "OMP_NUM_THREADS")}
    environ.update(env)
    proc = run_python(REPORT, cwd=tmp_path, timeout=120, env=environ)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def usable_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_default_is_the_usable_cpus(tmp_path):
    assert default_threads(tmp_path) == {"threads": usable_cpus(), "warnings": []}


@pytest.mark.parametrize("env, want", [
    ({"OMP_NUM_THREADS": "1"}, 1),
    ({"OMP_NUM_THREADS": "3"}, 3),
    ({"OMP_NUM_THREADS": "2,1"}, 2),  # OpenMP's nested form: the outer level counts
    ({"LSTM_CORE_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}, 1),  # lstm_core's own first
    ({"LSTM_CORE_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, 3),
], ids=["omp1", "omp3", "omp-nested", "own-over-omp", "own-over-omp-larger"])
def test_environment_sets_the_default(tmp_path, env, want):
    assert default_threads(tmp_path, **env) == {"threads": want, "warnings": []}


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_environment_value_warns_and_is_ignored(tmp_path, value):
    got = default_threads(tmp_path, LSTM_CORE_NUM_THREADS=value, OMP_NUM_THREADS="1")
    assert got["threads"] == 1  # the next variable decides
    assert len(got["warnings"]) == 1 and "LSTM_CORE_NUM_THREADS" in got["warnings"][0]


def test_more_than_the_cap_warns(num_threads):
    with pytest.warns(RuntimeWarning, match="at most 64"):
        num_threads(100)
    assert lc.get_num_threads() == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        num_threads(64)  # the cap itself is silent
    assert lc.get_num_threads() == 64


THREADPOOLCTL = """
import json
import lstm_core as lc
from threadpoolctl import threadpool_info, threadpool_limits
lc.set_num_threads(2)
mine = [d for d in threadpool_info() if d["user_api"] == "lstm_core"]
report = {"listed": [(d["internal_api"], d["num_threads"], d["version"]) for d in mine]}
with threadpool_limits(limits=1):
    report["inside"] = lc.get_num_threads()
report["after"] = lc.get_num_threads()
with threadpool_limits(limits=1, user_api="blas"):
    report["blas_only"] = lc.get_num_threads()
with threadpool_limits(limits={"lstm_core": 1}):
    report["by_api"] = lc.get_num_threads()
print(json.dumps(report))
"""


def test_threadpoolctl_lists_and_limits_lstm_core(tmp_path):
    pytest.importorskip("threadpoolctl")
    proc = run_python(THREADPOOLCTL, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["listed"] == [["lstm_core", 2, lc.__version__]]
    assert report["inside"] == 1 and report["after"] == 2
    assert report["blas_only"] == 2  # another API's limit leaves lstm_core alone
    assert report["by_api"] == 1
