"""Token embeddings: an Embedding layer (index lookup forward, scatter-add backward) and a
sequence model that starts with one, for text.

    embedding = Embedding(num_embeddings, embedding_dim, padding_idx=0)
    vectors = embedding(ids)                   # ids (...) integers -> (..., embedding_dim)
    embedding.backward(dvectors)               # ADDS into embedding.grads["weight"]

    model = TokenSequenceModel(embedding, LSTM(E, H, batch_first=True), Linear(H, classes))
    fit(model, token_ids_as_float[:, :, None], labels, lengths=lengths, loss="cross_entropy")

TokenSequenceModel takes the token ids as a float array (N, T, 1), the layout lc.fit and
lc.predict already handle (their data path carries floats only); ids are exact in float32 up
to 2**24, far beyond any vocabulary here.
"""

import numpy as np

from lstm_core.layers import Module, SequenceModel, _positive_int, float_dtype

_EXACT_FLOAT32_IDS = 2 ** 24


class Embedding(Module):
    """A lookup table: row k of weight (num_embeddings, embedding_dim) is token k's vector.

    Initialised N(0, 1) like torch.nn.Embedding.  padding_idx: that row starts at zero and
    gets no gradient, so padding never moves.  Ids must be integers in [0, num_embeddings).
    """

    def __init__(self, num_embeddings, embedding_dim, *, padding_idx=None, dtype=np.float32,
                 seed=None):
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim")
        if padding_idx is not None and not 0 <= padding_idx < self.num_embeddings:
            raise ValueError(f"padding_idx must lie in [0, {self.num_embeddings}), "
                             f"got {padding_idx}")
        self.padding_idx = padding_idx
        self.dtype = float_dtype(dtype)
        self.training = True
        self._ids = None
        rng = np.random.default_rng(seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.params = {"weight": weight}
        self.grads = {"weight": np.zeros_like(weight)}

    def config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "dtype": self.dtype.name}

    def __call__(self, ids):
        return self.forward(ids)

    def forward(self, ids):
        """ids (...) integers -> (..., embedding_dim), a new array (rows copied)."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), "
                             f"got {ids.min()}..{ids.max()}")
        self._ids = ids
        return self.params["weight"][ids]

    def backward(self, dvectors):
        """ADDS dL/dweight into grads["weight"]: every occurrence of a token adds its row of
        dvectors (np.add.at, so repeated ids accumulate instead of overwriting)."""
        if self._ids is None:
            raise RuntimeError("backward needs a forward first")
        dvectors = np.asarray(dvectors, dtype=self.dtype)
        expected = self._ids.shape + (self.embedding_dim,)
        if dvectors.shape != expected:
            raise ValueError(f"dvectors must have shape {expected}, got {dvectors.shape}")
        ids = self._ids.reshape(-1)
        rows = dvectors.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = ids != self.padding_idx
            ids, rows = ids[keep], rows[keep]
        np.add.at(self.grads["weight"], ids, rows)


class TokenSequenceModel(SequenceModel):
    """Embedding -> LSTM -> (last step or every step) -> Linear, over token ids.

    x (N, T, 1) with batch_first (the LSTM must be batch_first): token ids stored as floats;
    lengths (N,) each text's number of tokens (padding after them).  With output="last" the
    steps past the longest text of a batch are cut before the LSTM (the result is the same:
    each text's state is read at its own length), so a batch costs its own longest text,
    not the corpus's.  Parameters: "embedding.weight" plus SequenceModel's.
    """

    def __init__(self, embedding, lstm, head=None, *, output="last"):
        if not isinstance(embedding, Embedding):
            raise TypeError(f"embedding must be an Embedding, got {type(embedding).__name__}")
        super().__init__(lstm, head, output=output)
        if not lstm.batch_first:
            raise ValueError("TokenSequenceModel needs a batch_first LSTM")
        if embedding.embedding_dim != lstm.input_size or embedding.dtype != lstm.dtype:
            raise ValueError(
                f"the embedding gives {embedding.embedding_dim} features of {embedding.dtype}, "
                f"the LSTM takes {lstm.input_size} of {lstm.dtype}")
        if embedding.num_embeddings > _EXACT_FLOAT32_IDS:
            raise ValueError("more than 2**24 tokens: ids would not be exact as floats")
        self.embedding = embedding
        self.params["embedding.weight"] = embedding.params["weight"]
        self.grads["embedding.weight"] = embedding.grads["weight"]

    def config(self):
        return dict(super().config(), embedding=self.embedding.config())

    def forward(self, x, hx=None, lengths=None, *, return_state=False):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != 1:
            raise ValueError(f"x must hold token ids as (N, T, 1), got shape {x.shape}")
        ids = x[:, :, 0]
        if self.output == "last" and lengths is not None and len(lengths):
            ids = ids[:, :max(int(np.max(lengths)), 1)]
        vectors = self.embedding(np.rint(ids).astype(np.int64))
        return super().forward(vectors, hx, lengths, return_state=return_state)

    def backward(self, dout):
        dvectors = super().backward(dout)
        self.embedding.backward(dvectors)
        return None

