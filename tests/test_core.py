"""Core kernels against their pure-Python twins, RNG stream isolation, and the invariants of
every state reachable by any action sequence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference as ref
from dime_gym import TASK_IDS
from dime_gym.core import reward, rng
from dime_gym.core.actions import (
    ACTION_NVEC,
    FRICTION_BY_KIND,
    FRICTION_DB_RESTART_EXTRA,
    FRICTION_INVALID,
    FRICTION_RESTART_FAILED,
    QUERY_LOGS,
    RESTART,
)
from dime_gym.core.dynamics import effective_route_weights, latency, service, step_batch_serial
from dime_gym.core.latency import N_CLASSES, P99_QUANTILE, class_tail, mixture_quantile
from dime_gym.core.params import default_params
from dime_gym.core.reward import REWARD_BOUNDS, REWARD_COMPONENTS, REWARD_MAX, REWARD_MIN, RESTARTING_CREDIT
from dime_gym.core.state import (
    DB,
    ERROR_BUDGET_MAX,
    FIRST_WORKER,
    LATENCY_CAP_MS,
    MAX_REPLICAS,
    N_NODES,
    N_WORKERS,
    QUEUE_CAPACITY,
    STATE_DTYPE,
    empty_batch,
)
from dime_gym.core.telemetry import update_dropout
from dime_gym.env import DimeEnv
from dime_gym.scenarios import build_episode
from dime_gym.scenarios.graders import grade

U64 = st.integers(0, 2**64 - 1)


# --- rng -----------------------------------------------------------------------------------
@given(z=U64)
def test_rng__mix64_matches_twin(z):
    assert int(rng.mix64(np.uint64(z))) == ref.mix64(z)


@given(state=U64, stream=st.sampled_from([rng.STREAM_DYNAMICS, rng.STREAM_TELEMETRY]), n=st.integers(1, 20))
def test_rng__next_uniform_matches_twin_and_advances_only_its_stream(state, stream, n):
    other = 1 - stream
    streams = np.array([0, 0], dtype=np.uint64)
    streams[stream] = state
    streams[other] = 0xDEADBEEF
    twin = state
    for _ in range(n):
        u = rng.next_uniform(streams, stream)
        twin, expected = ref.next_uniform(twin)
        assert u == expected
        assert 0.0 <= u < 1.0
    assert int(streams[stream]) == twin
    assert int(streams[other]) == 0xDEADBEEF


@given(state=U64, n=st.integers(1, 10))
def test_rng__next_normal_matches_twin(state, n):
    streams = np.array([state, 0], dtype=np.uint64)
    twin = state
    for _ in range(n):
        x = rng.next_normal(streams, 0)
        twin, expected = ref.next_normal(twin)
        assert math.isfinite(x)
        assert x == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert int(streams[0]) == twin  # one uniform per normal


def test_rng__next_normal_is_standard_normal_with_clipped_tails():
    streams = np.array([12345, 0], dtype=np.uint64)
    draws = np.array([rng.next_normal(streams, 0) for _ in range(200_000)])
    edge = rng.NORMAL_QUANTILES[-1]
    assert edge == pytest.approx(3.67, abs=0.01) and rng.NORMAL_QUANTILES[0] == -edge
    assert draws.min() >= -edge and draws.max() <= edge
    assert abs(draws.mean()) < 0.01 and abs(draws.std() - 1.0) < 0.01
    assert abs(np.mean(draws < -1.0) - 0.158655) < 0.004  # the normal CDF at -1
    assert abs(np.mean(np.abs(draws) > 2.0) - 0.0455) < 0.002


@given(seed=st.integers(-(2**63), 2**64 - 1))
def test_rng__seed_streams_matches_twin_and_streams_are_distinct(seed):
    streams = rng.seed_streams(seed)
    assert streams.dtype == np.uint64 and streams.shape == (rng.N_STREAMS,)
    assert [int(x) for x in streams] == ref.seed_streams(seed, rng.N_STREAMS)
    assert len(set(streams.tolist())) == rng.N_STREAMS


def test_rng__seed_streams_differ_across_seeds():
    seen = set()
    for seed in range(2000):
        for x in rng.seed_streams(seed).tolist():
            seen.add(x)
    assert len(seen) == 2000 * rng.N_STREAMS


# --- latency quantile -------------------------------------------------------------------------
def _mixture(draw_shares, waits, means):
    share = np.zeros(N_CLASSES)
    wait = np.zeros(N_CLASSES)
    mean = np.zeros(N_CLASSES)
    total = sum(draw_shares)
    for k, (w, a, m) in enumerate(zip(draw_shares, waits, means)):
        share[k] = w / total
        wait[k] = a
        mean[k] = m
    return share, wait, mean


@st.composite
def mixtures(draw, point_masses: bool):
    n = draw(st.integers(1, N_CLASSES))
    shares = draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n))
    waits = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1.2 * LATENCY_CAP_MS)), min_size=n, max_size=n))
    mean_value = st.floats(0.1, 5000.0)
    if point_masses:
        mean_value = st.one_of(st.just(0.0), mean_value)
    means = draw(st.lists(mean_value, min_size=n, max_size=n))
    return _mixture(shares, waits, means)


@given(mix=mixtures(point_masses=False), q=st.sampled_from([0.5, 0.9, 0.99, 0.999]))
def test_latency__mixture_quantile_matches_twin(mix, q):
    share, wait, mean = mix
    got = mixture_quantile(q, share, wait, mean, N_CLASSES)
    expected = ref.mixture_quantile(q, share.tolist(), wait.tolist(), mean.tolist(), LATENCY_CAP_MS)
    assert 0.0 <= got <= LATENCY_CAP_MS
    # the kernel bisects to 0.01 ms and returns the upper end of its bracket
    assert expected - 1e-6 <= got <= expected + 0.01 + 1e-6


@given(mix=mixtures(point_masses=True))
def test_latency__mixture_quantile_brackets_the_p99_with_point_masses(mix):
    share, wait, mean = mix
    got = mixture_quantile(0.99, share, wait, mean, N_CLASSES)
    target = 0.01
    tail = ref.mixture_tail(got, share.tolist(), wait.tolist(), mean.tolist())
    if got >= LATENCY_CAP_MS:
        return  # capped: anything at or above the cap is reported as the cap
    assert tail <= target + 1e-9
    if got > 0.01:
        assert ref.mixture_tail(got - 0.0101, share.tolist(), wait.tolist(), mean.tolist()) > target - 1e-9


def test_latency__mixture_quantile_caps_at_latency_cap():
    share, wait, mean = _mixture([0.5, 0.5], [0.0, 2 * LATENCY_CAP_MS], [10.0, 0.0])
    assert mixture_quantile(0.99, share, wait, mean, N_CLASSES) == LATENCY_CAP_MS


# --- reward components ----------------------------------------------------------------------
UNIT = st.floats(0.0, 1.0)
RATE = st.floats(0.0, 5000.0)

# (component, kernel, twin, strategy of its arguments)
COMPONENT_CASES = [
    ("r_topo", reward.r_topo, ref.r_topo,
     st.tuples(st.sampled_from([0.0, RESTARTING_CREDIT, 1.0]), UNIT, st.integers(0, 2 * N_WORKERS).map(lambda h: h / 2))),
    ("r_shed", reward.r_shed, ref.r_shed,
     RATE.flatmap(lambda offered: st.tuples(st.just(offered), st.floats(0.0, offered)))),
    ("r_mem", reward.r_mem, ref.r_mem, st.tuples(UNIT)),
    ("r_fric", reward.r_fric, ref.r_fric, st.tuples(st.floats(0.0, 2.0))),
    ("r_lat", reward.r_lat, ref.r_lat, st.tuples(st.floats(0.0, LATENCY_CAP_MS), st.floats(1.0, 2000.0), UNIT)),
    ("r_up", reward.r_up, ref.r_up, st.tuples(st.integers(0, 2 * N_NODES).map(lambda h: h / 2))),
    ("r_eff", reward.r_eff, ref.r_eff, st.tuples(st.floats(0.0, ERROR_BUDGET_MAX), st.integers(0, MAX_REPLICAS))),
]


@pytest.mark.parametrize("name,kernel,twin,args", COMPONENT_CASES, ids=[c[0] for c in COMPONENT_CASES])
def test_reward__component_matches_twin_within_bounds(name, kernel, twin, args):
    lo, hi = REWARD_BOUNDS[name]

    @given(a=args)
    def check(a):
        got = kernel(*a)
        assert math.isfinite(got)
        assert got == pytest.approx(twin(*a), rel=1e-12, abs=1e-12)
        assert lo <= got <= hi

    check()


def test_reward__component_table_is_consistent():
    assert len(REWARD_COMPONENTS) == len(set(REWARD_COMPONENTS)) == 7
    assert set(REWARD_BOUNDS) == set(REWARD_COMPONENTS)
    assert all(lo < hi for lo, hi in REWARD_BOUNDS.values())
    assert all(getattr(reward, name) is not None for name in REWARD_COMPONENTS)


@pytest.mark.parametrize(
    "name,args,expected",
    [
        ("r_topo", (0.0, 0.0, N_WORKERS), REWARD_BOUNDS["r_topo"][0]),  # DB down: the floor
        ("r_topo", (RESTARTING_CREDIT, 0.0, N_WORKERS), -1.0),  # DB restarting: half-way back
        ("r_topo", (1.0, 0.0, N_WORKERS), REWARD_BOUNDS["r_topo"][1]),  # healthy: the ceiling
        ("r_shed", (0.0, 0.0), 0.0),  # no traffic offered: nothing shed
        ("r_shed", (100.0, 0.0), -1.0),  # nothing good
        ("r_mem", (0.0,), 0.0),
        ("r_mem", (1.0,), -1.0),
        ("r_lat", (0.0, 200.0, 1.0), 0.5),
        ("r_lat", (0.0, 200.0, 0.5), 0.25),  # credit only for the traffic served within the SLO
        ("r_lat", (0.0, 200.0, 0.0), -1.0),  # shedding everything is not fast service
        ("r_lat", (200.0, 200.0, 1.0), 0.0),  # continuous at the SLO
        ("r_lat", (800.0, 200.0, 1.0), -1.0),  # saturates at four times the SLO
        ("r_up", (N_NODES,), 1.0),
        ("r_up", (N_NODES - 1 + RESTARTING_CREDIT,), (N_NODES - 1 + RESTARTING_CREDIT) / N_NODES),
        ("r_eff", (ERROR_BUDGET_MAX, 0), 0.5),
        ("r_eff", (0.0, MAX_REPLICAS), -0.5),
    ],
)
def test_reward__component_edges(name, args, expected):
    assert getattr(reward, name)(*args) == pytest.approx(expected, abs=1e-12)


# --- routing ----------------------------------------------------------------------------------
@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=N_WORKERS, max_size=N_WORKERS),
    failed=st.lists(st.booleans(), min_size=N_NODES, max_size=N_NODES),
    restarting=st.lists(st.integers(0, 2), min_size=N_NODES, max_size=N_NODES),
)
def test_dynamics__effective_route_weights_match_twin(weights, failed, restarting):
    _, states = empty_batch(1)
    s = states[0]
    s["route_weight"][FIRST_WORKER:] = weights
    s["failed"][:] = failed
    s["restart_left"][:] = restarting
    eff = np.full(N_NODES, np.nan)
    effective_route_weights(s, eff)
    serving = [not f and r == 0 for f, r in zip(failed, restarting)]
    expected = ref.effective_route_weights(s["route_weight"], serving)
    np.testing.assert_allclose(eff, expected, rtol=1e-12, atol=1e-12)
    assert eff[DB] == 0.0
    if any(serving[FIRST_WORKER:]):  # weight is conserved while any worker serves
        assert eff.sum() == pytest.approx(sum(weights), rel=1e-12, abs=1e-12)
        assert all(eff[i] == 0.0 for i in range(FIRST_WORKER, N_NODES) if not serving[i])
    else:
        assert eff.sum() == 0.0


@st.composite
def alike_workers(draw):
    """Inputs of ``dynamics.service`` for the seven workers, each one of two kinds (so that
    neighbours are often alike, as healthy workers are), and how each worker stands."""
    kind = st.tuples(st.floats(0.0, 400.0), st.floats(0.0, 1.0), st.floats(0.0, QUEUE_CAPACITY), st.floats(0.0, 500.0))
    first, other = draw(kind), draw(kind)  # (desired rps, gc pressure, queue, arrival rps)
    shared = draw(st.lists(st.booleans(), min_size=4, max_size=4))  # the second kind differs in some fields only
    kinds = [first, tuple(f if same else o for f, o, same in zip(first, other, shared))]
    picks = draw(st.lists(st.integers(0, 1), min_size=N_WORKERS, max_size=N_WORKERS))
    modes = draw(st.lists(st.sampled_from(["serving", "serving", "zombie", "split_brain", "failed"]),
                          min_size=N_WORKERS, max_size=N_WORKERS))
    return [kinds[k] for k in picks], modes


@given(workers=alike_workers(), scale=st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)))
def test_dynamics__a_worker_is_served_beside_alike_workers_exactly_as_alone(workers, scale):
    """``service`` reuses an alike neighbour's divisions; a worker's results must not change."""
    inputs, modes = workers
    params = default_params().reshape(1)

    def serve(alone=None):
        _, states = empty_batch(1)
        s = states[0]
        desired, gc_pressure = np.zeros(N_CLASSES), np.zeros(N_CLASSES)
        for i, ((desired_rps, pressure, queue, arrival_rps), mode) in enumerate(zip(inputs, modes), FIRST_WORKER):
            desired[i], gc_pressure[i] = desired_rps, pressure
            s["queue"][i], s["arrival_rps"][i] = queue, arrival_rps
            s["zombie"][i], s["split_brain"][i] = mode == "zombie", mode == "split_brain"
            s["failed"][i] = mode == "failed" or (alone is not None and i != alone)
        share, wait, mean = np.zeros(N_CLASSES), np.zeros(N_CLASSES), np.zeros(N_CLASSES)
        service(params[0], s, desired, gc_pressure, scale, 0.0, 0.5, 0, 0.0, share, wait, mean, 0.0)
        return s, share, wait, mean

    s_all, share_all, wait_all, mean_all = serve()
    for i in range(FIRST_WORKER, N_NODES):
        s_one, share_one, wait_one, mean_one = serve(alone=i)
        for field in ("queue", "cpu", "served_rps", "overload_streak"):
            assert s_one[field][i] == s_all[field][i], field
        assert (share_one[i], wait_one[i], mean_one[i]) == (share_all[i], wait_all[i], mean_all[i])


@given(shares=st.lists(st.one_of(st.just(0.0), st.floats(0.1, 500.0)), min_size=N_CLASSES, max_size=N_CLASSES),
       kinds=st.lists(st.tuples(st.floats(0.0, 400.0), st.one_of(st.just(0.0), st.floats(0.5, 300.0))),
                      min_size=2, max_size=2),
       picks=st.lists(st.integers(0, 1), min_size=N_CLASSES, max_size=N_CLASSES))
def test_dynamics__latency_of_alike_classes_equals_the_class_by_class_sums(shares, kinds, picks):
    """``latency`` reuses an alike class's timeout and SLO tails; its sums must not change."""
    params = default_params().reshape(1)
    p = params[0]
    share = np.array(shares)
    wait = np.array([kinds[k][0] for k in picks])
    mean = np.array([kinds[k][1] for k in picks])
    wait[mean == 0.0] = p["client_timeout_ms"]  # a point mass is a zombie's: held until the timeout
    in_flight = float(share.sum())
    assume(in_flight > 0.0)
    served_ok = good = failed = 0.0
    for k in range(N_CLASSES):
        if share[k] > 0.0 and mean[k] > 0.0:
            timed_out = share[k] * class_tail(p["client_timeout_ms"], wait[k], mean[k])
            served_ok += share[k] - timed_out
            failed += timed_out
            good += share[k] * (1.0 - class_tail(p["slo_p99_ms"], wait[k], mean[k]))
    fractions = np.where(share > 0.0, share / in_flight, 0.0)
    _, states = empty_batch(1)
    got = latency(p, states[0], in_flight, in_flight, share, wait, mean, 0.0)
    assert got == (served_ok, good, mixture_quantile(P99_QUANTILE, fractions, wait, mean, N_CLASSES), failed)


