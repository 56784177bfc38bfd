"""Batched kernels: the batch equals the single env bit for bit (every task, random actions,
unparsable rows), the observation and score kernels equal their NumPy twins, the fast latency
quantile equals the bisection it replaced, and batched input validation names the culprit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference as ref
from dime_gym import TASK_IDS
from dime_gym.core.actions import ACTION_NVEC, UNPARSABLE
from dime_gym.core.batch import BatchOutputs, advance_batch, first_invalid_action, step_batch
from dime_gym.core.grading import episode_score
from dime_gym.core.latency import (
    LOG_INVERSE_P99_TARGET,
    MIXTURE_ROWS,
    N_CLASSES,
    PROOF_MARGIN_ABSOLUTE,
    QUANTILE_STEP_MS,
    _tail_and_slopes,
    class_tail,
    group_classes,
    mixture_quantile,
    mixture_tail,
)
from dime_gym.core.observe import write_observation
from dime_gym.core.params import default_params, validate_params
from dime_gym.core.state import LATENCY_CAP_MS, empty_batch
from dime_gym.actions import validate_action_batch
from dime_gym.env import UNPARSABLE_ANSWER, DimeEnv
from dime_gym.observation import allocate_single_buffers, observation_from_buffers
from dime_gym.scenarios import get_task
from dime_gym.scenarios.graders import GRADER_WEIGHTS, grade_components


def _random_actions(rng: np.random.Generator, n: int, unparsable_fraction: float = 0.15) -> np.ndarray:
    """(n, 4) actions: uniform over the space, many no-ops, some UNPARSABLE rows."""
    a = rng.integers(0, ACTION_NVEC, size=(n, 4))
    a[rng.random(n) < 0.3, 0] = 0
    a[rng.random(n) < unparsable_fraction, 0] = UNPARSABLE
    return a


def _single_action(row: np.ndarray):
    return UNPARSABLE_ANSWER if row[0] == UNPARSABLE else row


# --- batched == single ---------------------------------------------------------------------------------
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "prange"])
def test_batch__every_task_matches_single_env_bit_for_bit(parallel):
    tasks = [t for t in TASK_IDS for _ in range(2)]  # mixed tasks in one batch, two seeds each
    n = len(tasks)
    envs = [DimeEnv(task=t, with_oracle=False) for t in tasks]
    params, states = empty_batch(n)
    for b, env in enumerate(envs):
        obs, _ = env.reset(seed=1000 + b)
        params[b] = env.episode.params
        states[b] = env.episode.state
    step_limit = params["episode_steps"].copy()
    rng = np.random.default_rng(7)
    active = np.ones(n, dtype=np.bool_)
    for _ in range(int(step_limit.max())):
        actions = _random_actions(rng, n)
        out = BatchOutputs.allocate(n)
        advance_batch(params, states, actions, active, step_limit, out, parallel=parallel)
        batch_obs = observation_from_buffers(out.node_obs, out.flag_obs, out.scalar_obs, out.step_obs)
        for b in np.flatnonzero(active):
            obs, reward, _, truncated, info = envs[b].step(_single_action(actions[b]))
            assert states[b].tobytes() == envs[b].state_record.tobytes(), (tasks[b], b)
            assert reward == out.rewards[b]
            assert truncated == out.truncated[b]
            assert info["score"] == out.scores[b]
            assert list(info["reward_components"].values()) == out.reward_components[:, b].tolist()
            for key, value in obs.items():
                np.testing.assert_array_equal(batch_obs[key][b], value, err_msg=key)
        active &= ~out.truncated
    assert not active.any()


def test_batch__step_batch_serial_and_prange_agree_and_unstepped_rows_stay():
    params, states = empty_batch(96)
    env = DimeEnv(task="retry_storm", with_oracle=False)
    for b in range(96):
        env.reset(seed=b)
        params[b] = env.episode.params
        states[b] = env.episode.state
    serial, parallel = states.copy(), states.copy()
    rng = np.random.default_rng(3)
    for _ in range(10):
        actions = _random_actions(rng, 96)
        step_batch(params, serial, actions, parallel=False)
        step_batch(params, parallel, actions, parallel=True)
    assert serial.tobytes() == parallel.tobytes()
    # observe-only rows (stepping False) are left untouched and report reward 0
    before = serial.copy()
    stepping = np.zeros(96, dtype=np.bool_)
    stepping[::2] = True
    out = BatchOutputs.allocate(96)
    advance_batch(params, serial, _random_actions(rng, 96), stepping, params["episode_steps"].copy(), out)
    assert serial[1::2].tobytes() == before[1::2].tobytes()
    assert serial[::2].tobytes() != before[::2].tobytes()
    assert np.all(out.rewards[1::2] == 0.0) and not out.truncated[1::2].any()


# --- observation and score kernels vs their NumPy twins -----------------------------------------------
def _reachable_states(tasks=TASK_IDS, seeds=(0, 1), steps=25):
    rng = np.random.default_rng(11)
    for task in tasks:
        for seed in seeds:
            env = DimeEnv(task=task, with_oracle=False)
            env.reset(seed=seed)
            yield env.state_record
            for a in _random_actions(rng, steps, unparsable_fraction=0.0):
                env.step(a)
                yield env.state_record


def test_observe__kernel_matches_build_observation_on_reachable_states():
    n_dropped = 0
    for s in _reachable_states():
        buffers = allocate_single_buffers()
        write_observation(s, buffers[0], buffers[1], buffers[2][:, 0], buffers[3])
        fast = observation_from_buffers(*buffers)
        slow = ref.build_observation(s)
        assert list(fast) == list(slow)
        for key in slow:
            assert fast[key].dtype == slow[key].dtype and fast[key].shape == slow[key].shape, key
            np.testing.assert_array_equal(fast[key], slow[key], err_msg=key)
        n_dropped += int(np.any(slow["cpu_loads"] == -1.0))
    assert n_dropped > 0  # dropout was exercised


def test_grading__kernel_score_equals_the_documented_formula_of_the_components():
    w = GRADER_WEIGHTS
    scores = []
    for s in _reachable_states(seeds=(2,), steps=40):
        c = {k: float(v) for k, v in grade_components(s).items()}
        expected = c["goodput"] * (w["base"] + w["availability"] * c["availability"] + w["slo"] * c["slo_attainment"])
        expected = min(1.0, max(0.0, expected * (1.0 - w["resource"] * c["resource_cost"])))
        scores.append(episode_score(s))
        assert scores[-1] == expected
    assert len(set(scores)) > 20  # not a constant


# --- latency quantile ---------------------------------------------------------------------------------
@st.composite
def mixtures(draw):
    n = draw(st.integers(1, N_CLASSES))
    shares = draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n))
    waits = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1.2 * LATENCY_CAP_MS), st.floats(0.0, 50.0)),
                          min_size=n, max_size=n))
    means = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.1, 5000.0), st.floats(0.1, 30.0)), min_size=n, max_size=n))
    share = np.zeros(N_CLASSES)
    wait = np.zeros(N_CLASSES)
    mean = np.zeros(N_CLASSES)
    share[:n] = np.array(shares) / sum(shares)
    wait[:n] = waits
    mean[:n] = means
    return share, wait, mean


@given(mix=mixtures(), q=st.sampled_from([0.5, 0.9, 0.99, 0.999]))
def test_latency__fast_quantile_equals_the_bisection_it_replaced(mix, q):
    share, wait, mean = mix
    got = mixture_quantile(q, share, wait, mean, N_CLASSES)
    assert got == ref.mixture_quantile_by_bisection(q, share.tolist(), wait.tolist(), mean.tolist(), LATENCY_CAP_MS)
    assert got == LATENCY_CAP_MS or (got / QUANTILE_STEP_MS).is_integer()


def test_latency__fast_quantile_equals_bisection_on_many_random_mixtures():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        k = int(rng.integers(1, N_CLASSES + 1))
        share = np.zeros(N_CLASSES)
        wait = np.zeros(N_CLASSES)
        mean = np.zeros(N_CLASSES)
        share[:k] = rng.uniform(0.001, 1.0, k)
        share /= share.sum()
        wait[:k] = rng.exponential(30.0, k) * (rng.random(k) < 0.7)
        mean[:k] = rng.uniform(2.0, 100.0, k) * (rng.random(k) < 0.9)
        got = mixture_quantile(0.99, share, wait, mean, N_CLASSES)
        assert got == ref.mixture_quantile_by_bisection(0.99, share.tolist(), wait.tolist(), mean.tolist(), LATENCY_CAP_MS)


@st.composite
def alike_mixtures(draw):
    """``mixtures()`` where some classes copy an earlier class's wait and mean (alike workers:
    the kernels reuse the earlier class's tail for them)."""
    share, wait, mean = draw(mixtures())
    n = int(np.count_nonzero(share))
    for k in range(1, n):
        if draw(st.booleans()):
            j = draw(st.integers(0, k - 1))
            wait[k], mean[k] = wait[j], mean[j]
    return share, wait, mean


