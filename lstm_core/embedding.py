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

from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from lstm_core._typing import FloatArray
from lstm_core.layers import (Linear, Module, RecurrentStack, SequenceModel, _positive_int,
                              float_dtype)

if TYPE_CHECKING:
    from lstm_core.heads import Sequential

_EXACT_FLOAT32_IDS = 2 ** 24


class Embedding(Module):
    """A lookup table: row k of weight (num_embeddings, embedding_dim) is token k's vector.

    Initialised N(0, 1) like torch.nn.Embedding.  Ids must be integers in
    [0, num_embeddings).

    Parameters
    ----------
    num_embeddings : int
        The vocabulary size.
    embedding_dim : int
        The size of each vector.
    padding_idx : int, optional
        That row starts at zero and gets no gradient, so padding never moves.
    dtype : dtype, default np.float32
        float32 or float64.
    seed : int, optional
        Seed of the initialisation.

    Raises
    ------
    TypeError
        For sizes that are not ints, or another dtype.
    ValueError
        For sizes below 1 or a padding_idx out of range.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *,
                 padding_idx: int | None = None, dtype: DTypeLike = np.float32,
                 seed: int | None = None) -> None:
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim")
        if padding_idx is not None and not 0 <= padding_idx < self.num_embeddings:
            raise ValueError(f"padding_idx must lie in [0, {self.num_embeddings}), "
                             f"got {padding_idx}")
        self.padding_idx = padding_idx
        self.dtype = float_dtype(dtype)
        self.training = True
        self._ids: NDArray[np.integer[Any]] | None = None
        rng = np.random.default_rng(seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.params = {"weight": weight}
        self.grads = {"weight": np.zeros_like(weight)}

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "dtype": self.dtype.name}

    def __call__(self, ids: ArrayLike) -> FloatArray:
        """The same as forward(ids)."""
        return self.forward(ids)

    def forward(self, ids: ArrayLike) -> FloatArray:
        """The vectors of ids; ids are kept for backward.

        Parameters
        ----------
        ids : array_like of int, shape (...)
            Token ids in [0, num_embeddings).

        Returns
        -------
        ndarray, shape (..., embedding_dim)
            A new array (rows copied).

        Raises
        ------
        TypeError
            For ids that are not integers.
        ValueError
            For ids out of range.
        """
        id_array = np.asarray(ids)
        if id_array.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {id_array.dtype}")
        if id_array.size and (id_array.min() < 0 or id_array.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), "
                             f"got {id_array.min()}..{id_array.max()}")
        self._ids = id_array
        vectors: FloatArray = self.params["weight"][id_array]
        return vectors

    def backward(self, dvectors: ArrayLike) -> None:
        """ADDS dL/dweight into grads["weight"].

        Every occurrence of a token adds its row of dvectors (np.add.at, so repeated ids
        accumulate instead of overwriting); the padding row gets nothing.

        Parameters
        ----------
        dvectors : array_like, shape (..., embedding_dim)
            dL/d(vectors) of the last forward.

        Raises
        ------
        RuntimeError
            When there was no forward.
        ValueError
            For dvectors of the wrong shape.
        """
        if self._ids is None:
            raise RuntimeError("backward needs a forward first")
        grad = np.asarray(dvectors, dtype=self.dtype)
        expected = self._ids.shape + (self.embedding_dim,)
        if grad.shape != expected:
            raise ValueError(f"dvectors must have shape {expected}, got {grad.shape}")
        ids = self._ids.reshape(-1)
        rows = grad.reshape(-1, self.embedding_dim)
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

    Parameters
    ----------
    embedding : Embedding
        Its embedding_dim and dtype must be the LSTM's input_size and dtype.
    lstm : LSTM, GRU or RNN
        A batch_first recurrent stack.
    head : Linear, optional
        As SequenceModel's.
    output : {'last', 'all'}, default 'last'
        As SequenceModel's.

    Raises
    ------
    TypeError
        For an embedding of another class (and as SequenceModel).
    ValueError
        For a stack that is not batch_first, mismatched sizes or dtypes, or more than
        2**24 tokens.
    """

    def __init__(self, embedding: Embedding, lstm: RecurrentStack,
                 head: "Linear | Sequential | None" = None,
                 *, output: str = "last") -> None:
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

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what save_model writes).

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal, freshly initialised layer.
        """
        return dict(super().config(), embedding=self.embedding.config())

    def forward(self, x: ArrayLike, hx: Any = None, lengths: ArrayLike | None = None, *,
                return_state: bool = False) -> Any:
        """The model's output for token ids.

        Parameters
        ----------
        x : array_like, shape (N, T, 1)
            Token ids stored as floats.
        hx : optional
            The stack's initial state, as SequenceModel.forward takes it.
        lengths : array_like of int, shape (N,), optional
            Each text's number of tokens.
        return_state : bool, default False
            Also return the stack's final state.

        Returns
        -------
        out : ndarray
            The model's output, as SequenceModel.forward's.
        state : tuple of ndarray or ndarray
            Only with return_state=True.

        Raises
        ------
        ValueError
            For x not of shape (N, T, 1).
        """
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != 1:
            raise ValueError(f"x must hold token ids as (N, T, 1), got shape {x.shape}")
        ids = x[:, :, 0]
        if self.output == "last" and lengths is not None and len(lengths):  # type: ignore[arg-type]
            ids = ids[:, :max(int(np.max(lengths)), 1)]
        vectors = self.embedding(np.rint(ids).astype(np.int64))
        return super().forward(vectors, hx, lengths, return_state=return_state)

    def backward(self, dout: ArrayLike) -> None:
        """Backpropagate dL/d(output) down to the embedding; ADDS into self.grads.

        Parameters
        ----------
        dout : array_like
            dL/d(output), shaped like the last forward's output.
        """
        dvectors = cast(FloatArray, super().backward(dout))  # the stack's dx
        self.embedding.backward(dvectors)
        return None

