"""The task table, episode construction, reference solutions, the trace CSV and the graders."""

from __future__ import annotations

import math
import os
import typing

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dime_gym  # noqa: F401 - registers DIME-v0
from dime_gym import TASK_IDS, TASKS, TaskId
from dime_gym.core.actions import THROTTLE
from dime_gym.core.params import BASE_RATE_RPS
from dime_gym.core.state import PARAMS_DTYPE, STATE_DTYPE
from dime_gym.scenarios import TASKS_BY_ID, build_episode, get_task, reference_commands
from dime_gym.scenarios.graders import grade, grade_components
from dime_gym.scenarios.trace import (
    LOAD_COLUMNS,
    MIN_TRACE_STEPS,
    TRACE_SEED,
    TRACE_STEPS,
    bundled_trace,
    generate_diurnal_trace,
    load_trace_csv,
    write_trace_csv,
)
from dime_gym.commands import parse_command

TRACE_TASK = "level_5_alibaba_trace"
SEEDS = range(12)


# --- the task table ---------------------------------------------------------------------------------
def test_tasks__table_matches_task_id_literal():
    declared = typing.get_args(TaskId)
    assert len(declared) == 14
    assert len(TASKS) == 14
    assert [t.id for t in TASKS] == list(TASK_IDS)
    assert len(set(TASK_IDS)) == len(TASK_IDS)
    assert set(TASK_IDS) == set(declared)
    assert set(TASKS_BY_ID) == set(declared)


@pytest.mark.parametrize("task", TASK_IDS)
def test_tasks__record_is_complete_and_reference_parses(task):
    t = get_task(task)
    for field in ("task_hint", "mechanism", "ideal_response"):
        assert isinstance(getattr(t, field), str) and getattr(t, field).strip(), field
    assert t.reference_solution
    assert 1 <= t.episode_steps <= PARAMS_DTYPE["load_profile"].shape[0]
    assert callable(t.setup)
    facts = build_episode(task, 0).facts
    for ref in t.reference_solution:
        assert ref.anchor in facts
        parse_command(ref.command.format(**facts))


def test_tasks__unknown_id_lists_valid_ids():
    for bad in ("nope", "", None, 3):
        with pytest.raises(ValueError) as exc:
            get_task(bad)
        assert all(t in str(exc.value) for t in TASK_IDS)


@pytest.mark.parametrize("task", TASK_IDS)
def test_reference_commands__fill_every_template_and_parse(task):
    for seed in SEEDS:
        schedule = reference_commands(build_episode(task, seed))
        assert schedule
        for step, command in schedule.items():
            assert 0 <= step < get_task(task).episode_steps
            assert "{" not in command and "}" not in command
            assert parse_command(command).command  # canonical, so it round-trips


@pytest.mark.parametrize("task", TASK_IDS)
def test_reference_commands__schedule_every_reference_step(task):
    # each step of the reference solution is issued exactly once inside the episode: none
    # falls before step 0 or after the end, and no two land on the same step
    t = get_task(task)
    for seed in range(40):
        ep = build_episode(task, seed)
        schedule = reference_commands(ep)
        assert len(schedule) == len(t.reference_solution), (seed, ep.facts, schedule)


# --- build_episode ------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASK_IDS)
def test_build_episode__deterministic_per_seed(task):
    a, b = build_episode(task, 5), build_episode(task, 5)
    assert a.params.dtype == PARAMS_DTYPE and a.state.dtype == STATE_DTYPE
    assert a.params.tobytes() == b.params.tobytes()
    assert a.state.tobytes() == b.state.tobytes()
    assert a.facts == b.facts


@pytest.mark.parametrize("task", TASK_IDS)
def test_build_episode__seeds_change_the_fault(task):
    base = build_episode(task, 0)
    others = [build_episode(task, seed) for seed in range(1, 6)]
    assert any(o.params.tobytes() != base.params.tobytes() or o.facts != base.facts for o in others)
    assert all(o.state["rng"].tobytes() != base.state["rng"].tobytes() for o in others)