def _tail_and_slopes_class_by_class(x, share, wait, mean, rate):
    """``_tail_and_slopes`` as its docstring defines it, every class's tail computed afresh."""
    tail = slope = inner_slope = jump = curvature = 0.0
    for k in range(N_CLASSES):
        if share[k] > 0.0:
            c = share[k] * class_tail(x, wait[k], mean[k])
            tail += c
            if x >= wait[k]:
                slope += c * rate[k]
                curvature += c * rate[k] * rate[k]
                if x - QUANTILE_STEP_MS >= wait[k]:
                    inner_slope += c * rate[k]
                else:
                    jump += share[k] - c
    return tail, slope, inner_slope, jump, curvature


def _grouped(share, wait, mean):
    """The mixture grouped as the p99 search groups it (``group_classes``)."""
    mixture = np.zeros((MIXTURE_ROWS, N_CLASSES))
    n_active, n_groups, _ = group_classes(mixture, share, wait, mean, N_CLASSES, LOG_INVERSE_P99_TARGET)
    return mixture, n_active, n_groups


@given(mix=alike_mixtures(), q0=st.sampled_from([0.5, 0.99]), offset=st.integers(-3, 3))
def test_latency__alike_classes_share_a_group_tail_without_changing_a_bit(mix, q0, offset):
    share, wait, mean = mix
    rate = np.where(mean > 0.0, 1.0 / np.where(mean > 0.0, mean, 1.0), 0.0)
    index = min((1 << 20) - 1, _grid_index_near_quantile(share, wait, mean, q0, offset))
    x = index * QUANTILE_STEP_MS
    mixture, n_active, n_groups = _grouped(share, wait, mean)
    assert n_groups == len({(wait[k], mean[k]) for k in range(N_CLASSES) if share[k] > 0.0})
    tail, *bounds = _tail_and_slopes(x, mixture, n_active, n_groups)
    expected_tail, *expected_bounds = _tail_and_slopes_class_by_class(x, share, wait, mean, rate)
    assert tail == expected_tail  # summed class by class: the comparisons decide as mixture_tail's
    assert tail == mixture_tail(x, share, wait, mean, N_CLASSES)
    # the bound terms are summed group by group: equal up to rounding, far inside the proof margins
    assert bounds == pytest.approx(expected_bounds, rel=1e-12, abs=1e-300)
    assert mixture_quantile(0.99, share, wait, mean, N_CLASSES) == ref.mixture_quantile_by_bisection(
        0.99, share.tolist(), wait.tolist(), mean.tolist(), LATENCY_CAP_MS)


