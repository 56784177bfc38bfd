"""The generator a scenario hook draws an episode from, made ~4x faster than NumPy makes it.

``episode_generator(seed)`` equals ``np.random.default_rng(np.random.SeedSequence([seed mod 2**64,
0xD1E]))`` bit for bit (tests compare the two over thousands of seeds): NumPy's ``SeedSequence``
hash, compiled, then the PCG64 seeding step, written into a generator kept per thread. Building
the ``SeedSequence`` in Python cost ~15 us, a third of an episode's construction, paid on every
reset and autoreset. The generator is reused by the next episode built in the same thread, so a
hook must not keep it.
"""

from __future__ import annotations

import threading

import numpy as np

from dime_gym.core._jit import kernel

EPISODE_STREAM = 0xD1E  # the second entropy word: episode generators are their own stream

# numpy/random/bit_generator.pyx (SeedSequence) and pcg64.h (pcg_setseq_128_srandom_r)
_M32 = np.uint64(0xFFFFFFFF)
_XSHIFT = np.uint64(16)
_INIT_A, _MULT_A = np.uint64(0x43B0D7E5), np.uint64(0x931E8875)
_INIT_B, _MULT_B = np.uint64(0x8B51F9DD), np.uint64(0x58F38DED)
_MIX_L, _MIX_R = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)
_SHIFT32 = np.uint64(32)
_POOL_SIZE = 4
_PCG_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
_M128 = (1 << 128) - 1


@kernel
def _hashmix(value, hash_const):
    value = (value ^ hash_const[0]) & _M32
    hash_const[0] = (hash_const[0] * _MULT_A) & _M32
    value = (value * hash_const[0]) & _M32
    return value ^ (value >> _XSHIFT)


@kernel
def _mix(x, y):
    result = (_MIX_L * x - _MIX_R * y) & _M32
    return result ^ (result >> _XSHIFT)


@kernel
def _seed_words(seed):
    """The four uint64 words ``SeedSequence([seed, EPISODE_STREAM]).generate_state(4, uint64)``
    for a uint64 ``seed``."""
    entropy = np.zeros(3, dtype=np.uint64)
    n = 0
    low, high = seed & _M32, seed >> _SHIFT32
    entropy[n] = low  # a uint64 is one uint32 word, or two when it needs them; 0 is one word
    n += 1
    if high != 0:
        entropy[n] = high
        n += 1
    entropy[n] = np.uint64(EPISODE_STREAM)
    n += 1
    hash_const = np.empty(1, dtype=np.uint64)
    hash_const[0] = _INIT_A
    pool = np.zeros(_POOL_SIZE, dtype=np.uint64)
    for i in range(_POOL_SIZE):  # the entropy (at most 3 words) fits in the pool
        pool[i] = _hashmix(entropy[i] if i < n else np.uint64(0), hash_const)
    for i_src in range(_POOL_SIZE):
        for i_dst in range(_POOL_SIZE):
            if i_src != i_dst:
                pool[i_dst] = _mix(pool[i_dst], _hashmix(pool[i_src], hash_const))
    h = _INIT_B
    words = np.empty(2 * _POOL_SIZE, dtype=np.uint64)
    for i in range(2 * _POOL_SIZE):
        value = (pool[i % _POOL_SIZE] ^ h) & _M32
        h = (h * _MULT_B) & _M32
        value = (value * h) & _M32
        words[i] = value ^ (value >> _XSHIFT)
    return (words[0] | (words[1] << _SHIFT32), words[2] | (words[3] << _SHIFT32),
            words[4] | (words[5] << _SHIFT32), words[6] | (words[7] << _SHIFT32))


_per_thread = threading.local()


def episode_generator(seed: int) -> np.random.Generator:
    """``np.random.default_rng(np.random.SeedSequence([seed mod 2**64, EPISODE_STREAM]))``,
    as this thread's reused generator (valid until the next call in the thread)."""
    w0, w1, w2, w3 = _seed_words(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF))
    initstate = (int(w0) << 64) | int(w1)
    inc = ((((int(w2) << 64) | int(w3)) << 1) | 1) & _M128
    state = ((inc + initstate) * _PCG_MULTIPLIER + inc) & _M128  # srandom_r: two steps from state 0
    generator = getattr(_per_thread, "generator", None)
    if generator is None:
        generator = _per_thread.generator = np.random.Generator(np.random.PCG64(0))
    generator.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                                     "has_uint32": 0, "uinteger": 0}
    return generator
