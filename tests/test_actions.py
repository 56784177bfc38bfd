"""What each action does to a healthy cluster: restart, reroute, scale_up, throttle, query_logs,
their budgets and cooldowns, and the friction of invalid actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dime_gym  # noqa: F401 - registers DIME-v0
from reference import build_observation
from dime_gym.core.actions import (
    FRICTION_BY_KIND,
    FRICTION_DB_RESTART_EXTRA,
    FRICTION_INVALID,
    NO_OP,
    QUERY_LOGS,
    REROUTE,
    RESTART,
    SCALE_UP,
    THROTTLE,
    describe_errors,
    rate_from_level,
)
from dime_gym.core.dynamics import step_batch_serial
from dime_gym.core.params import (
    MEM_AFTER_RESTART,
    QUERY_LOGS_VISIBLE_STEPS,
    REPLICA_WEIGHT,
    REROUTE_FRACTION,
    RESTART_COOLDOWN_STEPS,
    RESTART_STEPS,
    default_params,
)
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.core.state import DB, ERROR_BUDGET_MAX, FIRST_WORKER, MAX_REPLICAS, N_NODES, empty_batch
from dime_gym.core.observe import DROPPED_VALUE
from dime_gym.scenarios import build_episode, get_task


class Cluster:
    """One cluster at the healthy design point (steady base load, no fault), stepped
    through the batch kernel as a batch of one."""

    def __init__(self, seed: int = 0, **param_overrides):
        ep = build_episode("traffic_spike", seed)
        self.params, self.states = empty_batch(1)
        self.params[0] = ep.params
        self.params[0]["load_profile"] = default_params()["load_profile"]  # no spike: healthy
        for name, value in param_overrides.items():
            self.params[0][name] = value
        self.states[0] = ep.state

    @property
    def s(self):
        """The live state record (writes go into the cluster)."""
        return self.states[0]

    @property
    def p(self):
        return self.params[0]

    def step(self, kind: int = NO_OP, node: int = 0, dest: int = 0, level: int = 0) -> list[str]:
        """Step once; return the action's error messages (as the env reports them)."""
        action = np.array([[kind, node, dest, level]], dtype=np.int64)
        step_batch_serial(self.params, self.states, action)
        return describe_errors(int(self.s["action_errors"]), action[0])

    def obs(self) -> dict:
        return build_observation(self.s)

    def snapshot(self) -> bytes:
        return self.s.tobytes()


def _down(c: Cluster, node: int) -> bool:
    return bool(c.s["failed"][node] == 1 or c.s["restart_left"][node] > 0)


def _has(errors: list[str], word: str) -> bool:
    return any(word in message for message in errors)


# --- restart ------------------------------------------------------------------------------------
@pytest.mark.parametrize("node", [DB, 3, N_NODES - 1])
def test_actions__restart_takes_node_down_for_restart_steps_then_it_serves(node):
    c = Cluster(seed=node)
    c.step()
    assert c.s["served_rps"][node] > 0
    assert c.step(RESTART, node) == []
    for k in range(RESTART_STEPS):
        if k:
            c.step()
        assert c.obs()["restarting_nodes"][node] == 1, k
        assert c.s["served_rps"][node] == 0.0 and c.s["cpu"][node] == 0.0
    c.step()
    assert c.obs()["restarting_nodes"][node] == 0
    assert not _down(c, node)
    assert c.s["served_rps"][node] > 0


@pytest.mark.parametrize("node", [DB, 4])
def test_actions__restart_clears_memory_queue_leak_and_zombie(node):
    leak = np.zeros(N_NODES)
    leak[node] = 0.02
    c = Cluster(seed=1, mem_leak_per_step=leak)
    for _ in range(6):
        c.step()
    assert c.s["mem_leaked"][node] > 0
    c.s["queue"][node] = 123.0
    c.s["zombie"][node] = int(node != DB)
    assert c.step(RESTART, node) == []
    assert c.s["mem_leaked"][node] == 0.0
    assert c.s["mem"][node] == MEM_AFTER_RESTART
    assert c.s["queue"][node] == 0.0
    assert c.s["zombie"][node] == 0
    for _ in range(RESTART_STEPS):
        c.step()
    assert not _down(c, node)
    assert c.s["mem_leaked"][node] <= leak[node] + 1e-12  # the leak starts over from zero


