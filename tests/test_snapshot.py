"""Snapshots: snapshot -> restore -> continue equals the uninterrupted run for every task at
random cut points; bad snapshots are rejected with an error that names the problem."""

from __future__ import annotations

import pickle
import struct
import zlib

import numpy as np
import pytest

from dime_gym import TASK_IDS
from dime_gym.core.actions import ACTION_NVEC
from dime_gym.core.state import PARAMS_DTYPE, STATE_DTYPE
from dime_gym.env import UNPARSABLE_ANSWER, DimeEnv
from dime_gym.scenarios import get_task, reference_commands
from dime_gym.snapshot import (
    SNAPSHOT_FORMAT_VERSION,
    decode_snapshot,
    encode_snapshot,
    restore_batch,
)


def _actions(seed: int, n: int):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, ACTION_NVEC, size=(n, 4))
    rows[rng.random(n) < 0.4, 0] = 0
    return [UNPARSABLE_ANSWER if rng.random() < 0.1 else row for row in rows]


def _trajectory(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, truncated, info["score"], tuple(info["reward_components"].values()), env.state_record.tobytes()))
        if truncated:
            break
    return out


def _same(a, b):
    assert len(a) == len(b)
    for (oa, *ra), (ob, *rb) in zip(a, b):
        assert ra == rb
        for key in oa:
            np.testing.assert_array_equal(oa[key], ob[key], err_msg=key)


@pytest.mark.parametrize("task", TASK_IDS)
def test_snapshot__restore_then_continue_equals_the_uninterrupted_run(task):
    steps = get_task(task).episode_steps
    rng = np.random.default_rng(zlib.crc32(task.encode()))  # random but reproducible cut points
    for seed in (0, 1):
        cut = int(rng.integers(0, steps))
        actions = _actions(seed + 17, steps)
        env = DimeEnv(task=task, with_oracle=False)
        env.reset(seed=seed)
        _trajectory(env, actions[:cut])
        snap = env.snapshot()
        uninterrupted = _trajectory(env, actions[cut:])
        # restore into a fresh env (of another default task), also through pickle
        for restored_snap in (snap, pickle.loads(pickle.dumps(snap))):
            other = DimeEnv(task="traffic_spike", with_oracle=False)
            obs, info = other.restore(restored_snap)
            assert info["task"] == task and int(obs["step"][0]) == cut
            _same(_trajectory(other, actions[cut:]), uninterrupted)
        # and into the same env after it has moved on
        env.restore(snap)
        _same(_trajectory(env, actions[cut:]), uninterrupted)


def test_snapshot__restored_env_keeps_the_facts_and_reference_solution():
    env = DimeEnv(task="black_swan_az_failure")
    env.reset(seed=3)
    env.step(np.zeros(4, dtype=np.int64))
    other = DimeEnv()
    other.restore(env.snapshot())
    assert other.episode.facts == env.episode.facts
    assert reference_commands(other.episode) == reference_commands(env.episode)


def test_snapshot__restore_batch_gives_identical_copies_in_one_call():
    env = DimeEnv(task="retry_storm")
    env.reset(seed=0)
    for a in _actions(1, 5):
        env.step(a)
    snap = env.snapshot()
    params, states = restore_batch(snap, 64)
    assert params.shape == states.shape == (64,)
    assert params.dtype == PARAMS_DTYPE and states.dtype == STATE_DTYPE
    assert len({p.tobytes() for p in params}) == 1 and len({s.tobytes() for s in states}) == 1
    assert states[17].tobytes() == env.state_record.tobytes()
    with pytest.raises(ValueError, match="n must be"):
        restore_batch(snap, 0)


def test_snapshot__is_compact_bytes():
    env = DimeEnv()
    env.reset(seed=0)
    snap = env.snapshot()
    assert isinstance(snap, bytes)
    assert len(snap) < PARAMS_DTYPE.itemsize + STATE_DTYPE.itemsize + 200
    assert decode_snapshot(snap).task == "traffic_spike"


# --- rejection ------------------------------------------------------------------------------------------
def _valid() -> bytes:
    env = DimeEnv(task="zombie_node")
    env.reset(seed=5)
    env.step(np.zeros(4, dtype=np.int64))
    return env.snapshot()


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x5A]) + data[offset + 1:]


HEADER = 8 + 2 + 8 + 2 + 4


def _params_offset(data: bytes) -> int:
    """Where the params record starts: after the header, the task id and the facts JSON."""
    task_length, facts_length = struct.unpack_from("<HI", data, 18)
    return HEADER + task_length + facts_length
