"""``benchmarks/benchutil.py``: interleaved rounds and the paired ratio the speed tables report."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from benchutil import interleaved, interleaved_samples, paired_ratio  # noqa: E402


def test_interleaved_samples__every_variant_once_per_round_order_reversed_every_other_round():
    calls = []
    variants = {name: (lambda name=name: calls.append(name) or len(calls)) for name in ("a", "b", "c")}
    samples = interleaved_samples(variants, rounds=3)
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert samples == {"a": [1, 6, 7], "b": [2, 5, 8], "c": [3, 4, 9]}
    assert interleaved({"x": lambda: 2.0}, rounds=3) == {"x": 2.0}


def test_paired_ratio__cancels_a_drift_that_moves_both_alike():
    # the machine slows down 3x over the run; the variant always takes twice the baseline's time
    drift = [1.0, 1.5, 2.0, 2.5, 3.0]
    samples = {"base": [1.0 * d for d in drift], "slow": [2.0 * d for d in drift]}
    assert paired_ratio(samples, "slow", "base") == pytest.approx((2.0, 2.0, 2.0))
    # the ratio of medians would agree here; with one odd round the paired median ignores it
    samples["slow"][0] = 20.0
    median, q1, q3 = paired_ratio(samples, "slow", "base")
    assert median == pytest.approx(2.0) and q1 == pytest.approx(2.0) and q3 == pytest.approx(2.0)


def test_paired_ratio__quartiles_of_the_per_round_ratios():
    samples = {"base": [1.0, 1.0, 1.0, 1.0, 1.0], "v": [1.0, 2.0, 3.0, 4.0, 5.0]}
    assert paired_ratio(samples, "v", "base") == pytest.approx((3.0, 2.0, 4.0))
    assert paired_ratio({"base": [2.0], "v": [1.0]}, "v", "base") == pytest.approx((0.5, 0.5, 0.5))