@pytest.mark.parametrize("task", TASK_IDS)
def test_build_episode__reset_state_is_healthy_and_observable(task):
    ep = build_episode(task, 1)
    s, p = ep.state, ep.params
    assert int(s["step"]) == 0
    assert not s["failed"].any() and not s["restart_left"].any()
    assert s["throttle_rate"] == 1.0
    assert s["cloud_credits"] == p["initial_cloud_credits"] == get_task(task).cloud_credits
    assert int(p["episode_steps"]) == get_task(task).episode_steps
    assert np.all((s["cpu"] > 0) & (s["cpu"] <= 1))
    assert s["offered_rps"] > 0 and s["latency_p99_ms"] > 0


@pytest.mark.parametrize(
    "task,options,valid",
    [
        ("traffic_spike", {"trace_path": "x.csv"}, "none"),
        ("traffic_spike", {"bogus": 1}, "none"),
        (TRACE_TASK, {"bogus": 1}, "trace_path"),
    ],
)
def test_build_episode__unknown_option_names_valid_options(task, options, valid):
    with pytest.raises(ValueError) as exc:
        build_episode(task, 0, **options)
    assert f"valid options: {valid}" in str(exc.value)
    assert sorted(options)[0] in str(exc.value)


def test_env__trace_path_rejected_for_other_tasks():
    with pytest.raises(ValueError, match=TRACE_TASK):
        gym.make("DIME-v0", task="traffic_spike", trace_path="whatever.csv")


# --- trace CSV -------------------------------------------------------------------------------------------
def test_trace__bundled_file_equals_generator():
    load = bundled_trace()
    expected = generate_diurnal_trace(TRACE_SEED, TRACE_STEPS)
    assert load.shape == (TRACE_STEPS,)
    np.testing.assert_allclose(load, expected, rtol=0, atol=1e-6)
    assert not load.flags.writeable


def test_trace__generator_is_seeded_and_nonnegative():
    a, b = generate_diurnal_trace(1, 200), generate_diurnal_trace(1, 200)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, generate_diurnal_trace(2, 200))
    assert np.all(np.isfinite(a)) and np.all(a >= 0)


def test_trace__write_then_load_round_trips(tmp_path):
    load = generate_diurnal_trace(7, MIN_TRACE_STEPS + 5)
    path = tmp_path / "t.csv"
    write_trace_csv(path, load)
    np.testing.assert_allclose(load_trace_csv(path, BASE_RATE_RPS), load, atol=1e-6)


def _rows(n, value=1.0):
    return [(step, value) for step in range(n)]


def _write(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(x) for x in r) + "\n" for r in rows))
    return path


N_OK = MIN_TRACE_STEPS + 10
# (case, header, rows, fragment the ValueError message must contain)
BAD_TRACES = [
    ("missing_step", ["t", "load_multiplier"], _rows(N_OK), "missing column 'step'"),
    ("no_load_column", ["step", "load"], _rows(N_OK), "exactly one of the columns"),
    ("both_load_columns", ["step", *LOAD_COLUMNS], [(s, 1.0, 100.0) for s in range(N_OK)], "exactly one of the columns"),
    ("steps_skip", ["step", "load_multiplier"], _rows(5) + [(6, 1.0)] + [(s, 1.0) for s in range(7, N_OK)], "expected 5"),
    ("steps_start_at_1", ["step", "load_multiplier"], [(s + 1, 1.0) for s in range(N_OK)], "expected 0"),
    ("steps_repeat", ["step", "load_multiplier"], _rows(3) + [(2, 1.0)] + [(s, 1.0) for s in range(4, N_OK)], "expected 3"),
    ("negative", ["step", "load_multiplier"], _rows(10) + [(10, -0.5)] + _rows(N_OK)[11:], "finite and >= 0"),
    ("nan", ["step", "request_rate_rps"], _rows(10) + [(10, "nan")] + _rows(N_OK)[11:], "finite and >= 0"),
    ("inf", ["step", "load_multiplier"], _rows(10) + [(10, "inf")] + _rows(N_OK)[11:], "finite and >= 0"),
    ("not_numeric", ["step", "load_multiplier"], _rows(10) + [(10, "high")] + _rows(N_OK)[11:], "not numeric"),
    ("too_few_rows", ["step", "load_multiplier"], _rows(MIN_TRACE_STEPS - 1), f"at least {MIN_TRACE_STEPS}"),
    ("empty", ["step", "load_multiplier"], [], f"at least {MIN_TRACE_STEPS}"),
]


