"""One BLAS thread per rank: ranks already fill the cores, extra threads only contend.

Call `pin_blas_threads()` before numpy is first imported; BLAS reads these variables once, at load.
This module imports nothing heavy, so importing it first is safe.
"""

from __future__ import annotations

import os

BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads() -> None:
    """Set each BLAS thread-count variable to 1 unless the user set it."""
    for var in BLAS_VARS:
        os.environ.setdefault(var, "1")
