"""Golden tests of the triage oracle: one hand-built observation per rule, rule order, telemetry
dropout, held throttles, staged release and the JSON observation form. Every number is
derived from ``TRIAGE_THRESHOLDS``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dime_gym.core.actions import NO_OP, REROUTE, RESTART, SCALE_UP, THROTTLE, level_from_rate, rate_from_level
from dime_gym.core.params import CPU_BACKGROUND
from dime_gym.core.state import DB, FIRST_WORKER, N_NODES
from dime_gym.env import DimeEnv
from dime_gym.oracle import RULES, TRIAGE_THRESHOLDS, ClusterView, oracle_policy, triage

T = TRIAGE_THRESHOLDS
EPS = 0.01
# a calm cluster: every reading half-way to the threshold that would make a rule fire
HEALTHY_WORKER_CPU = (T["zombie_peer_cpu"] + T["hot_shard_mean_cpu"]) / 2
HEALTHY = {
    "cpu": [T["db_stress_cpu"] / 2] + [HEALTHY_WORKER_CPU] * (N_NODES - 1),
    "mem": [T["oom_mem"] / 2] * N_NODES,
    "queue": [0.0] * N_NODES,
    "latency_ms": min(T["retry_p99_ms"], T["zombie_p99_ms"]) / 4,
    "p99_latency": min(T["retry_p99_ms"], T["zombie_p99_ms"]) / 2,
    "request_rate": T["retry_request_rate_rps"] / 2,
    "io_wait": T["split_brain_io_wait"] / 2,
    "error_budget": 100.0,
    "cloud_budget": 6.0,
    "throttle_rate": 1.0,
    "active_replicas": 0.0,
}
NODE_KEYS = {"cpu": "cpu_loads", "mem": "mem_utilizations", "queue": "queue_lengths"}


def healthy_obs(failed=(), restarting=(), step=10, **overrides) -> dict:
    """An env-format observation of a calm cluster. ``cpu``/``mem``/``queue`` overrides are
    ``{node: value}`` maps (or full lists); scalars are plain numbers; ``failed`` and
    ``restarting`` list node indices (the observation holds them as 0/1 masks, with the
    down nodes' telemetry at 0 as the env reports it)."""
    values = {k: (list(v) if isinstance(v, list) else v) for k, v in HEALTHY.items()}
    for key, value in overrides.items():
        if key in NODE_KEYS and isinstance(value, dict):
            for node, x in value.items():
                values[key][node] = x
        elif key in HEALTHY:
            values[key] = value
        else:
            raise KeyError(key)
    obs = {NODE_KEYS[k]: np.asarray(values[k], dtype=np.float32) for k in NODE_KEYS}
    for name, nodes in (("failed_nodes", failed), ("restarting_nodes", restarting)):
        mask = np.zeros(N_NODES, dtype=np.int8)
        mask[list(nodes)] = 1
        obs[name] = mask
        for k in NODE_KEYS.values():
            obs[k][list(nodes)] = 0.0
    for key in HEALTHY:
        if key not in NODE_KEYS:
            obs[key] = np.array([values[key]], dtype=np.float32)
    obs["step"] = np.array([step], dtype=np.int64)
    return obs


def _throttle(rate: float):
    return (THROTTLE, 0, 0, level_from_rate(rate))


def _throttle_cmd(rate: float) -> str:
    return f"kubectl throttle ingress --rate={rate:.2f}"


SCALE_CMD = "kubectl scale deployment frontend --replicas=1"
HOT = T["hot_worker_cpu"] + 2 * EPS
COOL = HEALTHY_WORKER_CPU - 0.1

# (case, observation, rule id, action, command)
GOLDEN = [
    ("1_oom_worker", healthy_obs(mem={4: T["oom_mem"] + EPS}), 1, (RESTART, 4, 0, 0), "kubectl delete pod node-4"),
    ("1_oom_db", healthy_obs(mem={DB: T["oom_mem"] + EPS}), 1, (RESTART, DB, 0, 0), "kubectl delete pod node-0"),
    ("2_db_recovery", healthy_obs(failed=[DB]), 2, (RESTART, DB, 0, 0), "kubectl delete pod node-0"),
    ("3_split_brain", healthy_obs(io_wait=T["split_brain_io_wait"] + EPS), 3,
     _throttle(T["split_brain_rate"]), _throttle_cmd(T["split_brain_rate"])),
    ("4_hot_shard", healthy_obs(cpu={2: HOT, 6: COOL}), 4, (REROUTE, 2, 6, 0),
     "kubectl reroute traffic --from=node-2 --to=node-6"),
    ("5_retry_storm", healthy_obs(p99_latency=T["retry_p99_ms"] + 1, request_rate=T["retry_request_rate_rps"] + 1), 5,
     _throttle(T["retry_rate"]), _throttle_cmd(T["retry_rate"])),
    ("6_zombie", healthy_obs(p99_latency=T["zombie_p99_ms"] + 1, cpu={5: T["zombie_cpu"] / 2}), 6, (REROUTE, 5, 1, 0),
     "kubectl reroute traffic --from=node-5 --to=node-1"),
    ("7_black_swan", healthy_obs(failed=list(range(FIRST_WORKER, FIRST_WORKER + T["black_swan_failed_nodes"]))), 7,
     _throttle(T["black_swan_rate"]), _throttle_cmd(T["black_swan_rate"])),
    ("8_db_stress", healthy_obs(cpu={DB: T["db_stress_cpu"] + EPS}), 8,
     _throttle(T["db_stress_rate"]), _throttle_cmd(T["db_stress_rate"])),
    ("9_safe_scale", healthy_obs(cpu={i: T["scale_mean_cpu"] + EPS for i in range(FIRST_WORKER, N_NODES)}), 9,
     (SCALE_UP, 0, 0, 0), SCALE_CMD),
    ("10_healthy", healthy_obs(), 10, (NO_OP, 0, 0, 0), "no_op"),
    # --- order: the first match wins ---
    ("db_recovery_before_black_swan", healthy_obs(failed=[DB, 2, 3, 4]), 2, (RESTART, DB, 0, 0), "kubectl delete pod node-0"),
    ("oom_before_db_recovery", healthy_obs(failed=[DB], mem={3: T["oom_mem"] + EPS}), 1, (RESTART, 3, 0, 0),
     "kubectl delete pod node-3"),
    ("split_brain_before_retry_storm",
     healthy_obs(io_wait=T["split_brain_io_wait"] + EPS, p99_latency=T["retry_p99_ms"] + 1,
                 request_rate=T["retry_request_rate_rps"] + 1), 3,
     _throttle(T["split_brain_rate"]), _throttle_cmd(T["split_brain_rate"])),
    ("black_swan_before_db_stress", healthy_obs(failed=[1, 7], cpu={DB: T["db_stress_cpu"] + EPS}), 7,
     _throttle(T["black_swan_rate"]), _throttle_cmd(T["black_swan_rate"])),
    # --- just below a threshold nothing fires ---
    ("below_oom_line", healthy_obs(mem={4: T["oom_mem"] - EPS}), 10, (NO_OP, 0, 0, 0), "no_op"),
    ("below_split_brain_line", healthy_obs(io_wait=T["split_brain_io_wait"] - EPS), 10, (NO_OP, 0, 0, 0), "no_op"),
    ("below_db_stress_line", healthy_obs(cpu={DB: T["db_stress_cpu"] - EPS}), 10, (NO_OP, 0, 0, 0), "no_op"),
    ("retry_needs_high_rate", healthy_obs(p99_latency=T["retry_p99_ms"] + 1, request_rate=T["retry_request_rate_rps"] - 1),
     10, (NO_OP, 0, 0, 0), "no_op"),
    ("one_failed_worker", healthy_obs(failed=[3]), 10, (NO_OP, 0, 0, 0), "no_op"),
    ("oom_on_restarting_node_ignored", healthy_obs(restarting=[4]), 10, (NO_OP, 0, 0, 0), "no_op"),
    # --- rule 9's guards ---
    ("scale_needs_error_budget",
     healthy_obs(cpu={i: T["scale_mean_cpu"] + EPS for i in range(FIRST_WORKER, N_NODES)}, error_budget=T["scale_min_error_budget"]),
     10, (NO_OP, 0, 0, 0), "no_op"),
    ("scale_needs_a_credit",
     healthy_obs(cpu={i: T["scale_mean_cpu"] + EPS for i in range(FIRST_WORKER, N_NODES)}, cloud_budget=0.5),
     10, (NO_OP, 0, 0, 0), "no_op"),
]


def _obs_as_float32(x):
    return np.float32(x).item()


@pytest.mark.parametrize("case,obs,rule_id,action,command", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_oracle__golden_rule(case, obs, rule_id, action, command):
    d = triage(obs)
    assert d.rule_id == rule_id
    assert d.rule_name == RULES[rule_id - 1].name
    assert tuple(d.action) == action
    assert d.command == command
    np.testing.assert_array_equal(oracle_policy(obs), np.asarray(action))


def test_oracle__rule_table_is_ordered_and_complete():
    assert [r.id for r in RULES] == list(range(1, 11))
    assert len({r.name for r in RULES}) == 10
    assert set(case[2] for case in GOLDEN) == set(range(1, 11))  # every rule has a golden case


# --- telemetry dropout ----------------------------------------------------------------------------
SCALE_CPU = T["scale_mean_cpu"] + EPS
DROPOUT_CASES = [
    # the mean over visible workers is high; counting the -1s would hide it
    ("scale_ignores_dropped", healthy_obs(cpu={1: SCALE_CPU, 2: SCALE_CPU, 3: SCALE_CPU, 4: SCALE_CPU, 5: -1.0, 6: -1.0, 7: -1.0}),
     9, (SCALE_UP, 0, 0, 0)),
    # a dropped worker is never the "coolest" destination
    ("hot_shard_skips_dropped_destination", healthy_obs(cpu={2: HOT, 6: -1.0, 4: COOL}), 4, (REROUTE, 2, 4, 0)),
    # -1 is not an idle zombie
    ("zombie_needs_real_reading", healthy_obs(p99_latency=T["zombie_p99_ms"] + 1, cpu={5: -1.0}), 10, (NO_OP, 0, 0, 0)),
    # all workers dropped: the mean is unknown, not low
    ("all_dropped_is_not_hot_or_scaled", healthy_obs(cpu={i: -1.0 for i in range(FIRST_WORKER, N_NODES)}), 10, (NO_OP, 0, 0, 0)),
]


@pytest.mark.parametrize("case,obs,rule_id,action", DROPOUT_CASES, ids=[c[0] for c in DROPOUT_CASES])
def test_oracle__dropped_telemetry_is_excluded(case, obs, rule_id, action):
    d = triage(obs)
    assert (d.rule_id, tuple(d.action)) == (rule_id, action)


def test_oracle__mean_worker_cpu_excludes_dropped_and_down_workers():
    obs = healthy_obs(failed=[3], restarting=[4], cpu={1: 0.9, 2: -1.0, 5: 0.3, 6: 0.3, 7: 0.3})
    view = ClusterView.from_observation(obs)
    assert view.visible_workers() == [1, 5, 6, 7]
    assert view.mean_worker_cpu() == pytest.approx(np.mean([np.float32(x) for x in (0.9, 0.3, 0.3, 0.3)]))


# --- throttles in force ------------------------------------------------------------------------------
HELD = [
    ("split_brain", dict(io_wait=T["split_brain_io_wait"] + EPS), 3, T["split_brain_rate"]),
    ("retry_storm", dict(p99_latency=T["retry_p99_ms"] + 1, request_rate=T["retry_request_rate_rps"] + 1), 5, T["retry_rate"]),
    ("db_stress", dict(cpu={DB: T["db_stress_cpu"] + EPS}), 8, T["db_stress_rate"]),
]


@pytest.mark.parametrize("case,overrides,rule_id,rate", HELD, ids=[h[0] for h in HELD])
def test_oracle__throttle_in_force_is_held(case, overrides, rule_id, rate):
    d = triage(healthy_obs(throttle_rate=_obs_as_float32(rate), **overrides))
    assert d.rule_id == rule_id
    assert tuple(d.action) == (NO_OP, 0, 0, 0)
    assert d.command == "no_op"
    # a different throttle in force is changed to the rule's rate
    other = rate_from_level(level_from_rate(rate) + 2)
    d = triage(healthy_obs(throttle_rate=_obs_as_float32(other), **overrides))
    assert (d.rule_id, tuple(d.action)) == (rule_id, _throttle(rate))


def test_oracle__black_swan_throttle_is_held():
    d = triage(healthy_obs(failed=[5, 6], throttle_rate=_obs_as_float32(T["black_swan_rate"])))
    assert (d.rule_id, tuple(d.action)) == (7, (NO_OP, 0, 0, 0))


# --- rule 10: staged release ------------------------------------------------------------------------
WORKER_TARGET = T["scale_mean_cpu"] - T["release_headroom"]
DB_TARGET = T["db_stress_cpu"] - T["release_headroom"]


def _projected(cpu: float, rate: float, theta: float) -> float:
    """CPU after changing the admitted fraction from ``theta`` to ``rate`` (busy part scales)."""
    return CPU_BACKGROUND + (cpu - CPU_BACKGROUND) * rate / theta


def _uniform_workers(cpu: float) -> dict:
    return {i: cpu for i in range(FIRST_WORKER, N_NODES)}


def test_oracle__release_goes_in_stages():
    theta, stage = rate_from_level(8), rate_from_level(12)
    # worker load such that the largest level that fits lies between `stage` and the next level
    fits = stage + 0.5 * (rate_from_level(13) - stage)
    cpu = CPU_BACKGROUND + (WORKER_TARGET - CPU_BACKGROUND) * theta / fits
    d = triage(healthy_obs(throttle_rate=theta, cpu={DB: CPU_BACKGROUND, **_uniform_workers(cpu)}, cloud_budget=0.0))
    assert d.rule_id == 10
    assert tuple(d.action) == (THROTTLE, 0, 0, level_from_rate(stage))
    assert d.command == _throttle_cmd(stage)
    # the load behind the throttle subsides: the next stage releases it completely
    calm = CPU_BACKGROUND + (WORKER_TARGET - CPU_BACKGROUND) * stage / 2
    d = triage(healthy_obs(throttle_rate=stage, cpu={DB: CPU_BACKGROUND, **_uniform_workers(calm)}))
    assert (d.rule_id, tuple(d.action), d.command) == (10, (THROTTLE, 0, 0, level_from_rate(1.0)), _throttle_cmd(1.0))


def test_oracle__no_release_when_nothing_is_throttled():
    assert tuple(triage(healthy_obs(throttle_rate=1.0)).action) == (NO_OP, 0, 0, 0)


@given(
    level=st.integers(1, 19),
    worker_cpu=st.floats(CPU_BACKGROUND + 0.01, 1.0),
    db_cpu=st.floats(CPU_BACKGROUND + 0.01, T["db_stress_cpu"] - EPS),
)
def test_oracle__release_is_the_largest_rate_that_fits(level, worker_cpu, db_cpu):
    theta = rate_from_level(level)
    obs = healthy_obs(throttle_rate=theta, cpu={DB: db_cpu, **_uniform_workers(worker_cpu)}, cloud_budget=0.0)
    d = triage(obs)
    assert d.rule_id == 10
    view = ClusterView.from_observation(obs)
    w, db, th = view.mean_worker_cpu(), view.cpu[DB], view.throttle_rate

    def fits(rate):
        return _projected(w, rate, th) <= WORKER_TARGET + 1e-6 and _projected(db, rate, th) <= DB_TARGET + 1e-6

    if d.action[0] == THROTTLE:
        new = rate_from_level(d.action[3])
        assert new > th
        assert fits(new)
        assert new == 1.0 or not fits(rate_from_level(d.action[3] + 1) + 1e-5)
    else:
        assert tuple(d.action) == (NO_OP, 0, 0, 0)
        assert not fits(rate_from_level(level + 1) + 1e-5)


# --- observation forms ------------------------------------------------------------------------------
def _json_form(obs: dict) -> dict:
    """The text layer's form: plain lists, index lists for node sets, plain scalars."""
    out = {}
    for key, value in obs.items():
        if key in ("failed_nodes", "restarting_nodes"):
            out[key] = [int(i) for i in np.flatnonzero(value)]
        elif np.asarray(value).shape == (1,):
            out[key] = np.asarray(value).item()
        else:
            out[key] = np.asarray(value).tolist()
    return out


@pytest.mark.parametrize("case,obs,rule_id,action,command", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_oracle__json_form_reads_the_same(case, obs, rule_id, action, command):
    json_obs = _json_form(obs)
    assert ClusterView.from_observation(json_obs) == ClusterView.from_observation(obs)
    d = triage(json_obs)
    assert (d.rule_id, tuple(d.action), d.command) == (rule_id, action, command)


def test_oracle__json_form_failed_list_of_indices():
    view = ClusterView.from_observation({**_json_form(healthy_obs()), "failed_nodes": [0, 3], "restarting_nodes": [5]})
    assert view.failed == frozenset({0, 3})
    assert view.restarting == frozenset({5})
    assert not view.serving(3) and not view.serving(5) and view.serving(4)


def test_oracle__env_info_matches_triage_of_its_observation():
    env = DimeEnv(task="black_swan_az_failure")
    obs, info = env.reset(seed=1)
    rules = set()
    for t in range(25):
        d = triage(obs)
        assert info["oracle"]["rule_id"] == d.rule_id
        assert info["oracle"]["command"] == d.command
        np.testing.assert_array_equal(info["oracle"]["action"], d.action)
        rules.add(d.rule_id)
        obs, _, _, _, info = env.step(oracle_policy(obs))
    assert rules - {10}  # the zone failure made some rule other than "healthy" fire


def test_cluster_view__a_mask_passed_as_a_list_is_refused_not_misread():
    obs = {"cpu_loads": [0.5] * 8, "mem_utilizations": [0.4] * 8, "failed_nodes": [0, 0, 0, 1, 0, 0, 0, 0]}
    with pytest.raises(ValueError, match="distinct node indices"):
        ClusterView.from_observation(obs)
    assert ClusterView.from_observation({**obs, "failed_nodes": [3]}).failed == frozenset({3})
