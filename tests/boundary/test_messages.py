"""Errors that say what to do: the source checkout imported without a build, a model saved
into a missing folder, integer class labels given to the squared-error loss."""

import shutil
import sys

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import run_python

UNBUILT_IMPORT = """
import sys
# an editable install's finder would supply the compiled modules from elsewhere
sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path.insert(0, sys.argv[1])
try:
    import lstm_core
except ImportError as error:
    print(type(error).__name__, error)
"""


def test_an_unbuilt_checkout_says_how_to_build(tmp_path):
    """The package folder without its compiled modules, as in a fresh clone."""
    copy = tmp_path / "checkout"
    shutil.copytree(lc.__path__[0], copy / "lstm_core",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    proc = run_python(UNBUILT_IMPORT, str(copy), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith("ImportError") and "ModuleNotFoundError" not in out
    assert "pip install ." in out and "build_ext --inplace" in out and str(copy) in out


def test_saving_into_a_missing_folder_names_the_folder(tmp_path):
    model = lc.LSTM(2, 3, seed=0)
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match="folder .*no.*such.* does not exist"):
        lc.save_model(model, missing / "model.npz")
    assert not (tmp_path / "no").exists()


def test_integer_labels_with_mse_suggest_cross_entropy():
    pred = np.zeros((4, 3))
    with pytest.raises(ValueError, match='loss="cross_entropy"'):
        lc.mse_loss(pred, np.array([0, 2, 1, 1]))
    # a float target of the wrong shape gets no classification hint
    with pytest.raises(ValueError) as info:
        lc.mse_loss(pred, np.zeros(4))
    assert "cross_entropy" not in str(info.value)