def _grid_index_near_quantile(share, wait, mean, q0, offset):
    """A grid index ``offset`` points from the mixture's ``q0`` quantile (within the grid)."""
    answer = mixture_quantile(q0, share, wait, mean, N_CLASSES)
    return min(1 << 20, max(2, round(answer / QUANTILE_STEP_MS) + offset))


@given(mix=mixtures(), q0=st.sampled_from([0.5, 0.9, 0.99, 0.999]), offset=st.integers(-3, 3),
       nudge=st.sampled_from([-2, -1, 0, 1, 2]))
def test_latency__fast_quantile_equals_bisection_when_the_target_sits_on_a_grid_points_tail(mix, q0, offset, nudge):
    """The hardest case for the neighbour bounds: 1 - q is (within a few ulps of) the tail at a
    grid point near the quantile, so the answer hangs on comparisons the bounds must not settle
    wrongly."""
    share, wait, mean = mix
    index = _grid_index_near_quantile(share, wait, mean, q0, offset)
    target = mixture_tail(index * QUANTILE_STEP_MS, share, wait, mean, N_CLASSES)
    for _ in range(abs(nudge)):
        target = np.nextafter(target, 1.0 if nudge > 0 else 0.0)
    if not 0.0 < target < 1.0:
        return
    q = 1.0 - target
    got = mixture_quantile(q, share, wait, mean, N_CLASSES)
    assert got == ref.mixture_quantile_by_bisection(q, share.tolist(), wait.tolist(), mean.tolist(), LATENCY_CAP_MS)


