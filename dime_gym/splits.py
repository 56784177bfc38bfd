"""Seed splits, fixed by rule so that training data never overlaps an evaluation.

* ``PUBLIC_EVAL_SEEDS``: 0-99, the benchmark's public split (``dime-eval``'s default).
* ``HELDOUT_EVAL_SEEDS``: 1,000,000-1,000,099, a held-out split for final numbers. The rule
  is public (there is no secret), but no builder default ever draws from it.
* ``TRAIN_SEEDS``: from 10,000 up, the prompt-dataset builder's default source.
"""

from __future__ import annotations

PUBLIC_EVAL_SEEDS = range(0, 100)
HELDOUT_EVAL_SEEDS = range(1_000_000, 1_000_100)
TRAIN_SEED_START = 10_000


def train_seeds(n: int) -> range:
    """The first ``n`` training seeds (disjoint from both evaluation splits for n < 990,000)."""
    if not 0 < n < HELDOUT_EVAL_SEEDS.start - TRAIN_SEED_START:
        raise ValueError(f"n must be in 1..{HELDOUT_EVAL_SEEDS.start - TRAIN_SEED_START - 1}, got {n}")
    return range(TRAIN_SEED_START, TRAIN_SEED_START + n)


def overlaps_evaluation(seeds) -> list[int]:
    """The seeds of ``seeds`` that belong to an evaluation split (empty if none)."""
    return [s for s in seeds if s in PUBLIC_EVAL_SEEDS or s in HELDOUT_EVAL_SEEDS]
