"""A splitmix64 generator whose whole state is one ``uint64`` stored in the cluster state.

Each cluster carries two independent streams (dynamics, telemetry), so drawing telemetry
never perturbs the dynamics, and a snapshot of the state array replays exactly. Every
uint64 constant is written as ``np.uint64`` because Numba types ``x >> 30`` with a plain
int literal as int64 (arithmetic shift), which would silently change the stream.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from dime_gym.core._jit import kernel

STREAM_DYNAMICS = 0
STREAM_TELEMETRY = 1
N_STREAMS = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


@kernel
def mix64(z):
    """splitmix64's finaliser: a bijective scramble of a uint64."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@kernel
def next_bits(rng_state, stream):
    """Advance ``rng_state[stream]`` and return 64 random bits (a uint64)."""
    rng_state[stream] = rng_state[stream] + _GOLDEN
    return mix64(rng_state[stream])


@kernel
def next_uniform(rng_state, stream):
    """Advance ``rng_state[stream]`` and return a float64 uniform in [0, 1)."""
    return float(next_bits(rng_state, stream) >> _S11) * _INV_2_53


# Normal draws invert the normal CDF by linear interpolation in a table of its quantiles at the
# midpoints (i + 0.5) / NORMAL_TABLE_POINTS: one uniform and no transcendental call per draw
# (Box-Muller took a log, a cosine and a square root). Interpolation errs by < 1e-3 of a standard
# deviation out to 3 sigma and < 1e-7 between the quartiles; the outer half-cells clip the tails
# at the table's ends, +-3.67 (1 draw in 4,096 lands on one of them).
NORMAL_TABLE_POINTS = 4096
_STANDARD_NORMAL = NormalDist()
NORMAL_QUANTILES = np.array([_STANDARD_NORMAL.inv_cdf((i + 0.5) / NORMAL_TABLE_POINTS)
                             for i in range(NORMAL_TABLE_POINTS)])
NORMAL_QUANTILES.flags.writeable = False


@kernel
def next_normal(rng_state, stream):
    """Standard normal draw (one uniform through ``NORMAL_QUANTILES``, tails clipped at +-3.67)."""
    x = next_uniform(rng_state, stream) * NORMAL_TABLE_POINTS - 0.5
    x = min(NORMAL_TABLE_POINTS - 1.0, max(0.0, x))
    i = min(NORMAL_TABLE_POINTS - 2, int(x))
    below = NORMAL_QUANTILES[i]
    return below + (x - i) * (NORMAL_QUANTILES[i + 1] - below)


STREAM_SALT = 0x1234567  # stream k of a cluster starts at mix64(seed ^ (k + 1) * this)


@kernel
def write_seed_streams(rng_state, seed):
    """Set the ``(N_STREAMS,)`` stream states ``rng_state`` from a uint64 ``seed``."""
    for k in range(N_STREAMS):
        rng_state[k] = mix64(seed ^ np.uint64(STREAM_SALT * (k + 1)))


def as_uint64(seed: int) -> np.uint64:
    """Any Python integer as a uint64 (mod 2**64): how every DIME seed enters the kernels."""
    return np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)


def seed_streams(seed: int) -> np.ndarray:
    """The initial ``(N_STREAMS,)`` uint64 stream states for an integer seed (mod 2**64)."""
    streams = np.zeros(N_STREAMS, dtype=np.uint64)
    write_seed_streams(streams, as_uint64(seed))
    return streams