# (case, make a bad snapshot from a valid one, fragment of the ValueError message)
BAD_SNAPSHOTS = [
    ("empty", lambda s: b"", "truncated"),
    ("header_only", lambda s: s[:HEADER], "truncated"),
    ("cut_in_state", lambda s: s[:-100], "truncated"),
    ("trailing_bytes", lambda s: s + b"\0", "trailing"),
    ("bad_magic", lambda s: b"NOTDIME!" + s[8:], "not a DIME snapshot"),
    ("flipped_state_byte", lambda s: _flip(s, len(s) - 300), "corrupted"),
    ("flipped_params_byte", lambda s: _flip(s, _params_offset(s) + 40), "corrupted"),
    ("flipped_facts_byte", lambda s: _flip(s, HEADER + 12), "corrupted"),
    ("flipped_crc", lambda s: _flip(s, len(s) - 1), "corrupted"),
    ("newer_version", lambda s: s[:8] + struct.pack("<H", SNAPSHOT_FORMAT_VERSION + 1) + s[10:], "version"),
    ("other_layout", lambda s: s[:10] + bytes(8) + s[18:], "layout"),
    ("unknown_task_with_valid_crc", lambda s: _with_crc(s[:HEADER] + b"zzzzzzzzzz" + s[HEADER + 10 : -4]), "unknown task"),
]


@pytest.mark.parametrize("case,corrupt,fragment", BAD_SNAPSHOTS, ids=[c[0] for c in BAD_SNAPSHOTS])
def test_snapshot__bad_snapshots_are_rejected_and_change_nothing(case, corrupt, fragment):
    snap = _valid()
    bad = corrupt(snap)
    assert bad != snap
    with pytest.raises(ValueError, match=fragment):
        decode_snapshot(bad)
    env = DimeEnv(task="traffic_spike")
    env.reset(seed=0)
    before = env.state_record.tobytes()
    with pytest.raises(ValueError, match=fragment):
        env.restore(bad)
    assert env.state_record.tobytes() == before and env.episode.task.id == "traffic_spike"


def test_snapshot__invalid_params_or_step_with_valid_crc_are_rejected():
    snap = decode_snapshot(_valid())
    params = snap.params.copy()
    params["retry_gain"] = 99.0
    with pytest.raises(ValueError, match="retry_gain"):
        decode_snapshot(encode_snapshot(snap.task, params, snap.state, snap.facts))
    state = snap.state.copy()
    state["step"] = 1000
    with pytest.raises(ValueError, match="step 1000"):
        decode_snapshot(encode_snapshot(snap.task, snap.params, state, snap.facts))


def test_snapshot__wrong_types_raise():
    with pytest.raises(TypeError, match="bytes"):
        decode_snapshot("DIMESNAP")
    with pytest.raises(RuntimeError, match="reset"):
        DimeEnv().snapshot()
    with pytest.raises(ValueError, match="STATE_DTYPE"):
        encode_snapshot("traffic_spike", np.zeros((), PARAMS_DTYPE), np.zeros(3))


def test_snapshot__unparsable_steps_replay_exactly():
    env = DimeEnv(task="split_brain_io_bottleneck")
    env.reset(seed=2)
    snap = env.snapshot()
    _, r1, *_ = env.step(UNPARSABLE_ANSWER)
    env.restore(snap)
    _, r2, *_ = env.step(UNPARSABLE_ANSWER)
    assert r1 == r2 and env.state_record["action_errors"] != 0


def test_decode__facts_must_be_an_object():
    env = DimeEnv(task="retry_storm")
    env.reset(seed=0)
    contents = decode_snapshot(env.snapshot())
    bad = encode_snapshot(contents.task, contents.params, contents.state, facts=[1, 2, 3])
    with pytest.raises(ValueError, match="facts must be a JSON object"):
        decode_snapshot(bad)


# --- hostile contents with a recomputed, valid CRC --------------------------------------------------
def _set(field, value, index=None):
    def change(record):
        if index is None:
            record[field] = value
        else:
            record[field][index] = value
    return change


