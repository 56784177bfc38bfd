"""``dime_gym.engine.Engine``: the one engine under the single env, the vector env and
counterfactual scoring. Rows are independent, a snapshot continues exactly, and the shells
are views of it."""

from __future__ import annotations

import numpy as np
import pytest

from dime_gym.engine import Engine
from dime_gym.env import DimeEnv
from dime_gym.snapshot import decode_snapshot

TASKS = ("healthy", "retry_storm", "zombie_node", "black_swan_az_failure")
NVEC = [6, 8, 8, 21]


def _started(tasks, seeds, max_episode_steps=None) -> Engine:
    engine = Engine(tasks, max_episode_steps=max_episode_steps)
    engine.reseed(range(len(tasks)), seeds)
    engine.restart(np.ones(len(tasks), dtype=np.bool_))
    return engine


def _engine_with_episodes(seed: int = 0) -> Engine:
    return _started(TASKS, [seed * 100 + row for row in range(len(TASKS))])


def test_engine__rows_step_as_engines_of_one():
    rng = np.random.default_rng(0)
    batch = _engine_with_episodes()
    singles = []
    for row, task in enumerate(TASKS):
        singles.append(_started([task], [row]))
    for _ in range(20):
        actions = rng.integers(0, NVEC, size=(len(TASKS), 4))
        out = batch.step(actions, np.ones(len(TASKS), dtype=np.bool_))
        for row, single in enumerate(singles):
            result, obs = single.step_one(np.ascontiguousarray(actions[row]), False)
            assert result[1] == out.rewards[row]
            for key, value in obs.items():
                np.testing.assert_array_equal(value, batch.observation(out)[key][row], err_msg=key)
    assert batch.states.tobytes() == np.concatenate([s.states for s in singles]).tobytes()


def test_engine__a_loaded_snapshot_continues_bit_for_bit_in_any_rows():
    rng = np.random.default_rng(1)
    engine = _engine_with_episodes()
    engine.step(rng.integers(0, NVEC, size=(len(TASKS), 4)), np.ones(len(TASKS), dtype=np.bool_))
    contents = decode_snapshot(engine.snapshot(1))
    copies = Engine(["healthy"] * 3)
    copies.load(contents, np.array([0, 2]))
    assert list(copies.task_ids) == ["retry_storm", "healthy", "retry_storm"]
    assert copies.facts_of(0) == copies.facts_of(2) == engine.facts_of(1) and engine.facts_of(1)
    assert copies.episode(0).state.tobytes() == contents.state.tobytes()  # a loaded episode starts at the snapshot
    k = Engine.from_snapshot(contents, 2)
    actions = rng.integers(0, NVEC, size=(5, 4))
    for a in actions:
        ref = engine.step(np.repeat(a[None], len(TASKS), axis=0), np.ones(len(TASKS), dtype=np.bool_))
        for other, rows in ((copies, [0, 2]), (k, [0, 1])):
            out = other.step(np.repeat(a[None], other.n, axis=0), np.ones(other.n, dtype=np.bool_))
            assert all(out.rewards[r] == ref.rewards[1] for r in rows)
    assert copies.states[0].tobytes() == copies.states[2].tobytes() == engine.states[1].tobytes() == k.states[1].tobytes()


def test_engine__step_limit_truncates_and_observe_steps_nothing():
    engine = _started(["healthy"], [0], max_episode_steps=3)
    assert engine.step_limit[0] == 3
    before = engine.states.tobytes()
    out = engine.observe()
    assert engine.states.tobytes() == before and out.rewards[0] == 0.0 and not out.truncated[0]
    flags = [bool(engine.step(np.zeros((1, 4), dtype=np.int64), np.ones(1, dtype=np.bool_)).truncated[0]) for _ in range(3)]
    assert flags == [False, False, True]


@pytest.mark.parametrize("mode", ["ansi", "rgb_array", None])
def test_engine__renders_what_the_env_renders(mode):
    env = DimeEnv(task="retry_storm", render_mode=mode)
    env.reset(seed=4)
    picture = env._engine.render(0, mode)
    expected = env.render()
    if mode == "rgb_array":
        np.testing.assert_array_equal(picture, expected)
    else:
        assert picture == expected
    if mode == "ansi":
        assert picture.startswith("DIME retry_storm step 0")