# --- graders ------------------------------------------------------------------------------------
@st.composite
def grader_states(draw):
    step = draw(st.integers(0, 128))
    offered = draw(st.one_of(st.just(0.0), st.floats(1.0, 1e6)))  # requests: none, or at least one
    return {
        "step": step,
        "sum_offered": offered,
        "sum_good": draw(st.floats(0.0, 1.0)) * offered,
        "steps_db_up": draw(st.integers(0, step)),
        "steps_slo_met": draw(st.integers(0, step)),
        "credits_spent": float(draw(st.integers(0, 20))),
        "cloud_credits": float(draw(st.integers(0, 20))),
        "friction_total": draw(st.floats(0.0, 0.75 * max(step, 1))),
    }


@given(fields=grader_states())
def test_graders__grade_matches_twin_and_lies_in_unit_interval(fields):
    s = np.zeros((), dtype=STATE_DTYPE)
    for k, v in fields.items():
        s[k] = v
    got = grade(s)
    assert isinstance(got, float)
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(ref.grade(**fields), rel=1e-12, abs=1e-12)


@given(batch=st.lists(grader_states(), min_size=1, max_size=5))
def test_graders__batch_grade_matches_single(batch):
    states = np.zeros(len(batch), dtype=STATE_DTYPE)
    for b, fields in enumerate(batch):
        for k, v in fields.items():
            states[b][k] = v
    scores = grade(states)
    assert scores.shape == (len(batch),)
    np.testing.assert_allclose(scores, [grade(states[b]) for b in range(len(batch))], rtol=0, atol=0)


