"""Gymnasium conformance of DIME-v0: check_env on every task, determinism, pickling, input
validation, episode end and the info contract."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dime_gym
from dime_gym import TASK_IDS
from dime_gym.core.actions import ACTION_NVEC
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.core.state import N_NODES
from dime_gym.env import DimeEnv
from dime_gym.scenarios import get_task

NO_OP = np.zeros(4, dtype=np.int64)


def _actions(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, ACTION_NVEC, size=(n, 4))


def _rollout(env, seed: int, actions):
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, info["reward_components"])]
    for a in actions:
        obs, r, terminated, truncated, info = env.step(a)
        out.append((obs, r, info["reward_components"]))
        if terminated or truncated:
            break
    return out


def _same_obs(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# --- registration and check_env -----------------------------------------------------------------
@pytest.mark.parametrize("task", TASK_IDS)
def test_env__check_env_passes(task):
    env = gym.make("DIME-v0", task=task)
    check_env(env.unwrapped, skip_render_check=True)
    check_env(DimeEnv(task=task, render_mode="ansi"))


@pytest.mark.parametrize("env_id", ["DIME-v0", "dime_gym:DIME-v0"])
def test_env__make_by_id(env_id):
    env = gym.make(env_id, task="retry_storm")
    obs, info = env.reset(seed=0)
    assert isinstance(env.unwrapped, DimeEnv)
    assert info["task"] == "retry_storm"
    assert env.observation_space.contains(obs)


def test_env__unknown_task_raises_at_make_listing_valid_tasks():
    with pytest.raises(ValueError) as exc:
        gym.make("DIME-v0", task="no_such_task")
    for task in TASK_IDS:
        assert task in str(exc.value)


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"task": "no_such_task"}, "traffic_spike"),  # unknown task at reset lists the valid ones
        ({"bogus": 1}, "task"),  # unknown reset option names the valid one
    ],
)
def test_env__bad_reset_options_raise(options, fragment):
    env = DimeEnv()
    with pytest.raises(ValueError, match=fragment):
        env.reset(seed=0, options=options)


def test_env__reset_option_switches_task_for_that_episode():
    env = DimeEnv(task="traffic_spike")
    _, info = env.reset(seed=0, options={"task": "zombie_node"})
    assert info["task"] == "zombie_node"
    assert info["task_hint"] == get_task("zombie_node").task_hint
    _, info = env.reset(seed=0)
    assert info["task"] == "traffic_spike"


# --- observations over random rollouts -------------------------------------------------------------
@pytest.mark.parametrize("task", TASK_IDS)
def test_env__observations_stay_in_space(task):
    env = gym.make("DIME-v0", task=task)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        for a in _actions(seed, get_task(task).episode_steps):
            obs, _, _, truncated, _ = env.step(a)
            assert env.observation_space.contains(obs), {k: v for k, v in obs.items()}
            if truncated:
                break


# --- determinism and pickling ----------------------------------------------------------------------
@pytest.mark.parametrize("task", ["traffic_spike", "black_swan_az_failure", "level_5_alibaba_trace", "autoscaler_flapping_trap"])
def test_env__same_seed_same_trajectory_different_seed_differs(task):
    actions = _actions(5, 40)
    a = _rollout(gym.make("DIME-v0", task=task), 123, actions)
    b = _rollout(gym.make("DIME-v0", task=task), 123, actions)
    c = _rollout(gym.make("DIME-v0", task=task), 124, actions)
    assert len(a) == len(b)
    for (oa, ra, ca), (ob, rb, cb) in zip(a, b):
        assert _same_obs(oa, ob)
        assert ra == rb
        assert ca == cb
    assert any(not _same_obs(oa, oc) for (oa, _, _), (oc, _, _) in zip(a, c))


def test_env__reset_without_seed_continues_the_seeded_sequence():
    env_a, env_b = DimeEnv(task="node_failure"), DimeEnv(task="node_failure")
    env_a.reset(seed=9)
    env_b.reset(seed=9)
    oa, _ = env_a.reset()
    ob, _ = env_b.reset()
    assert _same_obs(oa, ob)
    assert env_a.episode.facts == env_b.episode.facts


@pytest.mark.parametrize("make", [lambda: gym.make("DIME-v0", task="retry_storm"), lambda: DimeEnv(task="retry_storm")],
                         ids=["wrapped", "unwrapped"])
def test_env__pickle_round_trip_continues_identically(make):
    env = make()
    env.reset(seed=42)
    for a in _actions(1, 10):
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.state_record.tobytes() == env.unwrapped.state_record.tobytes()
    for a in _actions(2, 20):
        o1, r1, t1, tr1, i1 = env.step(a)
        o2, r2, t2, tr2, i2 = clone.step(a)
        assert _same_obs(o1, o2)
        assert (r1, t1, tr1) == (r2, t2, tr2)
        assert i1["reward_components"] == i2["reward_components"]
        assert i1["score"] == i2["score"]


def test_env__observations_never_share_memory_nor_change_after_later_steps():
    # observations come from slots allocated many steps at a time (ObservationSlots): each is
    # handed out once, so a kept observation is never overwritten, across slot blocks and copies
    env = DimeEnv(task="retry_storm", with_oracle=False)
    kept = [env.reset(seed=3)[0]]
    actions = _actions(4, 39)
    for a in actions[:20]:
        kept.append(env.step(a)[0])
    clone = copy.deepcopy(env)
    for a in actions[20:]:
        kept.append(env.step(a)[0])
        assert _same_obs(clone.step(a)[0], kept[-1])
    frozen = [{k: v.copy() for k, v in obs.items()} for obs in kept]
    env.reset(seed=5)
    for a in _actions(5, 39):
        env.step(a)
    assert all(_same_obs(obs, saved) for obs, saved in zip(kept, frozen))
    for a, b in zip(kept, kept[1:]):
        assert not any(np.shares_memory(x, y) for x in a.values() for y in b.values())
    assert len({id(v) for obs in kept for v in obs.values()}) == 14 * len(kept)


# --- bad input ---------------------------------------------------------------------------------
# (case, action, fragments the ValueError message must contain)
BAD_ACTIONS = [
    ("kind_too_big", [6, 0, 0, 0], ("kind", "0..5")),
    ("kind_negative", [-1, 0, 0, 0], ("kind", "0..5")),
    ("node_too_big", [0, 8, 0, 0], ("node", "0..7")),
    ("dest_too_big", [2, 1, 8, 0], ("dest", "0..7")),
    ("rate_too_big", [0, 0, 0, 21], ("rate_level", "0..20")),
    ("numpy_out_of_range", np.array([4, 0, 0, 99]), ("rate_level", "0..20")),
    ("shape_3", [1, 2, 3], ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("shape_5", np.zeros(5, dtype=np.int64), ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("shape_1x4", np.zeros((1, 4), dtype=np.int64), ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("string", "restart node-3", ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("string_list", ["1", "2", "0", "0"], ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("float_scalar", 0.5, ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("huge_float", [1e30, 0, 0, 0], ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("fractional_floats", [0.5, 0, 0, 0], ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("nan", [np.nan, 0, 0, 0], ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("none", None, ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
    ("huge_int", [2**70, 0, 0, 0], ("kind, node, dest, rate_level", "[6, 8, 8, 21]")),
]


@pytest.mark.parametrize("case,action,fragments", BAD_ACTIONS, ids=[c[0] for c in BAD_ACTIONS])
def test_env__bad_action_raises_and_leaves_state_unchanged(case, action, fragments):
    env = gym.make("DIME-v0", task="traffic_spike")
    env.reset(seed=0)
    env.step(NO_OP)
    before = env.unwrapped.state_record.tobytes()
    with pytest.raises(ValueError) as exc:
        env.step(action)
    for fragment in fragments:
        assert fragment in str(exc.value)
    assert env.unwrapped.state_record.tobytes() == before
    env.step(NO_OP)  # still usable


@pytest.mark.parametrize(
    "action",
    [[1.0, 3.0, 0.0, 0.0], (1, 3, 0, 0), np.array([1, 3, 0, 0], dtype=np.int8), np.array([1, 3, 0, 0], dtype=np.uint64)],
    ids=["integral_floats", "tuple", "int8", "uint64"],
)
def test_env__integral_action_forms_are_accepted(action):
    a, b = DimeEnv(task="traffic_spike"), DimeEnv(task="traffic_spike")
    a.reset(seed=1)
    b.reset(seed=1)
    oa, ra, *_ = a.step(action)
    ob, rb, *_ = b.step(np.array([1, 3, 0, 0], dtype=np.int64))
    assert _same_obs(oa, ob) and ra == rb


def test_env__step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        DimeEnv().step(NO_OP)
    with pytest.raises(gym.error.ResetNeeded):
        gym.make("DIME-v0").step(NO_OP)


@pytest.mark.parametrize("task", TASK_IDS)
def test_env__truncates_exactly_at_episode_steps_then_refuses_to_step(task):
    steps = get_task(task).episode_steps
    env = gym.make("DIME-v0", task=task)
    obs, _ = env.reset(seed=3)
    for t in range(1, steps + 1):
        obs, _, terminated, truncated, _ = env.step(NO_OP)
        assert not terminated
        assert truncated == (t == steps), t
        assert int(obs["step"][0]) == t
    with pytest.raises(RuntimeError, match="reset"):
        env.step(NO_OP)
    env.reset(seed=3)
    env.step(NO_OP)  # a reset starts a new episode


# --- render and info ------------------------------------------------------------------------------
def test_env__render_ansi_has_one_line_per_node():
    env = gym.make("DIME-v0", task="black_swan_az_failure", render_mode="ansi")
    env.reset(seed=0)
    for _ in range(8):
        env.step(NO_OP)
        text = env.render()
        assert isinstance(text, str)
        node_lines = [line for line in text.splitlines() if line.lstrip().startswith("node-")]
        assert len(node_lines) == N_NODES
        assert [line.split()[0] for line in node_lines] == [f"node-{i}" for i in range(N_NODES)]


def test_env__render_without_mode_returns_none_and_bad_mode_raises():
    env = DimeEnv()
    env.reset(seed=0)
    assert env.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        DimeEnv(render_mode="human")


@pytest.mark.parametrize("task", TASK_IDS)
def test_env__info_contract(task):
    env = gym.make("DIME-v0", task=task)
    _, info = env.reset(seed=0)
    infos = [info]
    for a in _actions(8, 12):
        infos.append(env.step(a)[4])
    for info in infos:
        assert info["task_hint"] == get_task(task).task_hint
        assert list(info["reward_components"]) == list(REWARD_COMPONENTS)
        assert all(isinstance(v, float) for v in info["reward_components"].values())
        assert isinstance(info["action_errors"], list)
        assert all(isinstance(m, str) for m in info["action_errors"])
        assert isinstance(info["score"], float) and 0.0 <= info["score"] <= 1.0
        oracle = info["oracle"]
        assert env.action_space.contains(np.asarray(oracle["action"], dtype=np.int64))
        assert isinstance(oracle["command"], str) and oracle["command"]
        assert 1 <= oracle["rule_id"] <= 10


def test_env__info_has_no_oracle_when_disabled():
    env = gym.make("DIME-v0", task="traffic_spike", with_oracle=False)
    _, info = env.reset(seed=0)
    assert "oracle" not in info
    assert "oracle" not in env.step(NO_OP)[4]


def test_env__public_names_resolve():
    for name in dime_gym.__all__:
        assert getattr(dime_gym, name) is not None
    assert dime_gym.DimeEnv is DimeEnv


# --- the fast path: lazy oracle info, unusual action arrays ------------------------------------------
def test_env__oracle_info_is_computed_on_read_and_equals_triage():
    import copy

    from dime_gym.env import OracleInfo
    from dime_gym.oracle import triage

    env = DimeEnv(task="zombie_node")
    env.reset(seed=4)
    for _ in range(8):
        obs, _, _, _, info = env.step(NO_OP)
    oracle = info["oracle"]
    assert isinstance(oracle, OracleInfo) and isinstance(oracle, dict)
    d = triage(obs)
    expected = {"action": np.asarray(d.action, dtype=np.int64), "command": d.command, "rule_id": d.rule_id, "rule": d.rule_name}
    assert list(oracle) == list(expected) and len(oracle) == 4
    assert oracle["command"] == expected["command"] and oracle["rule_id"] == expected["rule_id"]
    np.testing.assert_array_equal(oracle["action"], expected["action"])
    for clone in (pickle.loads(pickle.dumps(OracleInfo(obs))), copy.deepcopy(OracleInfo(obs)), dict(OracleInfo(obs))):
        assert type(clone) is dict and clone["command"] == d.command
    assert "command" in OracleInfo(obs) and repr(OracleInfo(obs)).startswith("{'action'")
    assert OracleInfo(obs).get("rule") == d.rule_name


@pytest.mark.parametrize(
    "make_action",
    [lambda a: np.asfortranarray(np.stack([a, a]))[0], lambda a: np.repeat(a, 2)[::2], lambda a: np.frombuffer(a.tobytes(), np.int64)],
    ids=["row_of_fortran", "strided", "read_only"],
)
def test_env__any_int64_array_layout_steps_like_a_contiguous_action(make_action):
    a = np.array([1, 3, 0, 0], dtype=np.int64)
    unusual = make_action(a)
    assert unusual.dtype == np.int64 and unusual.shape == (4,)
    env_a, env_b = DimeEnv(task="traffic_spike"), DimeEnv(task="traffic_spike")
    env_a.reset(seed=2)
    env_b.reset(seed=2)
    assert env_a.step(unusual)[1] == env_b.step(a)[1]
    assert env_a.state_record.tobytes() == env_b.state_record.tobytes()


def test_state_view__live_read_only_and_survives_copies():
    import copy

    env = DimeEnv(task="retry_storm")
    env.reset(seed=0)
    clone = copy.deepcopy(env)
    for e in (env, clone, pickle.loads(pickle.dumps(env))):
        e.step(np.zeros(4, dtype=np.int64))
        e.step(np.zeros(4, dtype=np.int64))
        view = e.state_view
        assert int(view["step"]) == int(e.state_record["step"]) == 2
        with pytest.raises(ValueError):
            view["step"] = 7


def test_reset__refused_options_do_not_reseed():
    env = DimeEnv(task="retry_storm")
    env.reset(seed=0)
    state = env.np_random.bit_generator.state
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=99, options={"bogus": 1})
    with pytest.raises(ValueError):
        env.reset(seed=99, options={"task": "no_such_task"})
    assert env.np_random.bit_generator.state == state


def test_env__info_literal_reads_each_entry_of_the_result():
    from dime_gym.core.batch import RESULT_COMPONENTS, RESULT_LOGS_NODE, RESULT_SCORE
    from dime_gym.env import _info

    result = tuple(range(RESULT_LOGS_NODE + 1))
    task = get_task("retry_storm")
    info = _info(task, result, ["an error"])
    assert list(info["reward_components"].items()) == [
        (name, RESULT_COMPONENTS + k) for k, name in enumerate(REWARD_COMPONENTS)]
    assert info == {"task": task.id, "task_hint": task.task_hint, "reward_components": info["reward_components"],
                    "action_errors": ["an error"], "score": RESULT_SCORE}
    assert list(info) == ["task", "task_hint", "reward_components", "action_errors", "score"]


# --- the class docstring (Gymnasium's layout) -----------------------------------------------------
def _doc_table(section: str) -> list[list[str]]:
    """Rows (cells stripped) of the markdown table under ``## <section>`` of DimeEnv's docstring."""
    import inspect

    doc = inspect.getdoc(DimeEnv)
    body = doc.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in body.splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # past the header and its rule


