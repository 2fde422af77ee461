"""The long-lag tasks, the parameter matching and the whole script on tiny sizes."""

import json

import numpy as np
import pytest

import lstm_core as lc
from lstm_core.demos import long_lag as ll


def test_adding_problem_targets_and_mean_baseline():
    x, y = ll.adding_problem(4000, 50, np.random.default_rng(0))
    assert x.shape == (4000, 50, 2) and y.shape == (4000, 1)
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :25].sum(axis=1) == 1)                 # one mark in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    # Predicting the mean scores about 1/6, the number the README's table compares against.
    assert abs(np.mean((y - y.mean()) ** 2) - 1 / 6) < 0.01


def test_copy_memory_layout():
    x, labels = ll.copy_memory(3, 7, np.random.default_rng(1))
    K = ll.COPY_LENGTH
    assert x.shape == (3, 7 + 2 * K, 10) and labels.shape == (3, 7 + 2 * K)
    assert np.array_equal(x[:, :K].argmax(-1), labels[:, -K:])      # the replay is the input
    assert np.all(labels[:, :-K] == 0)
    assert np.all(x[:, K + 7 - 1, 9] == 1)                          # "go" right before replay


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_hidden_sizes_match_the_lstm_budget(cell):
    budget = ll.parameter_count("lstm", 2, 32, 1)
    hidden = ll.matched_hidden_size(cell, 2, 1, budget)
    assert abs(ll.parameter_count(cell, 2, hidden, 1) - budget) / budget < 0.03
    model = ll.build_model("lstm", 2, 32, 1, "last", 0)
    assert sum(p.size for p in model.params.values()) == budget     # the formula is torch's


def test_hidden_gradient_norms_match_finite_differences():
    model = lc.SequenceModel(lc.LSTM(2, 4, batch_first=True, dtype=np.float64, seed=0),
                             lc.Linear(4, 1, dtype=np.float64, seed=1))
    x, y = ll.adding_problem(1, 6, np.random.default_rng(2))
    x, y = x.astype(np.float64), y.astype(np.float64)
    norms = ll.hidden_gradient_norms(model, x, y, [0, 3])
    # ∂L/∂h_3 by perturbing h_3 and running steps 4..6 from (h_3 + e, c_3).
    model.train()
    y_all, _ = model.lstm(x)
    c_all = lc.lstm_gates(model.lstm)[0]["c"].copy()
    h3, c3 = y_all[:, 2].copy(), c_all[:, 2]

    def loss(h):
        out = model(np.ascontiguousarray(x[:, 3:]), (h[None], c3[None]))
        return lc.mse_loss(out, y)[0]

    eps, grad = 1e-6, np.zeros(4)
    for k in range(4):
        step = np.zeros_like(h3)
        step[0, k] = eps
        grad[k] = (loss(h3 + step) - loss(h3 - step)) / (2 * eps)
    np.testing.assert_allclose(norms[1], np.linalg.norm(grad), rtol=1e-5)
    assert norms[0] > 0


def test_script_runs_on_tiny_sizes(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{ll.README_START}\nold\n{ll.README_END}\nrest\n")
    results = ll.main(out_dir=tmp_path / "out", quick=True, cells=["lstm", "gru"],
                      tasks=["adding50", "copy"], readme=readme, verbose=False)
    assert [r["task"] for r in results] == ["adding50", "adding50", "copy", "copy"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["results"][0]["cell"] == "lstm" and "test_mse" in saved["results"][0]
    assert "lstm trained" in saved["gradient_norms"]
    table = (tmp_path / "out" / "table.md").read_text()
    text = readme.read_text()
    assert table.strip() in text and "old" not in text and text.endswith("rest\n")
    with pytest.raises(ValueError, match="unknown"):
        ll.main(out_dir=tmp_path / "x", quick=True, cells=["transformer"])


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_one_state_models_train_and_predict(cell):
    x, y = ll.adding_problem(128, 8, np.random.default_rng(0))
    model = ll.build_model(cell, 2, 6, 1, "last", 0)
    assert isinstance(model, lc.SequenceModel)
    assert type(model.lstm) is getattr(lc, ll.LAYER_NAMES[cell])
    assert sum(p.size for p in model.params.values()) == ll.parameter_count(cell, 2, 6, 1)
    history = lc.fit(model, x, y, optimizer=lc.Adam(model.params, lr=0.01), epochs=3,
                     batch_size=32, seed=0, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    out, h_n = lc.predict(model, x[:5], return_state=True)  # one state: h_n alone
    layer_y, layer_h = model.lstm.eval()(x[:5])
    np.testing.assert_allclose(out, model.head(layer_h[-1]), rtol=1e-6)
    assert h_n.shape == (1, 5, 6)


RUN_TWICE = """
import sys
# no gradient plot: the tables are what is compared (and matplotlib's C++ exceptions would not
# survive the sanitizer run, which hides it from the tests)
sys.modules["matplotlib"] = None
from lstm_core.demos import long_lag as ll
ll.main(out_dir=sys.argv[1], quick=True, cells=["lstm", "gru", "rnn"],
        tasks=["adding50", "copy"], verbose=False)
"""


def test_two_runs_print_the_same_table(tmp_path):
    """The budgets count updates, not seconds, and the table holds no wall time: two runs of
    the same commit (fresh processes, as two invocations are) give the same table."""
    from lstm_problems import run_python
    tables = []
    for run in ("a", "b"):
        out = tmp_path / run
        proc = run_python(RUN_TWICE, str(out), cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
        tables.append((out / "table.md").read_text())
    assert tables[0] == tables[1]
    assert "seconds" not in tables[0] and tables[0].count("\n") == 2 + 6


def test_budgets_are_updates():
    """Each task's budget is a number of updates, rounded up to whole epochs."""
    r = ll.run_task("adding50", "lstm", n_train=64, n_val=16, n_test=16, batch_size=16,
                    max_updates=6)
    assert r["updates"] == 8 and r["solved_at_update"] is None  # 2 epochs of 4 updates
    assert all(isinstance(t[3], int) and t[3] >= 1000 for t in ll.TASKS.values())