# (case, change to the state record, field the ValueError names)
HOSTILE_STATES = [
    ("cpu_nan", _set("cpu", np.nan, 3), "cpu"),
    ("mem_inf", _set("mem", np.inf, 1), "mem"),
    ("mem_leaked_negative", _set("mem_leaked", -0.5, 2), "mem_leaked"),
    ("queue_negative", _set("queue", -5.0, 2), "queue"),
    ("queue_over_capacity", _set("queue", 1e9, 2), "queue"),
    ("route_weight_nan", _set("route_weight", np.nan, 4), "route_weight"),
    ("failed_not_a_flag", _set("failed", 2, 1), "failed"),
    ("restart_left_negative", _set("restart_left", -3, 5), "restart_left"),
    ("auto_restart_left_huge", _set("auto_restart_left", 10**6, 5), "auto_restart_left"),
    ("unknown_event", _set("last_event", 99, 4), "last_event"),
    ("replica_ttl_huge", _set("replica_ttl_left", 1000, 0), "replica_ttl_left"),
    ("throttle_over_one", _set("throttle_rate", 2.0), "throttle_rate"),
    ("cloud_credits_negative", _set("cloud_credits", -1.0), "cloud_credits"),
    ("error_budget_huge", _set("error_budget", 1e6), "error_budget"),
    ("offered_inf", _set("offered_rps", np.inf), "offered_rps"),
    ("p99_nan", _set("latency_p99_ms", np.nan), "latency_p99_ms"),
    ("p99_over_cap", _set("latency_p99_ms", 1e7), "latency_p99_ms"),
    ("reward_component_inf", _set("reward_components", -np.inf, 2), "reward_components"),
    ("last_action_kind_unknown", _set("last_action_kind", 17), "last_action_kind"),
    ("more_actions_than_steps", _set("n_actions", 10**6), "n_actions"),
    ("sum_good_nan", _set("sum_good", np.nan), "sum_good"),
]
# (case, change to the params record, field the ValueError names)
HOSTILE_PARAMS = [
    ("base_rate_inf", _set("base_rate_rps", np.inf), "base_rate_rps"),
    ("worker_capacity_nan", _set("worker_capacity_rps", np.nan), "worker_capacity_rps"),
    ("mem_leak_inf", _set("mem_leak_per_step", np.inf, 3), "mem_leak_per_step"),
    ("noise_negative", _set("arrival_noise_sigma", -1.0), "arrival_noise_sigma"),
    ("client_timeout_beyond_latency_cap", _set("client_timeout_ms", 1e9), "client_timeout_ms"),
    ("credits_nan", _set("initial_cloud_credits", np.nan), "initial_cloud_credits"),
    ("crash_loops_not_a_flag", _set("crash_loops", 5, 2), "crash_loops"),
    ("slowdown_factor_nan", _set("db_slowdown_factor", np.nan), "db_slowdown_factor"),
    ("pool_leak_inf", _set("pool_leak_per_step", np.inf), "pool_leak_per_step"),
]


@pytest.mark.parametrize("record,case,change,field", [("state", *c) for c in HOSTILE_STATES] + [("params", *c) for c in HOSTILE_PARAMS],
                         ids=[c[0] for c in HOSTILE_STATES] + [c[0] for c in HOSTILE_PARAMS])
def test_snapshot__hostile_values_with_a_valid_crc_are_rejected_and_change_nothing(record, case, change, field):
    snap = decode_snapshot(_valid())
    params, state = snap.params.copy(), snap.state.copy()
    change(state if record == "state" else params)
    bad = encode_snapshot(snap.task, params, state, snap.facts)
    with pytest.raises(ValueError, match=f"invalid episode: {record} field '{field}'"):
        decode_snapshot(bad)
    env = DimeEnv(task="traffic_spike")
    env.reset(seed=0)
    before = env.state_record.tobytes()
    with pytest.raises(ValueError, match=f"'{field}'"):
        env.restore(bad)
    assert env.state_record.tobytes() == before and env.episode.task.id == "traffic_spike"


@pytest.mark.parametrize("task", TASK_IDS)
def test_snapshot__every_state_of_random_and_reference_rollouts_passes_validation(task):
    for seed, actions in ((0, _actions(3, 200)), (1, [np.zeros(4, dtype=np.int64)] * 200)):
        env = DimeEnv(task=task, with_oracle=False)
        env.reset(seed=seed)
        decode_snapshot(env.snapshot())
        for a in actions:
            *_, truncated, _ = env.step(a)
            decode_snapshot(env.snapshot())
            if truncated:
                break


def test_decode__deeply_nested_facts_are_a_value_error():
    snap = decode_snapshot(_valid())
    body = encode_snapshot(snap.task, snap.params, snap.state, {})[:-4]
    facts = b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"
    task_length, facts_length = struct.unpack_from("<HI", body, 18)
    body = body[:18] + struct.pack("<HI", task_length, len(facts)) + body[HEADER:HEADER + task_length] + facts + \
        body[HEADER + task_length + facts_length:]
    with pytest.raises(ValueError, match="facts"):
        decode_snapshot(_with_crc(body))