def test_env__docstring_example_runs_as_a_doctest():
    import doctest

    import dime_gym.env

    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(dime_gym.env.DimeEnv, "DimeEnv", module=dime_gym.env)
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted >= 8 and results.failed == 0, results


def test_env__docstring_observation_table_is_the_space():
    from dime_gym.observation import OBSERVATION_KEYS

    space = DimeEnv().observation_space
    rows = _doc_table("Observation Space")
    assert [row[0] for row in rows] == list(OBSERVATION_KEYS)
    for key, shape, dtype, low, high, _ in rows:
        box = space[key]
        assert shape == str(box.shape) and dtype == str(box.dtype), key
        lows, highs = (0, 1) if isinstance(box, gym.spaces.MultiBinary) else (box.low, box.high)
        assert np.all(lows == float(low)) and np.all(highs == float(high)), key


def test_env__docstring_action_and_argument_tables_are_the_api():
    import inspect

    from dime_gym.actions import ACTION_KINDS

    assert [(int(row[0]), row[1]) for row in _doc_table("Action Space")] == list(enumerate(ACTION_KINDS))
    parameters = list(inspect.signature(DimeEnv.__init__).parameters)[1:]
    assert [row[0] for row in _doc_table("Arguments")] == parameters
    assert [row[1].strip("`") for row in _doc_table("Arguments")] == [
        repr(inspect.signature(DimeEnv.__init__).parameters[name].default).replace("'", '"') for name in parameters]
