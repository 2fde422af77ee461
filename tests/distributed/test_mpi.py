"""Data-parallel fit and sharded predict over MPI (mpi4py, run under mpiexec with 2 and 3
ranks): equal to one process to round-off in float64, each rank computing only its shard,
a failing rank stopping every rank, and mismatched ranks refused."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import run_python

MPI = pytest.importorskip("mpi4py.MPI")
# the mpiexec of the MPI that mpi4py runs on: the mpich wheel's, next to this Python
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
    "mpiexec")

SCRIPT = """
import json, sys
import numpy as np
import lstm_core as lc
from mpi4py import MPI

mode, out = sys.argv[1], sys.argv[2]
comm = MPI.COMM_WORLD
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (22, 6, 3))
y = (x[:, :, 0].sum(axis=1, keepdims=True) * 0.3)
lengths = rng.integers(1, 7, 22)
hidden = 6 if mode == "mismatch" and comm.rank == 1 else 5
# fit broadcasts rank 0's parameters, so the ranks may start from different ones; predict
# takes the same model on every rank
offset = 0 if mode == "predict" else comm.rank
model = lc.SequenceModel(lc.LSTM(3, hidden, num_layers=2, batch_first=True, dtype=np.float64,
                                 seed=offset + 1),
                         lc.Linear(hidden, 1, dtype=np.float64, seed=offset + 7))
rows = []
forward = model.forward
def recording(x, *args, **kwargs):
    if model.training:
        rows.append(int(np.shape(x)[0]))
    return forward(x, *args, **kwargs)
model.forward = recording
mse = lc.losses.get_loss("mse")
def loss(pred, target, mask):
    if mode == "fail" and comm.rank == 1 and len(rows) == 4:
        raise ValueError("bad data on this rank")
    return mse(pred, target, mask)
if mode == "predict":
    model.eval()
    got = lc.predict(model, x, lengths=lengths, comm=comm)
    ev = lc.evaluate(model, x, y, lengths=lengths, comm=comm, metrics=["mae"])
    # time-major, every step: gathered along the batch axis 1, with the final states
    per_step = lc.SequenceModel(lc.GRU(3, 4, dtype=np.float64, seed=3),
                                lc.Linear(4, 2, dtype=np.float64, seed=4), output="all")
    steps, h_n = lc.predict(per_step, x.transpose(1, 0, 2), lengths=lengths, comm=comm,
                            return_state=True)
    if comm.rank == 0:
        np.save(out + ".steps.npy", steps)
        np.save(out + ".h_n.npy", h_n)
        np.save(out + ".npy", got)
        with open(out + ".json", "w") as f:
            json.dump(ev, f)
    sys.exit(0)
history = lc.fit(model, x, y, loss=loss, lengths=lengths, optimizer=lc.Adam(model.params, lr=0.02),
                 epochs=3, batch_size=8, seed=0, validation_split=0.2, patience=5, clip_norm=1.0,
                 metrics=["mae"], progress=False, comm=comm)
with open(f"{out}.rank{comm.rank}.json", "w") as f:
    json.dump({"rows": rows, "history": history.history, "best": history.best_epoch}, f)
lc.save_model(model, out + ".npz", comm=comm)
"""


def mpirun(tmp_path, ranks, mode):
    """mpiexec -n ranks python SCRIPT mode out, from tmp_path (not the source checkout),
    with a timeout: a hang fails the test instead of blocking the suite."""
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'lstm_core[mpi]')")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = str(tmp_path / "out")
    command = [MPIEXEC, "-n", str(ranks), sys.executable, str(script), mode, out]
    launcher = f"import subprocess, sys; sys.exit(subprocess.call({command!r}))"
    return run_python(launcher, cwd=tmp_path, timeout=120), out


def one_process():
    """The same run in this process, without comm: its parameters and History."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (22, 6, 3))
    y = x[:, :, 0].sum(axis=1, keepdims=True) * 0.3
    lengths = rng.integers(1, 7, 22)
    model = lc.SequenceModel(lc.LSTM(3, 5, num_layers=2, batch_first=True, dtype=np.float64,
                                     seed=1), lc.Linear(5, 1, dtype=np.float64, seed=7))
    history = lc.fit(model, x, y, lengths=lengths, optimizer=lc.Adam(model.params, lr=0.02),
                     epochs=3, batch_size=8, seed=0, validation_split=0.2, patience=5,
                     clip_norm=1.0, metrics=["mae"], progress=False)
    return model, history, (x, y, lengths)