def test_actions__restart_brings_back_a_crashed_node():
    c = Cluster(seed=2)
    c.s["failed"][5] = 1
    c.s["auto_restart_left"][5] = 0  # no kubelet: only the agent can bring it back
    c.step()
    assert c.s["failed"][5] == 1 and c.s["served_rps"][5] == 0.0
    assert c.step(RESTART, 5) == []
    assert c.s["failed"][5] == 0
    for _ in range(RESTART_STEPS):
        c.step()
    assert c.s["served_rps"][5] > 0


def test_actions__restart_refused_while_restarting_then_during_cooldown_then_allowed():
    assert RESTART_STEPS < RESTART_COOLDOWN_STEPS, "a cooldown shorter than a restart is never observable"
    c = Cluster(seed=3)
    assert c.step(RESTART, 2) == []
    for j in range(1, RESTART_COOLDOWN_STEPS):
        before = c.s["restart_left"][2]
        errors = c.step(RESTART, 2)
        expected = "RestartInProgress" if j < RESTART_STEPS else "CooldownActive"
        assert len(errors) == 1 and errors[0].startswith(expected), (j, errors)
        assert "node-2" in errors[0]
        assert c.s["restart_left"][2] == max(0, before - 1)  # the refusal changed nothing
    assert c.step(RESTART, 2) == []
    assert c.s["restart_left"][2] > 0


def test_actions__cooldown_error_reaches_info():
    env = gym.make("DIME-v0", task="traffic_spike")
    env.reset(seed=0)
    assert env.step([RESTART, 3, 0, 0])[4]["action_errors"] == []
    info = env.step([RESTART, 3, 0, 0])[4]
    assert _has(info["action_errors"], "RestartInProgress")
    for _ in range(RESTART_STEPS - 1):
        env.step([NO_OP, 0, 0, 0])
    info = env.step([RESTART, 3, 0, 0])[4]
    assert _has(info["action_errors"], "Cooldown")
    assert int(env.unwrapped.state_record["n_invalid_actions"]) == 2


# --- reroute -----------------------------------------------------------------------------------
def test_actions__reroute_moves_weight_persistently():
    c = Cluster(seed=4)
    c.step()
    w = c.s["route_weight"].copy()
    total = w.sum()
    assert c.step(REROUTE, 2, 6) == []
    moved = REROUTE_FRACTION * w[2]
    assert c.s["route_weight"][2] == pytest.approx(w[2] - moved)
    assert c.s["route_weight"][6] == pytest.approx(w[6] + moved)
    assert c.s["route_weight"].sum() == pytest.approx(total)
    after = c.s["route_weight"].copy()
    for _ in range(5):
        c.step()
        np.testing.assert_array_equal(c.s["route_weight"], after)
        assert c.s["arrival_rps"][6] > c.s["arrival_rps"][2]


@pytest.mark.parametrize(
    "case,node,dest,setup,fragment",
    [
        ("to_failed", 2, 5, "failed", "InvalidReroute: destination node-5"),
        ("to_restarting", 2, 5, "restarting", "InvalidReroute: destination node-5"),
        ("same_node", 3, 3, None, "InvalidReroute: source and destination are both node-3"),
        ("from_db", DB, 3, None, "InvalidReroute: only worker"),
        ("to_db", 3, DB, None, "InvalidReroute: only worker"),
    ],
)
def test_actions__invalid_reroute_errors_and_changes_nothing(case, node, dest, setup, fragment):
    c = Cluster(seed=5)
    if setup == "failed":
        c.s["failed"][dest] = 1
        c.s["auto_restart_left"][dest] = 0
    elif setup == "restarting":
        c.step(RESTART, dest)
    weights = c.s["route_weight"].copy()
    errors = c.step(REROUTE, node, dest)
    assert _has(errors, fragment), errors
    np.testing.assert_array_equal(c.s["route_weight"], weights)
    assert c.s["n_invalid_actions"] == 1


# --- scale_up -----------------------------------------------------------------------------------
def _worker_arrivals(c: Cluster) -> float:
    return float(c.s["arrival_rps"][FIRST_WORKER:].sum())


