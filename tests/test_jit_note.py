"""The one-time "compiling DIME kernels (first run only)" note on stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import numba

from dime_gym.core import _jit

PROBE = ("import numpy as np; from dime_gym.core.rng import next_uniform; "
         "next_uniform(np.array([1, 2], dtype=np.uint64), 0); next_uniform(np.array([3, 4], dtype=np.uint64), 1)")


def _run(cache_dir) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), DIME_NUMBA_CACHE="1")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300, check=True)
    return done.stderr


def test_jit_note__printed_once_on_a_cold_cache_and_never_on_a_warm_one(tmp_path):
    cold = _run(tmp_path)
    assert cold.count("compiling DIME kernels (first run only") == 1
    assert _run(tmp_path) == ""  # loaded from the cache: nothing compiled, nothing printed


def test_jit_note__ignores_kernels_outside_dime(capsys, monkeypatch):
    monkeypatch.setattr(_jit.FIRST_COMPILE_NOTE, "shown", False)

    def outside(x):
        return x + 1

    outside.__module__ = "someone_else"
    numba.njit(outside)(1)
    assert capsys.readouterr().err == ""

    def inside(x):
        return x + 2

    inside.__module__ = "dime_gym.core.probe"
    numba.njit(inside)(1)
    numba.njit(inside)(2.0)
    assert capsys.readouterr().err == _jit.COMPILE_NOTE + "\n"