# --- RNG stream isolation -----------------------------------------------------------------------
TELEMETRY_FIELDS = {"dropped", "visible_left", "reward", "reward_components", "friction_total",
                    "n_actions", "action_errors", "last_action_kind"}


def _step_pair(task, seed, actions_a, actions_b, params_b_overrides=None, state_b_overrides=None):
    ep = build_episode(task, seed)
    params, states = empty_batch(2)
    params[0] = params[1] = ep.params
    states[0] = states[1] = ep.state
    for k, v in (params_b_overrides or {}).items():
        params[1][k] = v
    for k, v in (state_b_overrides or {}).items():
        states[1][k] = v
    for a, b in zip(actions_a, actions_b):
        step_batch_serial(params, states, np.array([a, b], dtype=np.int64))
        yield states[0].copy(), states[1].copy()


def _dynamics_equal(sa, sb, ignore=()):
    for name in STATE_DTYPE.names:
        if name in ignore:
            continue
        if name == "rng":
            assert sa["rng"][rng.STREAM_DYNAMICS] == sb["rng"][rng.STREAM_DYNAMICS]
            continue
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


@pytest.mark.parametrize("task", ["traffic_spike", "zombie_node", "black_swan_az_failure", "retry_storm"])
def test_rng__telemetry_settings_never_change_dynamics(task):
    # copy B drops every node's telemetry at once and never recovers it, with forced
    # visibility on two nodes; copy A keeps the task's dropout. Physics must not notice.
    visible = np.zeros(N_NODES, dtype=np.int64)
    visible[[1, 4]] = 5
    actions = np.random.default_rng(7).integers(0, ACTION_NVEC, size=(30, 4))
    pairs = list(_step_pair(
        task, 11, actions, actions,
        params_b_overrides={"dropout_prob": 1.0, "dropout_recover_prob": 0.0},
        state_b_overrides={"visible_left": visible},
    ))
    assert build_episode(task, 11).params["dropout_prob"] != 1.0
    assert any((sa["dropped"] != sb["dropped"]).any() for sa, sb in pairs)  # telemetry did differ
    for sa, sb in pairs:
        _dynamics_equal(sa, sb, ignore={"dropped", "visible_left"})
        # one telemetry draw per node per step whatever the branch: the positions agree too
        assert sa["rng"][rng.STREAM_TELEMETRY] == sb["rng"][rng.STREAM_TELEMETRY]



