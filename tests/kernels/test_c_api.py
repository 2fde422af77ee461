"""The C API alone, without Python: tests/c/test_lstm.c drives one forward and one backward
through src/include/lstm_core.h (plans for 1 to 3 threads, both dtypes) against the plain C
path (src/kernels/lstm_plain.c).  CI runs the same script directly."""

import pathlib
import shutil
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).parents[1] / "c" / "run.sh"


def test_c_drivers_agree_with_the_plain_c_path():
    if shutil.which("gcc") is None or shutil.which("bash") is None:
        pytest.skip("needs gcc and bash")
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok:"), result.stdout
