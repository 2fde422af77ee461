#!/usr/bin/env bash
# Build tests/c/test_lstm.c against the C sources of src/ alone (no Python) and run it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
src="$top/src"
gcc -std=c99 -O2 -Wall -Wextra -Werror -Wno-unused-function -Wno-psabi -pthread \
    -I"$src/include" -I"$src/kernels" -I"$src/gemm" -I"$src/threads" \
    "$top/tests/c/test_lstm.c" "$src/kernels/lstm_kernels.c" "$src/kernels/lstm_plan.c" \
    "$src/kernels/lstm_plain.c" "$src/threads/lstm_runner.c" -lm -o "$out/test_lstm"
"$out/test_lstm"