def test_telemetry__dropout_chain_has_its_stationary_share_and_two_draws_a_step():
    """Dropout is a two-state chain with 16-bit uniforms, four nodes per 64-bit draw: over many
    steps a node is dropped ``p / (p + r)`` of the time, and the stream moves two draws a step."""
    params = default_params().reshape(1)
    params["dropout_prob"], params["dropout_recover_prob"] = 0.2, 0.5
    state = np.zeros(1, dtype=STATE_DTYPE)
    state["rng"][0] = rng.seed_streams(5)
    start = int(state["rng"][0][rng.STREAM_TELEMETRY])
    steps = 20_000
    dropped = 0
    for _ in range(steps):
        update_dropout(params[0], state[0])
        dropped += int(state["dropped"][0].sum())
    assert abs(dropped / (steps * N_NODES) - 0.2 / 0.7) < 0.01
    assert int(state["rng"][0][rng.STREAM_TELEMETRY]) == (start + 2 * steps * ref.GOLDEN) % 2**64

def test_rng__query_logs_never_changes_dynamics():
    # A: no_op every step; B: query_logs a rotating node every step
    n = 30
    noop = np.zeros((n, 4), dtype=np.int64)
    logs = np.array([[QUERY_LOGS, t % N_NODES, 0, 0] for t in range(n)], dtype=np.int64)
    for sa, sb in _step_pair("memory_leak_slow_burn", 3, noop, logs):
        _dynamics_equal(sa, sb, ignore=TELEMETRY_FIELDS)
        assert sa["rng"][rng.STREAM_TELEMETRY] == sb["rng"][rng.STREAM_TELEMETRY]


