"""Checkpoint and resume (lc.fit(..., checkpoint=path, resume=path)): a run killed with SIGKILL
in the middle of an epoch and resumed ends with the parameters and History of a run that was
never interrupted, bit for bit; damaged and mismatched checkpoints are refused clearly."""

import json
import os
import signal
import textwrap
import zipfile

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import run_python

# A run with every source of state: two LSTM layers with dropout between them and a Dropout
# head (three generators), Adam (buffers and a step count), shuffling, validation, patience.
RUN = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import lstm_core as lc

    mode, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (48, 10, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1, keepdims=True) * 0.3).astype(np.float32)
    model = lc.SequenceModel(
        lc.LSTM(3, 8, num_layers=2, dropout=0.3, batch_first=True, seed=1),
        lc.Sequential(lc.Linear(8, 8, seed=2), lc.Tanh(), lc.Dropout(0.2, seed=3),
                      lc.Linear(8, 1, seed=4)))
    mse = lc.losses.get_loss("mse")
    calls = [0]

    def loss(pred, target, mask):
        calls[0] += 1
        if mode == "kill" and calls[0] == 2 * 5 + 3:  # epoch 3, batch 3 of 5
            os.kill(os.getpid(), signal.SIGKILL)
        return mse(pred, target, mask)

    kwargs = {"checkpoint": path} if mode != "plain" else {}
    if mode == "resume":
        kwargs["resume"] = path
    history = lc.fit(model, x, y, loss=loss, optimizer=lc.Adam(model.params, lr=0.01),
                     epochs=6, batch_size=8, validation_split=0.2, patience=10, seed=5,
                     progress=False, **kwargs)
    np.savez(out, **model.state_dict(),
             history=np.array(repr((history.history, history.best_epoch))))
""")


def run(mode, path, out):
    # from the folder of the files: `python -c` puts the working directory first on sys.path,
    # and the source checkout's lstm_core folder has no compiled module
    return run_python(RUN, mode, str(path), str(out), cwd=os.path.dirname(path), timeout=300)


def test_a_run_killed_mid_epoch_resumes_to_the_same_bits(tmp_path):
    checkpoint = tmp_path / "run.ckpt.npz"
    plain = run("plain", tmp_path / "unused.npz", tmp_path / "plain.npz")
    assert plain.returncode == 0, plain.stderr
    killed = run("kill", checkpoint, tmp_path / "never.npz")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "never.npz").exists()
    with np.load(checkpoint) as saved:  # the last whole epoch, 2 of 6
        assert json.loads(str(saved["__checkpoint__"]))["epochs_done"] == 2
    resumed = run("resume", checkpoint, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr
    with np.load(tmp_path / "plain.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def small_run(tmp_path, **kwargs):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 12, 2)).astype(np.float32)
    y = x.sum(axis=(0, 2))[:, None].astype(np.float32)
    model = lc.SequenceModel(lc.LSTM(2, 4, seed=0), lc.Linear(4, 1, seed=0))
    options = {"epochs": 2, "batch_size": 4, "seed": 0, "progress": False,
               "optimizer": lc.Adam(model.params, lr=0.01), **kwargs}
    return model, x, y, lc.fit(model, x, y, **options)


def test_resume_can_train_further_and_a_finished_run_stays_finished(tmp_path):
    path = tmp_path / "c.npz"
    small_run(tmp_path, checkpoint=path)                       # 2 epochs, saved
    model, x, y, history = small_run(tmp_path, epochs=4, resume=path)
    reference, _, _, want = small_run(tmp_path, epochs=4)
    assert history.history == want.history
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)
    # a run stopped by early stopping is finished: resuming trains no more
    stopped = tmp_path / "stopped.npz"
    _, _, _, first = small_run(tmp_path, epochs=30, patience=1, min_delta=1e9,
                               checkpoint=stopped)
    assert first.stopped_early and len(first["loss"]) == 2
    _, _, _, again = small_run(tmp_path, epochs=30, patience=1, min_delta=1e9, resume=stopped)
    assert again.history == first.history and again.stopped_early


def test_damaged_and_mismatched_checkpoints_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    small_run(tmp_path, checkpoint=path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        small_run(tmp_path, resume=tmp_path / "missing.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot resume from .*not a readable"):
        small_run(tmp_path, resume=truncated)
    with pytest.raises(ValueError, match="written by another run: batch_size: 4 in the "
                                         "checkpoint, 3 now"):
        small_run(tmp_path, resume=path, batch_size=3)
    with pytest.raises(ValueError, match="another run: seed"):
        small_run(tmp_path, resume=path, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 12, 2)).astype(np.float32)
    y = x.sum(axis=(0, 2))[:, None].astype(np.float32)
    other = lc.SequenceModel(lc.LSTM(2, 5, seed=0), lc.Linear(5, 1, seed=0))
    with pytest.raises(ValueError, match="another model"):
        lc.fit(other, x, y, epochs=2, batch_size=4, seed=0, progress=False, resume=path)
    model = lc.SequenceModel(lc.LSTM(2, 4, seed=0), lc.Linear(4, 1, seed=0))
    with pytest.raises(ValueError, match="optimizer Adam, not SGD"):
        lc.fit(model, x, y, epochs=2, batch_size=4, seed=0, progress=False, resume=path,
               optimizer=lc.SGD(model.params, lr=0.1))
    # a newer format version, and an archive without the description
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    with np.load(path) as saved:
        description = json.loads(str(saved["__checkpoint__"]))
    description["version"] = 99
    newer = tmp_path / "newer.npz"
    with np.load(path) as saved:
        np.savez(newer, **{k: saved[k] for k in saved.files if k != "__checkpoint__"},
                 __checkpoint__=np.array(json.dumps(description)))
    with pytest.raises(ValueError, match="format version 99"):
        small_run(tmp_path, resume=newer)
    stripped = tmp_path / "stripped.npz"
    with zipfile.ZipFile(stripped, "w") as archive:
        for name, data in entries.items():
            if name != "__checkpoint__.npy":
                archive.writestr(name, data)
    with pytest.raises(ValueError, match="entry is missing"):
        small_run(tmp_path, resume=stripped)
    assert os.path.exists(path)
