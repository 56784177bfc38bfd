"""``render_mode="rgb_array"``: a NumPy picture of the cluster, and the Stable-Baselines3 path
that asks for it (``make_vec_env`` passes ``render_mode="rgb_array"``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dime_gym  # noqa: F401 - registers the ids
from dime_gym.core.state import N_NODES
from dime_gym.env import DimeEnv
from dime_gym.render import _STATUS_COLOURS, RGB_SHAPE, draw_cluster

NO_OP = np.zeros(4, dtype=np.int64)


def _panel_colour(img: np.ndarray, node: int) -> tuple[int, ...]:
    """The background colour at a node panel's right margin (no bar is drawn there)."""
    left = 4 + node * 51
    return tuple(int(c) for c in img[100, left + 46])


def test_render__rgb_array_is_a_fresh_hwc_uint8_picture():
    env = gym.make("DIME-v0", task="black_swan_az_failure", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == RGB_SHAPE and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 5  # a picture, not a blank frame
    for _ in range(12):
        env.step(NO_OP)
    later = env.render()
    assert not np.array_equal(first, later)  # the az failure shows
    later[:] = 0
    assert env.render().any()  # each call draws a new array


def test_render__panel_colour_is_the_node_status():
    zeros = np.zeros(N_NODES)
    failed, restarting, zombie = zeros.copy(), zeros.copy(), zeros.copy()
    failed[3], restarting[5], zombie[6] = 1, 1, 1
    img = draw_cluster(zeros + 0.4, zeros + 0.5, zeros, failed, restarting, zombie, throttle_rate=0.6,
                       error_budget=50.0, p99_ms=80.0, slo_p99_ms=200.0, step=10)
    assert _panel_colour(img, 3) == _STATUS_COLOURS["failed"]
    assert _panel_colour(img, 5) == _STATUS_COLOURS["restarting"]
    assert _panel_colour(img, 6) == _STATUS_COLOURS["zombie"]
    assert _panel_colour(img, 1) == _STATUS_COLOURS["up"]


def test_render__throttle_gauge_fills_with_the_admitted_fraction():
    zeros = np.zeros(N_NODES)

    def gauge_row(throttle):
        img = draw_cluster(zeros, zeros, zeros, zeros, zeros, zeros, throttle, 100.0, 50.0, 200.0)
        return img[184, 28:-8]  # the throttle gauge (first gauge row)

    half, full = gauge_row(0.5), gauge_row(1.0)
    green = np.array([60, 200, 90])
    assert (full == green).all(axis=1).mean() == 1.0
    assert (half == green).all(axis=1).mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("env_id", ["DIME-v0", "DIME-retry_storm-v0", "DIME-multitask-v0"])
def test_render__check_env_passes_with_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped)  # includes the render check for every declared mode


def test_render__vector_env_returns_one_picture_per_sub_env():
    envs = gym.make_vec("DIME-v0", num_envs=3, vectorization_mode="vector_entry_point", render_mode="rgb_array")
    assert envs.render() is None  # before reset
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 3 and all(f.shape == RGB_SHAPE and f.dtype == np.uint8 for f in frames)


def test_render__sb3_style_construction_works_without_sb3():
    """What ``make_vec_env`` does per sub-env: ``gym.make(id, render_mode="rgb_array")``, a seeded
    reset, steps with Python float rewards and bool flags, and ``render()``."""
    env = gym.make("DIME-retry_storm-v0", render_mode="rgb_array")
    env.reset(seed=0)
    _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert env.render().shape == RGB_SHAPE


def test_render__sb3_make_vec_env_trains_briefly():
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    sb3_check_env(DimeEnv(task="retry_storm", render_mode="rgb_array"))
    venv = VecNormalize(make_vec_env("DIME-retry_storm-v0", n_envs=2, seed=0, wrapper_class=gym.wrappers.FlattenObservation),
                        norm_obs=True, norm_reward=False)
    model = sb3.PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    frame = venv.render()
    assert frame.ndim == 3 and frame.shape[2] == 3