# --- invariants of reachable states -----------------------------------------------------------------
ACTIONS = st.tuples(*(st.integers(0, int(n) - 1) for n in ACTION_NVEC))
FLOAT_FIELDS = [n for n in STATE_DTYPE.names if STATE_DTYPE[n].base.kind == "f"]
UNIT_FIELDS = ("cpu", "mem", "io_wait", "db_util", "throttle_rate", "db_pool_free")
LATENCY_FIELDS = ("latency_mean_ms", "latency_p99_ms")


def _friction(action, errors, before, params) -> float:
    """The friction of ``action`` taken in state ``before`` (the record before the step)."""
    kind, node = int(action[0]), int(action[1])
    f = float(FRICTION_BY_KIND[kind])
    if kind == RESTART:
        # kubelet's own restart begins in this step's timer tick: the restart asked for is under way
        kubelet_restart = (before["failed"][node] == 1 and before["auto_restart_left"][node] == 1
                           and params["crash_loops"][node] == 0)
        if kubelet_restart:
            f = 0.0
        elif before["failed"][node] == 1:
            f = FRICTION_RESTART_FAILED  # restarting a node that is down is a recovery
        elif node == DB:
            f += FRICTION_DB_RESTART_EXTRA
    if errors:
        f += FRICTION_INVALID
    return f