def test_actions__scale_up_spends_a_credit_boots_serves_and_expires():
    c = Cluster(seed=6)
    cold, ttl = int(c.p["replica_cold_steps"]), int(c.p["replica_ttl_steps"])
    assert 0 <= cold < ttl
    credits = float(c.s["cloud_credits"])
    assert c.step(SCALE_UP) == []
    assert c.s["cloud_credits"] == credits - 1.0
    assert c.s["credits_spent"] == 1.0
    for i in range(ttl + 3):
        if i:
            assert c.step() == []
        active = int(c.obs()["active_replicas"][0])
        admitted = float(c.s["admitted_rps"])
        assert active == (1 if i < ttl else 0), i
        if cold <= i < ttl:  # warm: the replica takes its routing share of the traffic
            workers = float(c.s["route_weight"].sum())
            assert _worker_arrivals(c) == pytest.approx(admitted * workers / (workers + REPLICA_WEIGHT), rel=1e-9), i
        else:  # booting or gone: the workers get everything
            assert _worker_arrivals(c) == pytest.approx(admitted, rel=1e-9), i
    assert c.s["cloud_credits"] == credits - 1.0  # an expired replica is not refunded


def test_actions__scale_up_without_credits_is_insufficient_funds():
    c = Cluster(seed=7)
    c.s["cloud_credits"] = 0.0
    before = c.s["replica_ttl_left"].copy()
    errors = c.step(SCALE_UP)
    assert _has(errors, "InsufficientFunds")
    np.testing.assert_array_equal(c.s["replica_ttl_left"], before)
    assert c.s["cloud_credits"] == 0.0 and c.s["credits_spent"] == 0.0


def test_actions__scale_up_beyond_replica_slots_is_refused():
    c = Cluster(seed=8)
    c.s["cloud_credits"] = MAX_REPLICAS + 2.0
    for _ in range(MAX_REPLICAS):
        assert c.step(SCALE_UP) == []
    errors = c.step(SCALE_UP)
    assert _has(errors, "ScaleLimit")
    assert c.s["cloud_credits"] == 2.0
    assert int(c.obs()["active_replicas"][0]) == MAX_REPLICAS


def test_actions__scale_up_until_broke_reports_insufficient_funds_in_info():
    task = "flash_crowd"
    credits = int(get_task(task).cloud_credits)
    assert credits <= MAX_REPLICAS
    env = gym.make("DIME-v0", task=task)
    obs, _ = env.reset(seed=0)
    assert obs["cloud_budget"][0] == credits
    for _ in range(credits):
        assert env.step([SCALE_UP, 0, 0, 0])[4]["action_errors"] == []
    obs, _, _, _, info = env.step([SCALE_UP, 0, 0, 0])
    assert _has(info["action_errors"], "InsufficientFunds")
    assert obs["cloud_budget"][0] == 0.0


# --- throttle -----------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 7, 10, 19])
def test_actions__throttle_sets_rate_and_sheds_the_rest(level):
    throttled, free = Cluster(seed=9), Cluster(seed=9)
    assert throttled.step(THROTTLE, level=level) == []
    free.step()
    rate = rate_from_level(level)
    for _ in range(4):
        s = throttled.s
        assert s["throttle_rate"] == rate
        assert s["offered_rps"] == free.s["offered_rps"]  # the same clients arrive
        assert s["admitted_rps"] == pytest.approx(s["offered_rps"] * rate, rel=1e-12, abs=1e-12)
        assert s["shed_rps"] == pytest.approx(s["offered_rps"] - s["admitted_rps"], rel=1e-12, abs=1e-12)
        assert s["admitted_rps"] < free.s["admitted_rps"]
        throttled.step()
        free.step()


def test_actions__shed_traffic_burns_error_budget_every_step():
    throttled, free = Cluster(seed=10), Cluster(seed=10)
    throttled.step(THROTTLE, level=10)
    free.step()
    budgets = [float(throttled.s["error_budget"])]
    for _ in range(8):
        assert throttled.s["error_budget"] < free.s["error_budget"]
        throttled.step()
        free.step()
        budgets.append(float(throttled.s["error_budget"]))
    assert budgets[0] < ERROR_BUDGET_MAX
    assert all(b1 < b0 or b1 == 0.0 for b0, b1 in zip(budgets, budgets[1:])), budgets


@pytest.mark.parametrize(
    "case,current_level,requested_level,allowed",
    [
        ("lower_refused", 20, 10, False),
        ("lower_from_partial_refused", 14, 4, False),
        ("raise_allowed", 10, 16, True),
        ("release_allowed", 10, 20, True),
        ("same_rate_allowed", 10, 10, True),
    ],
)
def test_actions__empty_error_budget_only_allows_loosening(case, current_level, requested_level, allowed):
    c = Cluster(seed=11)
    c.s["throttle_rate"] = rate_from_level(current_level)
    c.s["error_budget"] = 0.0
    errors = c.step(THROTTLE, level=requested_level)
    if allowed:
        assert errors == []
        assert c.s["throttle_rate"] == rate_from_level(requested_level)
    else:
        assert _has(errors, "ErrorBudgetExhausted")
        assert c.s["throttle_rate"] == rate_from_level(current_level)