@pytest.mark.parametrize("ranks", [2, 3])
def test_data_parallel_fit_equals_one_process(tmp_path, ranks):
    result, out = mpirun(tmp_path, ranks, "fit")
    assert result.returncode == 0, result.stderr
    model, history, _ = one_process()
    saved = lc.load_model(out + ".npz")
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(saved.state_dict()[name], value, rtol=0, atol=1e-10,
                                   err_msg=name)
    runs = [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(ranks)]
    for run in runs:  # every rank returns the same History, equal to one process's
        assert run["history"] == runs[0]["history"] and run["best"] == history.best_epoch
        for key, values in history.history.items():
            np.testing.assert_allclose(run["history"][key], values, rtol=0, atol=1e-10)
    # each rank computed only its shard: 17 training sequences in batches of 8, 8, 1, split
    # into contiguous shards (uneven with 3 ranks; a rank may get none of a batch)
    for r, run in enumerate(runs):
        want = [len(np.array_split(np.arange(n), ranks)[r]) for n in (8, 8, 1)] * 3
        assert run["rows"] == [n for n in want if n > 0]


def test_sharded_predict_and_evaluate_equal_one_process(tmp_path):
    result, out = mpirun(tmp_path, 3, "predict")
    assert result.returncode == 0, result.stderr
    _, _, (x, y, lengths) = one_process()
    model = lc.SequenceModel(lc.LSTM(3, 5, num_layers=2, batch_first=True, dtype=np.float64,
                                     seed=1), lc.Linear(5, 1, dtype=np.float64, seed=7))
    np.testing.assert_allclose(np.load(out + ".npy"), lc.predict(model, x, lengths=lengths),
                               rtol=0, atol=1e-12)
    per_step = lc.SequenceModel(lc.GRU(3, 4, dtype=np.float64, seed=3),
                                lc.Linear(4, 2, dtype=np.float64, seed=4), output="all")
    steps, h_n = lc.predict(per_step, x.transpose(1, 0, 2), lengths=lengths, return_state=True)
    np.testing.assert_allclose(np.load(out + ".steps.npy"), steps, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.load(out + ".h_n.npy"), h_n, rtol=0, atol=1e-12)
    want = lc.evaluate(model, x, y, lengths=lengths, metrics=["mae"])
    got = json.loads(Path(out + ".json").read_text())
    assert got.keys() == want.keys()
    for key in want:
        assert abs(got[key] - want[key]) <= 1e-12


def test_a_failing_rank_stops_every_rank(tmp_path):
    result, _ = mpirun(tmp_path, 2, "fail")  # within the 120 s timeout, not a hang
    assert result.returncode != 0
    assert "ValueError: bad data on this rank" in result.stderr
    assert "RankFailed: rank 1 of 2 failed in a training step" in result.stderr


def test_ranks_with_different_models_are_refused(tmp_path):
    result, _ = mpirun(tmp_path, 2, "mismatch")
    assert result.returncode != 0
    assert "the ranks hold different models or settings: ranks [1] differ" in result.stderr


def test_comm_must_be_a_communicator_and_mpi4py_is_named(monkeypatch):
    model = lc.SequenceModel(lc.LSTM(2, 3), lc.Linear(3, 1))
    x, y = np.zeros((4, 2, 2), np.float32), np.zeros((2, 1), np.float32)
    with pytest.raises(TypeError, match="mpi4py communicator"):
        lc.fit(model, x, y, epochs=1, progress=False, comm="world")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'pip install "lstm_core\[mpi\]"'):
        lc.predict(model, x, comm=object())


def test_the_example_trains_over_two_ranks(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "distributed_fit.py"
    if MPIEXEC is None:
        pytest.skip("no mpiexec")
    command = [MPIEXEC, "-n", "2", sys.executable, str(example), "--epochs", "3", "--out",
               str(tmp_path)]
    launcher = f"import subprocess, sys; sys.exit(subprocess.call({command!r}))"
    result = run_python(launcher, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 ranks: 3 epochs" in result.stdout and (tmp_path / "sunspots_distributed.npz").exists()


def test_import_lstm_core_never_imports_mpi4py(tmp_path):
    result = run_python("import sys, lstm_core; print('mpi4py' in sys.modules)", cwd=tmp_path,
                        timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
