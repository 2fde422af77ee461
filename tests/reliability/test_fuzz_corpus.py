"""Replays the fuzz harness (tests/fuzz/fuzz_api.py) without atheris or ASan: every committed
corpus input, then a few thousand seeded random inputs.  A finding (an unexpected exception, a
wrong shape, an unbounded gate, a non-finite or wrong float64 result) fails the test with the
input's file name or bytes, ready to replay with `run_one`."""

import collections
import importlib.util
import pathlib

import numpy as np

FUZZ_DIR = pathlib.Path(__file__).parent / "fuzz"
RANDOM_INPUTS = 3000


def _harness():
    spec = importlib.util.spec_from_file_location("fuzz_api", FUZZ_DIR / "fuzz_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _harness()


def _replay(named_inputs):
    outcomes = collections.Counter()
    for name, data in named_inputs:
        try:
            outcomes[harness.run_one(data)] += 1
        except Exception as e:  # noqa: BLE001 - any escape is a finding; say which input
            raise AssertionError(f"finding on input {name} ({data.hex()}): {e!r}") from e
    return outcomes


def test_committed_corpus_replays_without_findings():
    files = sorted((FUZZ_DIR / "corpus").iterdir())
    assert len(files) >= 40
    outcomes = _replay((f.name, f.read_bytes()) for f in files)
    # the corpus reaches every entry point both through to a result and into a rejection
    for entry in harness.ENTRY_POINTS:
        assert outcomes[f"{entry}:ok"] > 0, outcomes
        assert any(o.startswith(f"{entry}:") and not o.endswith(":ok") for o in outcomes), outcomes


def test_random_inputs_replay_without_findings():
    rng = np.random.default_rng(5)
    inputs = [rng.integers(0, 256, rng.integers(0, 200)).astype(np.uint8).tobytes()
              for _ in range(RANDOM_INPUTS)]
    outcomes = _replay((f"random #{k}", data) for k, data in enumerate(inputs))
    assert sum(v for o, v in outcomes.items() if o.endswith(":ok")) > RANDOM_INPUTS // 4