@pytest.mark.parametrize("case,header,rows,fragment", BAD_TRACES, ids=[b[0] for b in BAD_TRACES])
def test_trace__load_rejects_bad_csv(tmp_path, case, header, rows, fragment):
    path = _write(tmp_path / f"{case}.csv", header, rows)
    with pytest.raises(ValueError) as exc:
        load_trace_csv(path, BASE_RATE_RPS)
    assert fragment in str(exc.value)
    assert str(path) in str(exc.value)


def test_trace__load_rejects_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_trace_csv(tmp_path / "absent.csv", BASE_RATE_RPS)


def test_trace__bad_csv_is_rejected_at_reset(tmp_path):
    path = _write(tmp_path / "bad.csv", ["step", "load_multiplier"], _rows(MIN_TRACE_STEPS - 1))
    env = gym.make("DIME-v0", task=TRACE_TASK, trace_path=str(path))
    with pytest.raises(ValueError, match=f"at least {MIN_TRACE_STEPS}"):
        env.reset(seed=0)


def test_trace__user_csv_with_request_rate_drives_the_offered_load(tmp_path):
    rate_rps = 3.0 * BASE_RATE_RPS
    steps = get_task(TRACE_TASK).episode_steps
    path = _write(tmp_path / "user.csv", ["step", "request_rate_rps", "comment"],
                  [(s, rate_rps, "ignored") for s in range(steps + 20)])
    np.testing.assert_allclose(load_trace_csv(path, BASE_RATE_RPS), rate_rps / BASE_RATE_RPS)

    user = gym.make("DIME-v0", task=TRACE_TASK, trace_path=str(path))
    bundled = gym.make("DIME-v0", task=TRACE_TASK)
    user.reset(seed=0)
    bundled.reset(seed=0)
    profile = user.unwrapped.episode.params["load_profile"][:steps]
    np.testing.assert_allclose(profile, rate_rps / BASE_RATE_RPS)
    assert not np.allclose(profile, bundled.unwrapped.episode.params["load_profile"][:steps])
    offered = [float(user.step([THROTTLE, 0, 0, 20])[0]["request_rate"][0]) for _ in range(10)]
    # ingress is the CSV's rate up to the (few-percent) arrival noise; client retries only add
    assert offered[0] == pytest.approx(rate_rps, rel=0.3)
    assert min(offered) >= 0.7 * rate_rps


def test_trace__window_is_a_slice_of_the_trace():
    steps = get_task(TRACE_TASK).episode_steps
    load = bundled_trace()
    for seed in SEEDS:
        ep = build_episode(TRACE_TASK, seed)
        offset = ep.facts["trace_offset"]
        assert 0 <= offset <= len(load) - steps
        np.testing.assert_array_equal(ep.params["load_profile"][:steps], load[offset:offset + steps])


# --- graders ---------------------------------------------------------------------------------------------
def _run(task: str, seed: int, policy) -> np.ndarray:
    env = gym.make("DIME-v0", task=task, with_oracle=False)
    obs, _ = env.reset(seed=seed)
    truncated = False
    while not truncated:
        obs, _, _, truncated, info = env.step(policy(obs))
        assert 0.0 <= info["score"] <= 1.0
    s = env.unwrapped.state_record
    assert info["score"] == grade(s)
    return s


@pytest.mark.parametrize("task", TASK_IDS)
def test_graders__throttle_everything_scores_zero_goodput(task):
    s = _run(task, 0, lambda obs: np.array([THROTTLE, 0, 0, 0]))
    c = grade_components(s)
    assert c["goodput"] == 0.0
    assert grade(s) == 0.0
    assert s["sum_good"] == 0.0 and s["sum_offered"] > 0


@pytest.mark.parametrize("task", TASK_IDS)
def test_graders__components_in_unit_interval(task):
    rng = np.random.default_rng(3)
    s = _run(task, 1, lambda obs: rng.integers(0, [6, 8, 8, 21]))
    for name, value in grade_components(s).items():
        assert 0.0 <= float(value) <= 1.0, name
    assert math.isfinite(grade(s))


def test_graders__batch_of_states():
    states = np.stack([_run(t, 0, lambda obs: np.zeros(4, dtype=np.int64)) for t in TASK_IDS[:3]])
    scores = grade(states)
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))


