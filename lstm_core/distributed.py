"""Data-parallel scale-out over MPI (mpi4py): how the ranks of lc.fit(..., comm=) and
lc.predict(..., comm=) share the work and agree.  mpi4py is imported only through a
communicator the caller made, never by ``import lstm_core`` (pip install "lstm_core[mpi]").

Every rank holds the same model and the same data arguments.  Each global batch of fit is
split into contiguous shards, one per rank (uneven when the batch does not divide); a rank
runs forward and backward on its shard only, scales its gradient by its share of the batch's
counted targets, and one Allreduce over a single flat buffer sums the scaled gradients: the
update is the one-process update on the whole batch, to round-off.  Rank 0's parameters are
broadcast at the start, after the ranks have compared a digest of the model's configuration,
parameter shapes and the run's settings.  Before each Allreduce the ranks exchange one status
flag, so an exception on any rank (bad data, out of memory) ends the run on every rank with an
error naming it, instead of leaving the others waiting forever.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


class RankFailed(RuntimeError):
    """Another rank of a data-parallel run raised: this rank stops too."""


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError('comm= needs mpi4py and an MPI: pip install "lstm_core[mpi]" (or '
                          "pip install mpi4py against your cluster's MPI)") from error
    return MPI


class Ranks:
    """The communicator of a data-parallel call and what the ranks do together."""

    def __init__(self, comm: Any) -> None:
        MPI = _mpi()
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), got "
                            f"{type(comm).__name__}")
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def shard(self, index: NDArray[Any], rank: int | None = None) -> NDArray[Any]:
        """This rank's (or `rank`'s) contiguous share of the global batch `index`."""
        return np.array_split(index, self.size)[self.rank if rank is None else rank]

    def agree(self, description: Mapping[str, Any]) -> None:
        """ValueError on every rank unless all ranks describe the same model and run."""
        digest = hashlib.sha256(json.dumps(description, sort_keys=True,
                                           default=str).encode()).hexdigest()
        digests = self.comm.allgather(digest)
        if len(set(digests)) > 1:
            differing = [r for r, d in enumerate(digests) if d != digests[0]]
            raise ValueError(f"the ranks hold different models or settings: ranks {differing} "
                             "differ from rank 0 (model configuration, parameter shapes, "
                             "batch size, data size, loss or optimizer)")

    def broadcast(self, arrays: Mapping[str, NDArray[Any]]) -> None:
        """Rank 0's arrays into every rank's, in place."""
        for name in sorted(arrays):
            self.comm.Bcast(arrays[name], root=0)

    def check(self, error: BaseException | None, where: str,
              values: Sequence[float] = ()) -> list[float]:
        """A collective status check: if any rank's step raised, every rank raises
        (RankFailed on the others, naming the failing rank and its error); else the sums
        over the ranks of `values`, which ride along in the same reduction."""
        sums = self.sum([1.0 if error is not None else 0.0, *values])
        if not sums[0]:
            return sums[1:]
        messages = self.comm.allgather(None if error is None else
                                       f"{type(error).__name__}: {error}")
        first = next(r for r, m in enumerate(messages) if m is not None)
        if error is not None:
            raise error
        raise RankFailed(f"rank {first} of {self.size} failed {where}: {messages[first]}; "
                         f"rank {self.rank} stops too")

    def sum_gradients(self, grads: Mapping[str, NDArray[Any]], scale: float,
                      values: Sequence[float]) -> list[float]:
        """grads = the sum over the ranks of scale * grads, through one flat float64 buffer
        (one Allreduce), which also carries `values`; returns their sums."""
        names = sorted(grads)
        flat = np.concatenate([np.asarray(values, np.float64)]
                              + [grads[n].ravel().astype(np.float64) * scale for n in names])
        self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        offset = len(values)
        for n in names:
            size = grads[n].size
            grads[n][...] = flat[offset:offset + size].reshape(grads[n].shape)
            offset += size
        return [float(v) for v in flat[:len(values)]]

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of small lists of numbers over the ranks."""
        buffer = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return [float(v) for v in buffer]

    def from_root(self, value: Any) -> Any:
        """Rank 0's value (a small picklable object) on every rank."""
        return self.comm.bcast(value, root=0)

    def gather(self, part: NDArray[Any], axis: int) -> NDArray[Any]:
        """Every rank's part, concatenated along axis in rank order, on every rank: one
        Allgatherv of the parts' bytes with that axis first (the other axes agree)."""
        front = np.ascontiguousarray(np.moveaxis(part, axis, 0))
        counts = self.comm.allgather(front.shape[0])
        row = int(np.prod(front.shape[1:], dtype=np.int64))
        whole = np.empty((sum(counts), *front.shape[1:]), dtype=front.dtype)
        sizes = [c * row for c in counts]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        self.comm.Allgatherv(front.reshape(-1), [whole.reshape(-1), (sizes, offsets)])
        return np.moveaxis(whole, 0, axis)

    def barrier(self) -> None:
        self.comm.Barrier()
