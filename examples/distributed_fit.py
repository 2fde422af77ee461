"""Data-parallel training of the sunspot forecaster over MPI.

    pip install "lstm_core[mpi]"
    mpiexec -n 2 python examples/distributed_fit.py [--out DIR]

Every rank loads the same data and builds the same model; lc.fit(..., comm=MPI.COMM_WORLD)
splits each batch of 16 windows between the ranks, sums their gradients with one Allreduce and
makes the same update on every rank, so the model equals a one-process run on the same batches
(to round-off).  Rank 0 prints the epochs and the test error and writes the model.
"""

import argparse
import os

import numpy as np
from mpi4py import MPI

import lstm_core as lc
from lstm_core.demos.timeseries import Scaler, load_sunspots, make_windows, rmse, split_by_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="lstm_core-output", help="folder for the model file")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD

    years, values = load_sunspots()
    train, val, test = split_by_time(len(values) - 12)
    scaler = Scaler(values[: train.stop + 12])
    x, targets = make_windows(scaler.transform(values), 12)       # (N, 12), (N,)
    x, targets = x[:, :, None].astype(np.float32), targets[:, None].astype(np.float32)

    model = lc.SequenceModel(lc.LSTM(1, 24, batch_first=True, seed=0, unit_forget_bias=True),
                             lc.Linear(24, 1, seed=1))
    history = lc.fit(model, x[train], targets[train], epochs=args.epochs, batch_size=16,
                     optimizer=lc.Adam(model.params, lr=0.01), clip_norm=1.0, seed=0,
                     validation_data=(x[val], targets[val]), patience=15,
                     progress="plain", comm=comm)             # progress lines on rank 0 only
    forecast = lc.predict(model, x[test], comm=comm)          # sharded, whole on every rank
    error = rmse(scaler.inverse(forecast[:, 0]), scaler.inverse(targets[test, 0]))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sunspots_distributed.npz")
    lc.save_model(model, path, comm=comm)                     # written once, by rank 0
    if comm.rank == 0:
        print(f"{comm.size} ranks: {len(history['loss'])} epochs (best {history.best_epoch}), "
              f"test RMSE {error:.1f} sunspots; model written to {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