# (case, file bytes, fragment the ValueError must contain besides the path)
_GOOD_ROWS = "".join(f"{s},1.0\n" for s in range(N_OK))
HOSTILE_TRACE_FILES = [
    ("huge_field", ("step,load_multiplier\n0," + "9" * 200_000 + "\n" + _GOOD_ROWS).encode(), "row 2"),
    ("not_utf8", b"step,load_multiplier\n" + _GOOD_ROWS.encode() + b"60,\xff\xfe\n", "UTF-8"),
    ("binary", bytes(range(256)) * 10, "UTF-8"),
    ("nul_byte", ("step,load_multiplier\n0,1\x00\n" + _GOOD_ROWS).encode(), "row 2"),
    ("short_row", ("step,load_multiplier\n0\n" + _GOOD_ROWS).encode(), "row 2"),
]


@pytest.mark.parametrize("case,data,fragment", HOSTILE_TRACE_FILES, ids=[c[0] for c in HOSTILE_TRACE_FILES])
def test_trace__a_hostile_file_is_a_value_error_naming_file_and_row(tmp_path, case, data, fragment):
    path = tmp_path / f"{case}.csv"
    path.write_bytes(data)
    with pytest.raises(ValueError) as exc:
        load_trace_csv(path, BASE_RATE_RPS)
    assert fragment in str(exc.value) and str(path) in str(exc.value)


def test_trace__a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfstep,load_multiplier\n" + _GOOD_ROWS.encode())
    np.testing.assert_array_equal(load_trace_csv(path, BASE_RATE_RPS), np.ones(N_OK))


def test_trace__parsed_once_per_path_and_modification(tmp_path, monkeypatch):
    from dime_gym.scenarios import trace

    path = _write(tmp_path / "t.csv", ["step", "load_multiplier"], _rows(N_OK, 2.0))
    parses = []
    real = trace._parse_trace_csv
    monkeypatch.setattr(trace, "_parse_trace_csv", lambda *a: parses.append(a) or real(*a))
    env = gym.make("DIME-v0", task=TRACE_TASK, trace_path=str(path))
    for seed in range(5):
        env.reset(seed=seed)
    first = load_trace_csv(path, BASE_RATE_RPS)
    assert len(parses) == 1 and not first.flags.writeable  # cached, and safe to share
    _write(path, ["step", "load_multiplier"], _rows(N_OK + 1, 3.0))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a new modification time
    env.reset(seed=0)
    assert len(parses) == 2
    np.testing.assert_array_equal(load_trace_csv(path, BASE_RATE_RPS), np.full(N_OK + 1, 3.0))


def test_scenarios__healthy_test_task_runs_but_is_no_benchmark_task():
    from dime_gym.env import DimeEnv
    from dime_gym.scenarios import TEST_TASK_IDS

    assert TEST_TASK_IDS == ("healthy",)
    assert "healthy" not in TASK_IDS and all("healthy" not in env_id for env_id in gym.registry)
    env = DimeEnv(task="healthy", with_oracle=False)
    env.reset(seed=0)
    rewards = []
    for _ in range(get_task("healthy").episode_steps):
        _, reward, _, truncated, info = env.step(np.zeros(4, dtype=np.int64))
        rewards.append(reward)
    s = env.state_record
    assert truncated and info["task"] == "healthy"
    assert s["failed"].sum() == 0 and s["steps_db_up"] == s["step"] == s["steps_slo_met"]
    assert min(rewards) > 2.0  # the design point: about +2.4 a step


# --- compiled episode construction -------------------------------------------------------------------
def test_setup_hooks__the_dispatch_chain_calls_each_codes_hook():
    # run_setup_hook's if-chain must call SETUP_HOOKS[code]: compare it with the hook called directly
    from dime_gym.scenarios import TABLES
    from dime_gym.scenarios.faults import MAX_FACTS, SETUP_HOOKS, run_setup_hook

    load = bundled_trace()
    for code, hook in enumerate(SETUP_HOOKS):
        results = []
        for call in (lambda *a: run_setup_hook(code, *a), hook):
            params, states = TABLES.params_template.copy(), TABLES.state_template.copy()
            params[0]["episode_steps"] = max(int(TABLES.episode_steps[code]), 1)
            g = np.array([12345 + code], dtype=np.uint64)
            facts = np.zeros(MAX_FACTS, dtype=np.int64)
            call(g, params[0], states[0], facts, load)
            results.append((params.tobytes(), states.tobytes(), facts.tolist(), int(g[0])))
        assert results[0] == results[1], hook
        assert results[0][3] != 12345 + code or code == len(SETUP_HOOKS) - 1  # every fault draws (healthy does not)