def test_actions__throttle_with_budget_left_may_tighten():
    c = Cluster(seed=12)
    c.s["error_budget"] = 1.0
    assert c.step(THROTTLE, level=5) == []
    assert c.s["throttle_rate"] == rate_from_level(5)


# --- query_logs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("node", range(N_NODES))
def test_actions__query_logs_returns_lines_about_the_node(node):
    env = gym.make("DIME-v0", task="zombie_node")
    env.reset(seed=0)
    _, _, _, _, info = env.step([QUERY_LOGS, node, 0, 0])
    logs = info["logs"]
    assert isinstance(logs, list) and logs
    assert all(isinstance(line, str) and f"node-{node}" in line for line in logs)
    assert "logs" not in env.step([NO_OP, node, 0, 0])[4]


def test_actions__query_logs_makes_telemetry_visible_for_a_few_steps():
    c = Cluster(seed=13, dropout_prob=1.0, dropout_recover_prob=0.0)
    c.step()
    assert np.all(c.obs()["cpu_loads"] == DROPPED_VALUE)  # every node's telemetry is gone
    assert c.step(QUERY_LOGS, 3) == []
    for k in range(QUERY_LOGS_VISIBLE_STEPS):
        if k:
            c.step()
        obs = c.obs()
        for key in ("cpu_loads", "mem_utilizations", "queue_lengths"):
            assert obs[key][3] >= 0.0, (k, key)
            assert np.all(np.delete(obs[key], 3) == DROPPED_VALUE), (k, key)
    c.step()
    assert c.obs()["cpu_loads"][3] == DROPPED_VALUE  # it drops again once the window ends


def test_actions__query_logs_is_free_of_management_cost():
    c = Cluster(seed=14)
    before = c.s.copy()
    assert c.step(QUERY_LOGS, 0) == []
    assert c.s["n_actions"] == before["n_actions"]
    assert c.s["reward_components"][REWARD_COMPONENTS.index("r_fric")] == -FRICTION_BY_KIND[QUERY_LOGS]


# --- friction ------------------------------------------------------------------------------------
# (case, prelude actions, action under test, is it invalid)
FRICTION_CASES = [
    ("no_op", [], (NO_OP, 0, 0, 0), False),
    ("restart_worker", [], (RESTART, 3, 0, 0), False),
    ("restart_db", [], (RESTART, DB, 0, 0), False),
    ("reroute", [], (REROUTE, 1, 2, 0), False),
    ("scale_up", [], (SCALE_UP, 0, 0, 0), False),
    ("throttle", [], (THROTTLE, 0, 0, 15), False),
    ("query_logs", [], (QUERY_LOGS, 4, 0, 0), False),
    ("restart_in_progress", [(RESTART, 3, 0, 0)], (RESTART, 3, 0, 0), True),
    ("db_restart_in_progress", [(RESTART, DB, 0, 0)], (RESTART, DB, 0, 0), True),
    ("reroute_same_node", [], (REROUTE, 2, 2, 0), True),
    ("reroute_from_db", [], (REROUTE, DB, 2, 0), True),
    ("reroute_to_restarting", [(RESTART, 5, 0, 0)], (REROUTE, 2, 5, 0), True),
    ("scale_up_broke", [(SCALE_UP, 0, 0, 0)] * int(get_task("flash_crowd").cloud_credits), (SCALE_UP, 0, 0, 0), True),
]


@pytest.mark.parametrize("case,prelude,action,invalid", FRICTION_CASES, ids=[c[0] for c in FRICTION_CASES])
def test_actions__friction_shows_in_r_fric(case, prelude, action, invalid):
    env = gym.make("DIME-v0", task="flash_crowd")
    env.reset(seed=0)
    for a in prelude:
        env.step(a)
    n_invalid = int(env.unwrapped.state_record["n_invalid_actions"])
    info = env.step(action)[4]
    kind, node = action[0], action[1]
    friction = FRICTION_BY_KIND[kind] + (FRICTION_DB_RESTART_EXTRA if kind == RESTART and node == DB else 0.0)
    if invalid:
        friction += FRICTION_INVALID
    assert bool(info["action_errors"]) == invalid
    assert info["reward_components"]["r_fric"] == pytest.approx(-min(0.5, friction), abs=1e-12)
    assert int(env.unwrapped.state_record["n_invalid_actions"]) == n_invalid + int(invalid)
