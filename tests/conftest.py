"""Fixtures shared by every part of the suite.

cell: each of "lstm", "gru", "rnn" as a cell_problems.Cell (its forward/backward, the numpy
      twins, gate count, layer class, problem factory): a check taking it is written once and
      runs for every cell.
dtype: float32 and float64 (ids f32, f64).
num_threads: lc.set_num_threads, with the thread count restored after the test.
split: lstm_core._testing.force_split, with the automatic choice restored after the test.
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _testing

from cell_problems import CELLS


@pytest.fixture(params=list(CELLS), ids=list(CELLS))
def cell(request):
    return CELLS[request.param]


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def num_threads():
    saved = lc.get_num_threads()
    yield lc.set_num_threads
    lc.set_num_threads(saved)


@pytest.fixture
def split():
    """Forces a way of splitting the loops, and restores the automatic choice."""
    yield _testing.force_split
    _testing.force_split(None)