def test_task_codes__one_hook_per_task_and_facts_fit():
    from dime_gym.scenarios import TASK_CODES, TEST_TASKS
    from dime_gym.scenarios.faults import MAX_FACTS, SETUP_HOOKS

    assert sorted(TASK_CODES.values()) == list(range(len(SETUP_HOOKS)))
    for task in (*TASKS, *TEST_TASKS):
        assert SETUP_HOOKS[TASK_CODES[task.id]] is task.setup
        assert 1 <= len(task.fact_names) <= MAX_FACTS and len(set(task.fact_names)) == len(task.fact_names)


@settings(max_examples=60, deadline=None)
@given(task=st.sampled_from(TASK_IDS), seed=st.integers(min_value=-(2**70), max_value=2**70))
def test_build_episode__any_seed_gives_valid_params_and_facts_in_range(task, seed):
    from dime_gym.core.params import validate_params
    from dime_gym.core.state import FIRST_WORKER, N_NODES

    ep = build_episode(task, seed)
    validate_params(ep.params)
    assert list(ep.facts) == list(get_task(task).fact_names)
    steps = get_task(task).episode_steps
    for name, value in ep.facts.items():
        if "node" in name or name.startswith(("hot_", "cool_", "az_")):
            assert FIRST_WORKER <= value < N_NODES, (name, value)
        elif name != "trace_offset":
            assert 0 <= value <= 2 * steps, (name, value)
    assert build_episode(task, seed + 2**64).params.tobytes() == ep.params.tobytes()  # seeds are taken mod 2**64
    schedule = reference_commands(ep)
    assert all(0 <= step < steps for step in schedule)


@pytest.mark.parametrize("task", ["healthy", "hot_shard_skew", "cascading_failure", "traffic_spike"])
def test_build_episode__reset_p99_is_the_latency_mixtures_quantile(task):
    # the reset observation's p99 is the 0.99 quantile of the same mixture a step uses (no queues
    # yet): check it against the tail of that mixture computed here in NumPy, to the grid step
    from dime_gym.core.latency import QUANTILE_STEP_MS
    from dime_gym.core.params import CPU_BACKGROUND
    from dime_gym.core.state import FIRST_WORKER

    ep = build_episode(task, 7)
    s = ep.state
    weights = s["route_weight"][FIRST_WORKER:]
    share = weights / weights.sum()
    rho = (s["cpu"][FIRST_WORKER:] - CPU_BACKGROUND) / (1 - CPU_BACKGROUND)
    db_ms = 2.0 / (1 - min(float(s["db_util"]), 0.98)) * (1 + 2.0 * float(s["io_wait"]))
    mean_ms = 3.0 / (1 - np.minimum(rho, 0.98)) + db_ms

    def tail(x):
        return float(np.sum(share * np.exp(-x / mean_ms)))

    p99 = float(s["latency_p99_ms"])
    assert tail(p99) <= 0.01 * (1 + 1e-9) and tail(p99 - QUANTILE_STEP_MS) > 0.01 * (1 - 1e-9)
    assert float(s["latency_mean_ms"]) == pytest.approx(float(np.sum(share * mean_ms)))


def test_vector_restart__equals_build_episode_from_the_row_streams_draws():
    # an autoreset starts, inside the compiled call, the episode build_episode builds from the
    # sub-env's next reset-stream draw
    from dime_gym.core.rng import as_uint64
    from dime_gym.scenarios.episodes import next_draw, reset_stream_from_seed
    from dime_gym.vector import DimeVectorEnv

    tasks = list(TASK_IDS)
    envs = DimeVectorEnv(num_envs=len(tasks), task=tasks, max_episode_steps=2)
    envs.reset(seed=40)
    for _ in range(3):  # the third step autoresets every sub-env
        envs.step(np.zeros((len(tasks), 4), dtype=np.int64))
    for b, task in enumerate(tasks):
        stream = np.array([reset_stream_from_seed(as_uint64(40 + b))], dtype=np.uint64)
        next_draw(stream, 0)  # the first episode's seed
        expected = build_episode(task, int(next_draw(stream, 0)))
        assert envs.state_records[b].tobytes() == expected.state.tobytes(), task
        assert envs.facts[b] == expected.facts
