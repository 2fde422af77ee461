"""The extension modules and their flags; all other metadata lives in pyproject.toml.

Environment switches:
  LSTM_CORE_DEBUG=1   debug build: -O0 -g, C asserts on, Cython bounds/None checks on
  LSTM_CORE_NATIVE=1  -march=native (fast on the build machine, not portable: never for wheels)
  LSTM_CORE_SANITIZE=1  the debug build plus AddressSanitizer and UndefinedBehaviorSanitizer
                      (any report aborts); run it with the sanitizer runtime preloaded, see
                      README "Reliability" and .ci/sanitize
"""

import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

SANITIZE = os.environ.get("LSTM_CORE_SANITIZE") == "1"
DEBUG = os.environ.get("LSTM_CORE_DEBUG") == "1" or SANITIZE
NATIVE = os.environ.get("LSTM_CORE_NATIVE") == "1"

# -O3 and no -ffast-math/-Ofast: fast-math links a constructor that flushes denormals for
# the whole process and lets the compiler break the sigmoid's infinity handling.
# -g0 overrides CPython's own -g (it triples the size of the module).
# -fno-trapping-math lets gcc evaluate both sides of the selects in the activations, so the
# pointwise loops vectorise; it changes no result (it only drops floating-point exception
# flags, which nothing here reads).  -std=c99 also keeps a*b+c from being fused into an FMA,
# so every vector width gives the same bits.
compile_args = ["-std=c99", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unused-function"]
if DEBUG:
    compile_args += ["-O0", "-g", "-UNDEBUG"]
    macros = []
else:
    compile_args += ["-O3", "-g0"]
    macros = [("NDEBUG", "1")]
if NATIVE:
    compile_args += ["-march=native"]
link_args = ["-pthread"]
if SANITIZE:
    # -fno-sanitize-recover: a UBSan finding aborts like an ASan one, so no report goes unseen.
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer"]
    compile_args += sanitize
    link_args += sanitize

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

def extension(name, sources):
    """One extension module: every module gets the same headers, macros and flags."""
    return Extension(
        name,
        sources=sources,
        include_dirs=SRC_PARTS + [np.get_include()],
        depends=DEPENDS,
        define_macros=macros + [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )


# src/ in its parts: the C contract, the kernels, the packed products, the threads.
SRC_PARTS = ["src/include", "src/kernels", "src/gemm", "src/threads"]
# Every module depends on every C header and template (a change rebuilds what includes it).
DEPENDS = sorted(glob.glob("src/*/*.h") + glob.glob("src/*/*.inc")
                 + glob.glob("lstm_core/*.pxd"))

extensions = [
    extension("lstm_core._boundary", ["lstm_core/_boundary.pyx"]),
    extension("lstm_core._threads", ["lstm_core/_threads.pyx", "src/threads/lstm_runner.c"]),
    extension("lstm_core._testing", ["lstm_core/_testing.pyx", "src/kernels/lstm_plan.c",
                                     "src/threads/lstm_runner.c"]),
    extension("lstm_core._lstm", ["lstm_core/_lstm.pyx", "src/kernels/lstm_plan.c",
                                  "src/kernels/lstm_kernels.c", "src/threads/lstm_runner.c"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
