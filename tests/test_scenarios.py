"""The task table, episode construction, reference solutions, the trace CSV and the graders."""

from __future__ import annotations

import math
import os
import typing

import gymnasium as gym
import numpy as np
import pytest

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
    assert min(rewards) > 2.0  # the design point: about +2.3 a step


def test_episode_generator__equals_numpys_seed_sequence_generator_bit_for_bit():
    # the compiled SeedSequence hash must give NumPy's generator for every seed, or seeds would
    # map to other episodes: edges of the one- and two-word encodings, negatives, random seeds
    from dime_gym.scenarios.seeding import EPISODE_STREAM, episode_generator

    draws = np.random.default_rng(0)
    seeds = [0, 1, 7, 2**32 - 1, 2**32, 2**32 + 5, 2**63 - 1, 2**64 - 1, 2**64, -1, -(2**40)]
    seeds += draws.integers(0, 2**63 - 1, 300).tolist() + draws.integers(0, 2**32, 300).tolist()
    for seed in seeds:
        expected = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, EPISODE_STREAM]))
        got = episode_generator(seed)
        assert got.bit_generator.state == expected.bit_generator.state, seed
        assert got.integers(0, 2**40, 3).tolist() == expected.integers(0, 2**40, 3).tolist(), seed