def _assert_state_invariants(s):
    for name in FLOAT_FIELDS:
        assert np.all(np.isfinite(s[name])), name
    for name in UNIT_FIELDS:
        assert np.all((s[name] >= 0.0) & (s[name] <= 1.0)), (name, s[name])
    assert np.all((s["queue"] >= 0.0) & (s["queue"] <= QUEUE_CAPACITY)), s["queue"]
    for name in LATENCY_FIELDS:
        assert np.all((s[name] >= 0.0) & (s[name] <= LATENCY_CAP_MS)), (name, s[name])
    assert 0.0 <= s["error_budget"] <= ERROR_BUDGET_MAX
    assert s["cloud_credits"] >= 0.0
    assert np.all(s["mem_leaked"] >= 0.0)
    for name in ("offered_rps", "admitted_rps", "shed_rps", "good_rps", "failed_rps", "retry_rps", "served_total_rps"):
        assert s[name] >= 0.0, (name, s[name])
    assert s["admitted_rps"] <= s["offered_rps"] * (1 + 1e-12)
    # a backlog can make one step's good_rps exceed its offered_rps, never the episode's
    assert s["sum_good"] <= s["sum_offered"] * (1 + 1e-9) + 1e-9
    assert set(np.unique(s["failed"])) <= {0, 1}
    assert np.all(s["restart_left"] >= 0) and np.all(s["cooldown_left"] >= 0)
    assert np.all(s["replica_cold_left"] <= s["replica_ttl_left"])


