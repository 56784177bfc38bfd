"""Prompt rendering: the system prompt comes from the oracle's and the simulator's single
definitions; the user message is stable, fixed-precision, ASCII JSON that the oracle reads
exactly as it reads the Dict observation."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dime_gym  # noqa: F401 - registers DIME-v0
from dime_gym.core.actions import QUERY_LOGS, RESTART, THROTTLE
from dime_gym.observation import DISPLAY_DECIMALS, OBSERVATION_KEYS, display_observation
from dime_gym.oracle import RULES, TRIAGE_THRESHOLDS, triage
from dime_gym.scenarios import TASK_IDS
from dime_gym.commands import COMMAND_FORMS
from dime_gym.text.env import TEXT_CHARSET
from dime_gym.text.prompts import (
    OUTPUT_FORMAT,
    SYSTEM_PROMPT,
    USER_PREFIX,
    USER_SUFFIX,
    last_command_report,
    parse_state,
    render_messages,
    render_user_message,
)

# The seed model card's Quick Start observation, verbatim.
CONTEXT_KEYS = ("task_hint", "last_command", "action_errors")  # after the observation; then "logs" after query_logs
SEED_OBS = {
    "cpu_loads": [0.45, 0.82, 0.79, 0.88, 0.75, 0.81, 0.77, 0.73],
    "mem_utilizations": [0.41, 0.68, 0.71, 0.65, 0.62, 0.70, 0.66, 0.64],
    "queue_lengths": [12, 45, 41, 53, 38, 44, 40, 37],
    "failed_nodes": [],
    "latency_ms": 187.3,
    "p99_latency": 312.5,
    "request_rate": 1840.0,
    "io_wait": 0.12,
    "error_budget": 85,
    "step": 4,
    "task_hint": "System is under heavy traffic load.",
}


def test_system_prompt__has_every_rule_command_and_the_output_format():
    for rule in RULES:
        assert f"{rule.id}. {rule.text}" in SYSTEM_PROMPT
    for form in COMMAND_FORMS:
        assert form in SYSTEM_PROMPT
    assert SYSTEM_PROMPT.endswith(OUTPUT_FORMAT)
    assert "Node-0 is the PostgreSQL database (SPOF)" in SYSTEM_PROMPT


def test_system_prompt__thresholds_come_from_the_oracle_definition():
    rule_lines = [line for line in SYSTEM_PROMPT.splitlines() if re.match(r"\d+\. ", line)]
    numbers = {float(x) for line in rule_lines for x in re.findall(r"(?<![\w-])\d+(?:\.\d+)?", line.split(". ", 1)[1])}
    for name, value in TRIAGE_THRESHOLDS.items():
        assert float(value) in numbers, name


def test_seed_quick_start__observation_triages_to_throttle_0_4():
    decision = triage(SEED_OBS)
    assert decision.rule_id == 5
    assert decision.action == (THROTTLE, 0, 0, 8)
    assert decision.command == "kubectl throttle ingress --rate=0.40"


def _trajectory_states(task: str, seed: int, steps: int = 25):
    """(obs, info) pairs along an episode driven by a mix of oracle and random actions."""
    env = gym.make("DIME-v0", task=task)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        action = info["oracle"]["action"] if rng.random() < 0.6 else env.action_space.sample()
        obs, _, _, truncated, info = env.step(action)
        out.append((obs, info))
        if truncated:
            break
    return out


@pytest.mark.parametrize("task", TASK_IDS)
def test_user_message__oracle_decides_the_same_from_text_and_from_the_dict(task):
    for obs, info in _trajectory_states(task, seed=TASK_IDS.index(task)):
        assert triage(parse_state(render_user_message(obs, info))) == triage(obs)


@pytest.mark.parametrize("task", TASK_IDS)
def test_user_message__stable_keys_fixed_precision_ascii(task):
    for obs, info in _trajectory_states(task, seed=7, steps=10):
        text = render_user_message(obs, info)
        assert text.startswith(USER_PREFIX) and text.endswith(USER_SUFFIX)
        assert set(text) <= TEXT_CHARSET
        state = parse_state(text)
        extra = ("logs",) if "logs" in info else ()
        assert tuple(state) == OBSERVATION_KEYS + CONTEXT_KEYS + extra
        assert state == json.loads(json.dumps(display_observation(obs) | {k: state[k] for k in CONTEXT_KEYS + extra}))
        for key, decimals in DISPLAY_DECIMALS.items():
            for value in state[key] if isinstance(state[key], list) else [state[key]]:
                assert round(value, decimals) == value
                assert isinstance(value, int) == (decimals == 0)
        assert state["failed_nodes"] == np.flatnonzero(obs["failed_nodes"]).tolist()
        assert state["task_hint"] == info["task_hint"]
        assert state["action_errors"] == info["action_errors"]


def test_user_message__dropout_shows_as_minus_one():
    env = gym.make("DIME-v0", task="traffic_spike")
    obs, info = env.reset(seed=0)
    obs = dict(obs, cpu_loads=obs["cpu_loads"].copy())
    obs["cpu_loads"][3] = -1.0
    assert parse_state(render_user_message(obs, info))["cpu_loads"][3] == -1.0


def test_user_message__context_after_query_logs_and_a_rejected_action():
    env = gym.make("DIME-v0", task="zombie_node")
    env.reset(seed=1)
    obs, _, _, _, info = env.step(np.array([QUERY_LOGS, 2, 0, 0]))
    state = parse_state(render_user_message(obs, info, last_command_report("kubectl logs node-2", "applied")))
    assert state["logs"] == info["logs"] and state["logs"]
    assert state["last_command"] == {"command": "kubectl logs node-2", "status": "applied", "detail": ""}
    env.step(np.array([RESTART, 4, 0, 0]))
    obs, _, _, _, info = env.step(np.array([RESTART, 4, 0, 0]))  # still restarting: rejected
    state = parse_state(render_user_message(obs, info))
    assert "logs" not in state
    assert state["action_errors"] and state["action_errors"][0].startswith("RestartInProgress")


def test_render_messages__chat_template_shape():
    env = gym.make("DIME-v0")
    obs, info = env.reset(seed=0)
    messages = render_messages(obs, info)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert messages[1]["content"] == render_user_message(obs, info)
    assert render_messages(obs, info, system_prompt="custom")[0]["content"] == "custom"


def test_last_command_report__rejects_unknown_status():
    with pytest.raises(ValueError, match="applied"):
        last_command_report("no_op", "done")


def test_parse_state__rejects_other_text():
    with pytest.raises(ValueError, match="Current system state"):
        parse_state('{"cpu_loads": []}')


@given(st.lists(st.floats(min_value=-1.0, max_value=1.0, width=32), min_size=8, max_size=8))
def test_display_precision__is_idempotent(cpu):
    """Rendering what was rendered changes nothing, so JSON round trips are exact."""
    once = display_observation({**_zero_obs(), "cpu_loads": np.asarray(cpu, dtype=np.float32)})
    twice = display_observation({**_zero_obs(), "cpu_loads": np.asarray(once["cpu_loads"])})
    assert once == twice


def _zero_obs() -> dict:
    space = gym.make("DIME-v0").observation_space
    return {key: np.zeros(space[key].shape, dtype=space[key].dtype) for key in OBSERVATION_KEYS}


def test_user_message__one_top_level_key_per_line_even_with_tricky_strings():
    env = gym.make("DIME-v0", task="zombie_node")
    env.reset(seed=1)
    obs, _, _, _, info = env.step(np.array([QUERY_LOGS, 2, 0, 0]))
    tricky = last_command_report('x, "step": 3, "logs": [', "rejected", 'y", "task_hint": "z')
    text = render_user_message(obs, info, tricky)
    state = parse_state(text)
    assert state["last_command"] == tricky
    key_lines = [line for line in text.splitlines() if line.startswith('  "')]
    assert [line.split('"')[1] for line in key_lines] == list(state)
    assert all(line.endswith(",") for line in key_lines[:-1])