@given(mix=mixtures(), q0=st.sampled_from([0.5, 0.9, 0.99, 0.999]), offset=st.integers(-50, 50))
def test_latency__tail_bounds_hold_at_the_neighbouring_grid_points(mix, q0, offset):
    """``_tail_and_slopes``' bounds: P(> x - d) >= tail + d * inner_slope + jump and
    P(> x + d) <= tail - d * slope + d^2 * curvature / 2, up to rounding (far below the margin)."""
    share, wait, mean = mix
    index = min((1 << 20) - 1, _grid_index_near_quantile(share, wait, mean, q0, offset))
    _assert_tail_bounds(share, wait, mean, index)


@given(mix=mixtures(), k=st.integers(0, N_CLASSES - 1), point_mass=st.booleans())
def test_latency__tail_bounds_hold_where_a_class_starts_between_grid_points(mix, k, point_mass):
    """The ``jump`` term: class ``k``'s wait lies just below the evaluated grid point, so the
    class counts fully one grid step lower (a point mass there, like a zombie's timeout, loses
    its whole share in between)."""
    share, wait, mean = mix
    assume(share[k] > 0.0)
    if point_mass:
        mean[k] = 0.0
    index = min((1 << 20) - 1, max(2, math.ceil(wait[k] / QUANTILE_STEP_MS)))
    jump = _assert_tail_bounds(share, wait, mean, index)
    if (index - 1) * QUANTILE_STEP_MS < wait[k] <= index * QUANTILE_STEP_MS:
        assert jump >= share[k] * (1.0 - class_tail(index * QUANTILE_STEP_MS, wait[k], mean[k])) - 1e-15


def _assert_tail_bounds(share, wait, mean, index):
    """Check both neighbour bounds at grid point ``index``; return the jump term."""
    d = QUANTILE_STEP_MS
    x = index * d
    tail, slope, inner_slope, jump, curvature = _tail_and_slopes(x, *_grouped(share, wait, mean))
    assert tail == mixture_tail(x, share, wait, mean, N_CLASSES)
    rounding = 1e-14 * max(tail + jump, 1e-300) + PROOF_MARGIN_ABSOLUTE / 10
    assert mixture_tail(x - d, share, wait, mean, N_CLASSES) >= tail + d * inner_slope + jump - rounding
    assert mixture_tail(x + d, share, wait, mean, N_CLASSES) <= tail - d * slope + d * d * curvature / 2 + rounding
    return jump


