"""The Embedding layer and a model that starts with one: lookups, scatter-add gradients
against finite differences, and the token model's cut of padding steps."""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core.embedding import Embedding, TokenSequenceModel
from lstm_problems import numeric_gradient


def test_lookup_and_repeated_ids_accumulate():
    embedding = Embedding(5, 3, seed=0)
    ids = np.array([[1, 4, 1], [0, 1, 2]])
    vectors = embedding(ids)
    assert vectors.shape == (2, 3, 3)
    assert np.array_equal(vectors[0, 2], embedding.params["weight"][1])
    embedding.backward(np.ones((2, 3, 3), np.float32))
    # Token 1 appears three times: three rows of ones, added, not overwritten.
    assert np.array_equal(embedding.grads["weight"][:, 0], [1, 3, 1, 0, 1])


def test_padding_row_is_zero_and_never_learns():
    embedding = Embedding(4, 2, padding_idx=0, seed=0)
    assert not embedding.params["weight"][0].any()
    embedding(np.array([0, 0, 3]))
    embedding.backward(np.ones((3, 2), np.float32))
    assert not embedding.grads["weight"][0].any() and embedding.grads["weight"][3].all()


def test_bad_ids_are_refused():
    embedding = Embedding(4, 2)
    with pytest.raises(TypeError, match="integers"):
        embedding(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        embedding(np.array([0, 4]))


def _token_model(seed=0):
    return TokenSequenceModel(
        Embedding(7, 3, padding_idx=0, dtype=np.float64, seed=seed),
        lc.LSTM(3, 4, batch_first=True, dtype=np.float64, seed=seed + 1),
        lc.Linear(4, 3, dtype=np.float64, seed=seed + 2))


def test_embedding_gradient_matches_finite_differences():
    model = _token_model()
    ids = np.array([[1, 2, 2, 5, 0], [3, 6, 0, 0, 0]])
    lengths = np.array([4, 2])
    labels = np.array([2, 0])
    x = ids[:, :, None].astype(np.float64)

    def loss():
        return lc.cross_entropy_loss(model(x, lengths=lengths), labels)[0]

    model.zero_grad()
    _, dlogits = lc.cross_entropy_loss(model(x, lengths=lengths), labels)
    model.backward(dlogits)
    analytic = model.grads["embedding.weight"].copy()
    numeric = numeric_gradient(loss, model.params["embedding.weight"])
    np.testing.assert_allclose(analytic[1:], numeric[1:], rtol=1e-6, atol=1e-9)
    assert not analytic[0].any()               # padding: no gradient though it was looked up
    assert not analytic[4].any()               # token 4 never appears


def test_padding_past_the_longest_text_changes_nothing():
    model = _token_model()
    ids = np.array([[1, 2, 3], [4, 0, 0]])
    lengths = np.array([3, 1])
    wide = np.concatenate([ids, np.zeros((2, 6), np.int64)], axis=1)
    narrow_out = model(ids[:, :, None].astype(np.float64), lengths=lengths)
    wide_out = model(wide[:, :, None].astype(np.float64), lengths=lengths)
    np.testing.assert_allclose(narrow_out, wide_out, rtol=1e-13)
    assert wide_out.shape == (2, 3)


def test_token_model_trains_with_fit():
    # Class = whether token 2 occurs anywhere in the text: needs memory across steps.
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, 256)
    ids = np.zeros((256, 8), np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.choice([1, 3, 4, 5, 6], n)
    labels = rng.integers(0, 2, 256)
    for row in np.flatnonzero(labels):
        ids[row, rng.integers(0, lengths[row])] = 2
    model = TokenSequenceModel(Embedding(7, 8, padding_idx=0, seed=0),
                               lc.LSTM(8, 16, batch_first=True, seed=1), lc.Linear(16, 2, seed=2))
    history = lc.fit(model, ids[:, :, None].astype(np.float32), labels, lengths=lengths,
                     loss="cross_entropy", optimizer=lc.Adam(model.params, lr=0.02), epochs=15,
                     batch_size=32, seed=0, progress=False)
    assert history["accuracy"][-1] > 0.9
    assert history["loss"][-1] < history["loss"][0] / 3
