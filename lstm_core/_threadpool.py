"""lstm_core's own threads under threadpoolctl.

``threadpoolctl.threadpool_info()`` lists lstm_core (user_api and internal_api "lstm_core")
and ``threadpool_limits(n)`` limits the threads of its time loops, as it does the BLAS's and
OpenMP's.  The controller reads and sets the count through two C functions that the
``lstm_core._threads`` extension exports (``lstm_core_get_num_threads``,
``lstm_core_set_num_threads``); threadpoolctl finds that extension among the loaded shared
libraries.  Registered when lstm_core is imported and threadpoolctl (>= 3, which takes
custom controllers) is installed; lstm_core does not depend on it.
"""

from __future__ import annotations

import importlib.metadata


def register() -> bool:
    """Register the controller with threadpoolctl; False when threadpoolctl is missing or
    too old to take custom controllers."""
    try:
        from threadpoolctl import LibController
        from threadpoolctl import register as register_controller
    except ImportError:
        return False

    class LstmCoreController(LibController):  # type: ignore[misc]
        """threadpoolctl's view of lstm_core's time-loop threads."""

        user_api = "lstm_core"
        internal_api = "lstm_core"
        filename_prefixes = ("_threads",)
        check_symbols = ("lstm_core_get_num_threads", "lstm_core_set_num_threads")

        def get_num_threads(self) -> int:
            return int(self.dynlib.lstm_core_get_num_threads())

        def set_num_threads(self, num_threads: int) -> None:
            self.dynlib.lstm_core_set_num_threads(int(num_threads))

        def get_version(self) -> str | None:
            try:
                return importlib.metadata.version("lstm_core")
            except importlib.metadata.PackageNotFoundError:
                return None

    register_controller(LstmCoreController)
    return True
