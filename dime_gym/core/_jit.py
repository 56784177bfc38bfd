"""The one place that sets Numba's jit flags for every DIME kernel.

``cache=True`` makes a fresh process start in ~0.2 s instead of several seconds of
compilation. Numba's cache keys on the source of the file that defines a kernel, not on
helpers imported from other files, so every kernel that calls another module's helpers is
recompiled together with them by clearing ``__pycache__`` (see README, "Development").
``fastmath`` is off so that results are bit-exact across the single and batched paths.
Set ``DIME_NUMBA_CACHE=0`` to disable the on-disk cache.
"""

from __future__ import annotations

import os

import numba

CACHE = os.environ.get("DIME_NUMBA_CACHE", "1") != "0"

JIT_FLAGS = {"cache": CACHE, "fastmath": False, "error_model": "numpy", "nogil": True}


def kernel(fn):
    """Compile ``fn`` with DIME's jit flags (``numba.njit``)."""
    return numba.njit(**JIT_FLAGS)(fn)


def parallel_kernel(fn):
    """Compile ``fn`` as a ``prange``-parallel kernel with DIME's jit flags."""
    return numba.njit(parallel=True, **JIT_FLAGS)(fn)