@pytest.mark.parametrize("zombie_share", [0.005, 0.0101, 0.125, 0.5])
@pytest.mark.parametrize("timeout_ms", [2000.0, 1999.995, 2000.0 * (1 + 1e-15), 209715 * QUANTILE_STEP_MS])
def test_latency__quantile_with_a_zombie_point_mass_equals_bisection(zombie_share, timeout_ms):
    """A zombie holds its share until the client timeout: a point mass whose jump decides the
    p99 whenever its share is above 1 %; the answer is the bisection's, at or past the timeout."""
    share, wait, mean = np.zeros(N_CLASSES), np.zeros(N_CLASSES), np.zeros(N_CLASSES)
    share[:8] = [(1.0 - zombie_share) / 7] * 7 + [zombie_share]
    wait[7] = timeout_ms
    mean[:7] = 8.5
    got = mixture_quantile(0.99, share, wait, mean, N_CLASSES)
    assert got == ref.mixture_quantile_by_bisection(0.99, share.tolist(), wait.tolist(), mean.tolist(), LATENCY_CAP_MS)
    if zombie_share > 0.01:
        assert timeout_ms <= got < timeout_ms + QUANTILE_STEP_MS


# --- validation -----------------------------------------------------------------------------------------
# (case, actions, fragments the ValueError must contain)
BAD_BATCHES = [
    ("kind_too_big", [[0, 0, 0, 0], [6, 0, 0, 0]], ("actions[1]", "kind=6", "-1 (unparsable) or 0..5")),
    ("kind_below_unparsable", [[-2, 0, 0, 0]], ("actions[0]", "kind=-2")),
    ("node_too_big", [[1, 8, 0, 0]], ("actions[0]", "node=8", "0..7")),
    ("dest_negative", [[2, 1, -1, 0]], ("actions[0]", "dest=-1", "0..7")),
    ("rate_too_big", [[4, 0, 0, 21]], ("actions[0]", "rate_level=21", "0..20")),
    ("one_dimensional", [0, 0, 0, 0], ("shape",)),
    ("three_columns", [[0, 0, 0]], ("shape",)),
    ("empty", np.zeros((0, 4), dtype=np.int64), ("shape",)),
    ("fractional", [[0.5, 0, 0, 0]], ("integers",)),
    ("strings", [["1", "2", "0", "0"]], ("integers",)),
    ("huge_unsigned", np.array([[2**64 - 1, 0, 0, 0]], dtype=np.uint64), ("outside",)),
    ("huge_float", [[1e30, 0, 0, 0]], ("outside",)),  # an int64 cast would wrap it to INT64_MIN
]


@pytest.mark.parametrize("case,actions,fragments", BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
def test_batch__bad_action_batches_raise_naming_the_problem(case, actions, fragments):
    with pytest.raises(ValueError) as exc:
        validate_action_batch(actions)
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_batch__valid_batches_pass_as_int64_and_first_invalid_finds_the_first():
    a = validate_action_batch(np.array([[UNPARSABLE, 0, 0, 0], [5, 7, 7, 20]], dtype=np.int8))
    assert a.dtype == np.int64 and a.flags.c_contiguous
    assert validate_action_batch([[1.0, 2.0, 0.0, 0.0]]).tolist() == [[1, 2, 0, 0]]
    bad = np.zeros((5, 4), dtype=np.int64)
    bad[3, 2] = 9
    bad[4, 0] = 7
    assert first_invalid_action(bad, True) == 3 * 4 + 2
    assert first_invalid_action(np.array([[UNPARSABLE, 0, 0, 0]]), False) == 0
    assert first_invalid_action(np.array([[UNPARSABLE, 0, 0, 0]]), True) == -1
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        validate_action_batch(np.zeros((2, 4), dtype=np.int64), 3)


@pytest.mark.parametrize(
    "field,value",
    [("episode_steps", 0), ("base_rate_rps", -1.0), ("retry_gain", 11.0), ("dropout_prob", 1.5), ("replica_ttl_steps", 1)],
)
def test_params__validate_params_names_the_field(field, value):
    p = default_params()
    validate_params(p)
    p[field] = value
    with pytest.raises(ValueError, match=field):
        validate_params(p)


def test_params__validate_params_rejects_a_non_finite_load_profile():
    p = default_params()
    p["load_profile"][get_task("traffic_spike").episode_steps - 1] = np.nan
    with pytest.raises(ValueError, match="load_profile"):
        validate_params(p)