@given(task=st.sampled_from(TASK_IDS), seed=st.integers(0, 2**32 - 1), actions=st.lists(ACTIONS, min_size=1, max_size=60))
def test_core__reachable_states_keep_invariants_and_bounded_rewards(task, seed, actions):
    env = DimeEnv(task=task, with_oracle=False)
    env.reset(seed=seed)
    _assert_state_invariants(env.state_record)
    offered = accounted = 0.0
    for action in actions:
        a = np.asarray(action, dtype=np.int64)
        before = env.state_record
        _, r, terminated, truncated, info = env.step(a)
        s = env.state_record
        _assert_state_invariants(s)
        offered += s["offered_rps"]
        accounted += s["good_rps"] + s["failed_rps"] + s["shed_rps"]
        assert accounted <= offered * (1 + 1e-9) + 1e-9  # no request counted twice
        assert math.isfinite(r) and REWARD_MIN <= r <= REWARD_MAX
        assert not terminated
        comps = info["reward_components"]
        assert list(comps) == list(REWARD_COMPONENTS)
        for name, value in comps.items():
            lo, hi = REWARD_BOUNDS[name]
            assert math.isfinite(value) and lo <= value <= hi, (name, value)
        assert r == pytest.approx(min(REWARD_MAX, max(REWARD_MIN, sum(comps.values()))), abs=1e-12)
        # the components are exactly what the twins compute from the post-step state
        expected = ref.reward_components_from_state(s, float(env.episode.params["slo_p99_ms"]),
                                                    _friction(a, int(s["action_errors"]), before, env.episode.params))
        np.testing.assert_allclose(list(comps.values()), expected, rtol=1e-9, atol=1e-12)
        if truncated:
            break


# (case, task, seed, action at step 0): the database is down for a few steps, so the workers
# queue what they cannot complete and serve it once it is back
CONSERVATION_CASES = [
    ("db_restart_trace", "level_5_alibaba_trace", 0, (RESTART, DB, 0, 0)),
    ("db_restart_healthy_load", "connection_pool_deadlock", 1, (RESTART, DB, 0, 0)),
    ("db_restart_hot_shard", "hot_shard_skew", 2, (RESTART, DB, 0, 0)),
    ("worker_restart", "node_failure", 3, (RESTART, 2, 0, 0)),
]


@pytest.mark.parametrize("case,task,seed,first", CONSERVATION_CASES, ids=[c[0] for c in CONSERVATION_CASES])
def test_dynamics__each_offered_request_is_counted_at_most_once(case, task, seed, first):
    # Every offered request ends shed, failed or served (good or slow), or is still queued:
    # sum(good + failed + shed) can never exceed sum(offered).
    env = DimeEnv(task=task, with_oracle=False)
    env.reset(seed=seed)
    offered = accounted = 0.0
    for t in range(12):
        env.step(np.asarray(first if t == 0 else (0, 0, 0, 0), dtype=np.int64))
        s = env.state_record
        offered += s["offered_rps"]
        accounted += s["good_rps"] + s["failed_rps"] + s["shed_rps"]
        assert accounted <= offered * (1 + 1e-9), (t, accounted, offered)


@given(failed=st.lists(st.integers(0, 1), min_size=N_NODES, max_size=N_NODES),
       restart_left=st.lists(st.integers(0, 2), min_size=N_NODES, max_size=N_NODES))
def test_nodes__serving_mask_is_the_kernel_predicate(failed, restart_left):
    from dime_gym.core.nodes import is_serving, serving_mask

    states = np.zeros(1, dtype=STATE_DTYPE)
    states[0]["failed"] = failed
    states[0]["restart_left"] = restart_left
    mask = serving_mask(states[0])
    assert mask.shape == (N_NODES,) and mask.dtype == np.bool_
    assert [bool(is_serving(states[0], i)) for i in range(N_NODES)] == mask.tolist()
    assert mask.tolist() == [f == 0 and r == 0 for f, r in zip(failed, restart_left)]
    assert serving_mask(np.repeat(states, 3)).shape == (3, N_NODES)
