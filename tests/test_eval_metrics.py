"""dime-eval's fixed definitions: the success rule, the DIME index, intervals and tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dime_gym.scenarios import TASK_IDS
from dime_trainer.evaluation import stats
from dime_trainer.evaluation.episodes import ACTION_COUNT_KEYS, is_success
from dime_trainer.evaluation.summary import compare, summarize


@pytest.mark.parametrize(
    ("availability", "goodput", "slo", "cost", "expected"),
    [
        (1.0, 0.95, 0.95, 0.1, True),  # a clean save
        (0.90, 0.80, 0.80, 0.5, True),  # every threshold met exactly
        (0.95, 0.95, 0.95, 0.1, True),  # a deliberate database restart (2 of 40 steps) is no failure
        (0.89, 0.95, 0.95, 0.1, False),  # the database was down longer than a prompt recovery takes
        (1.0, 0.79, 0.95, 0.1, False),  # too much traffic shed or failed
        (1.0, 0.95, 0.79, 0.1, False),  # p99 over the SLO too often
        (1.0, 0.95, 0.95, 0.51, False),  # bought with spam (scale-ups, restarts)
    ],
)
def test_success_rule__table(availability, goodput, slo, cost, expected):
    assert is_success(availability, goodput, slo, cost) is expected


def fake_episode(task: str, seed: int, score: float, success: bool) -> dict:
    return {"task": task, "seed": seed, "score": score, "success": success, "steps": 40, "return": 0.0,
            "actions": dict.fromkeys(ACTION_COUNT_KEYS, 0), "db_downtime_steps": 0, "db_availability": 1.0,
            "slo_attainment": 1.0, "served_fraction": 1.0, "goodput": 1.0, "resource_cost": 0.0, "invalid_rate": 0.0,
            "unparsable_rate": 0.0, "backend_error_rate": 0.0}


def test_dime_index__is_the_fixed_formula_over_all_14_tasks():
    eps = [fake_episode(t, s, score=0.1 * (i % 10), success=(s == 0)) for i, t in enumerate(TASK_IDS) for s in range(4)]
    overall = summarize(eps, run={"name": "x"})["overall"]
    expected = 100 * np.mean([0.5 * 0.1 * (i % 10) + 0.5 * 0.25 for i in range(14)])
    assert overall["complete"] and overall["dime_index"] == pytest.approx(expected)
    assert overall["mean_task_score"] == pytest.approx(np.mean([0.1 * (i % 10) for i in range(14)]))
    assert overall["success_rate"] == pytest.approx(0.25)


def test_dime_index__undefined_without_all_tasks_and_unaffected_by_seed_counts():
    eps = [fake_episode("retry_storm", s, 0.5, True) for s in range(10)] + [fake_episode("zombie_node", 0, 0.1, False)]
    overall = summarize(eps, run={})["overall"]
    assert overall["dime_index"] is None and not overall["complete"]
    # each task weighs the same (10 seeds vs 1): 100 x mean(0.5 x 0.5 + 0.5 x 1, 0.5 x 0.1 + 0.5 x 0)
    assert overall["dime_index_partial"] == pytest.approx(100 * (0.75 + 0.05) / 2)


def test_summarize__keeps_the_first_record_of_a_duplicated_episode():
    eps = [fake_episode("retry_storm", 0, 0.5, True), fake_episode("retry_storm", 0, 0.9, True)]
    assert summarize(eps, run={})["tasks"]["retry_storm"]["scores"] == [0.5]


# Student-t 0.975 quantiles: scipy.stats.t.ppf(0.975, df), written out (scipy is no dependency).
# Non-integer degrees of freedom come from Welch's formula.
T975_TABLE = {
    0.5: 164.557673480488, 1: 12.706204736174694, 1.5: 6.016663104427929, 2: 4.302652729749462,
    2.5: 3.5746548420036817, 3.7: 2.8675207071911895, 5: 2.5705818356363146, 17: 2.1098155778333156,
    30: 2.0422724563012378, 31: 2.039513446396408, 50: 2.008559112100761, 99: 1.9842169515864174,
    1000: 1.9623390808264083, 1e5: 1.9599877075346095, 1e7: 1.959964221767205,
}


@pytest.mark.parametrize("df, quantile", sorted(T975_TABLE.items()))
def test_t975__matches_scipy_for_integer_and_fractional_df(df, quantile):
    assert stats.t975(df) == pytest.approx(quantile, rel=1e-9)


def test_t975__is_nan_without_degrees_of_freedom():
    assert math.isnan(stats.t975(0)) and math.isnan(stats.t975(-1.0)) and math.isnan(stats.t975(math.nan))


def test_mean_ci__student_t_half_width():
    mean, half = stats.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302652729749462 * 1.0 / math.sqrt(3))


def test_one_value__has_no_interval():
    mean, half = stats.mean_ci([0.4])
    assert mean == 0.4 and math.isnan(half) and math.isnan(stats.standard_error([0.4]))
    assert math.isnan(stats.welch_ci([0.4], [0.1, 0.3])) and stats.welch_ci([0.2, 0.2], [0.5, 0.5]) == 0.0


def test_welch_ci__uses_the_fractional_degrees_of_freedom():
    # Welch df = 1.699; the half-width of scipy.stats.ttest_ind(b, a, equal_var=False)'s 95 % interval
    assert stats.welch_ci([0.0, 0.5], [0.1, 0.3, 0.5, 0.7, 0.9]) == pytest.approx(1.4713974063465787, rel=1e-9)


def test_wilson__known_values():
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = stats.wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-3), pytest.approx(0.7634, abs=1e-3))


def test_paired_permutation__exact_for_few_pairs():
    # 4 positive differences: only the all-plus and all-minus sign patterns are as extreme -> 2/16
    assert stats.paired_permutation_p([[0.1, 0.2, 0.3, 0.4]]) == pytest.approx(2 / 16)
    assert stats.paired_permutation_p([[0.0, 0.0]]) == 1.0


def test_sign_flip_test__memory_stays_bounded_for_many_pairs():
    import tracemalloc

    diffs = np.random.default_rng(1).normal(0.0, 0.1, 3000)
    tracemalloc.start()
    try:
        p = stats.paired_permutation_p([diffs[:1500], diffs[1500:]])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.0 < p <= 1.0
    assert peak < 64 * 2**20  # a 20,000 x 3,000 float64 sign matrix alone would take 480 MB


def test_permutation_tests__separate_shift_from_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 40)
    assert stats.paired_permutation_p([a * 0 + 0.05 + rng.normal(0, 0.02, 40)]) < 0.001
    assert stats.paired_permutation_p([rng.normal(0, 0.1, 40)]) > 0.01
    assert stats.unpaired_permutation_p([(a, a + 0.1)]) < 0.001
    assert stats.unpaired_permutation_p([(a, rng.normal(0.5, 0.1, 40))]) > 0.01


def test_holm__adjusts_in_order():
    assert stats.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)


def test_compare__unpaired_when_seeds_differ():
    a = summarize([fake_episode("retry_storm", s, 0.2 + 0.01 * s, False) for s in range(10)], run={"name": "a"})
    b = summarize([fake_episode("retry_storm", 100 + s, 0.6 + 0.01 * s, False) for s in range(10)], run={"name": "b"})
    result = compare(a, b)
    row = result["tasks"]["retry_storm"]
    assert not row["paired"] and row["diff"] == pytest.approx(0.4) and row["p"] < 0.001
    assert any("seeds differ" in w for w in result["warnings"])


def test_compare__one_shared_seed_is_not_a_pairing():
    a = summarize([fake_episode("retry_storm", s, 0.2, False) for s in (0, 1, 2)], run={"name": "a"})
    b = summarize([fake_episode("retry_storm", s, 0.6, False) for s in (2, 3)], run={"name": "b"})
    row = compare(a, b)["tasks"]["retry_storm"]
    assert not row["paired"] and (row["n_a"], row["n_b"]) == (3, 2) and row["diff"] == pytest.approx(0.4)


def test_compare__the_overall_test_uses_the_same_episodes_as_the_rows():
    # retry_storm is paired on seeds 0-9; run A's extra seeds 10-19 (far lower) are left out of
    # its row, so they must stay out of the overall test too. zombie_node is unpaired.
    a_eps = [fake_episode("retry_storm", s, 0.5 + 0.01 * (s % 3), False) for s in range(10)]
    a_eps += [fake_episode("retry_storm", s, 0.0, False) for s in range(10, 20)]
    a_eps += [fake_episode("zombie_node", s, 0.3 + 0.02 * (s % 4), False) for s in range(8)]
    b_eps = [fake_episode("retry_storm", s, 0.52 + 0.01 * (s % 4), False) for s in range(10)]
    b_eps += [fake_episode("zombie_node", 100 + s, 0.31 + 0.02 * (s % 3), False) for s in range(8)]
    result = compare(summarize(a_eps, run={"name": "a"}), summarize(b_eps, run={"name": "b"}))
    rows, overall = result["tasks"], result["overall"]
    assert rows["retry_storm"]["paired"] and rows["retry_storm"]["n_a"] == 10 and not rows["zombie_node"]["paired"]
    zombie = ([0.3 + 0.02 * (s % 4) for s in range(8)], [0.31 + 0.02 * (s % 3) for s in range(8)])
    retry = ([0.5 + 0.01 * (s % 3) for s in range(10)], [0.52 + 0.01 * (s % 4) for s in range(10)])  # seeds 0-9 only
    expected = stats.unpaired_permutation_p([zombie, retry])  # in TASK_IDS order, as the random stream is shared
    assert not overall["paired"] and overall["p"] == pytest.approx(expected)
    assert overall["diff"] == pytest.approx((rows["retry_storm"]["diff"] + rows["zombie_node"]["diff"]) / 2)
    assert overall["p"] > 0.01  # with seeds 10-19 (score 0) counted, A would look far worse and p tiny
