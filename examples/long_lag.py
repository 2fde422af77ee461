"""The long-lag experiments: adding problem (T = 50, 100, 200) and copy memory, LSTM vs GRU
vs vanilla RNN with the same parameter budget and seeds.

    python examples/long_lag.py                       # ~10 minutes on one core
    python examples/long_lag.py --out examples/results/long_lag   # the committed results
    python examples/long_lag.py --quick               # a smoke test

The same as `python -m lstm_core experiments`; the code lives in lstm_core/demos/long_lag.py.
"""

import sys

from lstm_core.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["experiments"] + sys.argv[1:]))
