"""DimeVectorEnv: registration, spaces, trajectories identical to Gymnasium's SyncVectorEnv of
DimeEnv (mixed tasks, across autoresets), both autoreset modes, seeding, infos, snapshots."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from dime_gym import TASK_IDS
from dime_gym.core.actions import ACTION_NVEC, UNPARSABLE
from dime_gym.core.batch import PARALLEL_MIN_BATCH
from dime_gym.core.reward import REWARD_COMPONENTS
from dime_gym.env import UNPARSABLE_ANSWER, DimeEnv
from dime_gym.scenarios import get_task
from dime_gym.vector import DimeVectorEnv


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.integers(0, ACTION_NVEC, size=(n, 4))
    a[rng.random(n) < 0.4, 0] = 0
    return a


def _sync(tasks, autoreset_mode=AutoresetMode.NEXT_STEP) -> SyncVectorEnv:
    return SyncVectorEnv([lambda t=t: DimeEnv(task=t, with_oracle=False) for t in tasks], autoreset_mode=autoreset_mode)


def _assert_same_step(ours, theirs, where):
    obs_a, obs_b = ours[0], theirs[0]
    assert obs_a.keys() == obs_b.keys()
    for key in obs_a:
        assert obs_a[key].dtype == obs_b[key].dtype, (where, key)
        np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=f"{where} {key}")
    if len(ours) == 5:
        for k in (1, 2, 3):
            np.testing.assert_array_equal(ours[k], theirs[k], err_msg=f"{where} item {k}")
    info_a, info_b = ours[-1], theirs[-1]
    for name in REWARD_COMPONENTS:
        np.testing.assert_array_equal(info_a["reward_components"][name], info_b["reward_components"][name], err_msg=name)
    np.testing.assert_array_equal(info_a["score"], info_b["score"], err_msg=f"{where} score")
    np.testing.assert_array_equal(info_a["task"], info_b["task"])


# --- registration and spaces --------------------------------------------------------------------------
def test_vector__make_vec_builds_the_native_vector_env():
    envs = gym.make_vec("DIME-v0", num_envs=3, vectorization_mode="vector_entry_point", task="zombie_node")
    assert isinstance(envs.unwrapped, DimeVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.tasks == ("zombie_node",) * 3
    obs, infos = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert envs.single_observation_space == DimeEnv().observation_space
    assert envs.action_space.shape == (3, 4) and envs.action_space.dtype == np.int64
    sample = envs.action_space.sample()
    obs, rewards, terminations, truncations, infos = envs.step(sample)
    assert envs.observation_space.contains(obs)
    assert rewards.shape == (3,) and rewards.dtype == np.float64
    assert terminations.dtype == np.bool_ and truncations.dtype == np.bool_ and not terminations.any()


def test_vector__infos_are_arrays_with_masks():
    envs = DimeVectorEnv(num_envs=4, task=["retry_storm", "zombie_node"] * 2)
    envs.reset(seed=1)
    _, _, _, _, infos = envs.step(np.array([[4, 0, 0, 99 % 21], [1, 3, 0, 0], [UNPARSABLE, 0, 0, 0], [0, 0, 0, 0]]))
    assert set(infos) == {"reward_components", "_reward_components", "score", "_score", "action_errors",
                          "_action_errors", "task", "_task"}
    assert list(infos["reward_components"]) == list(REWARD_COMPONENTS)
    assert all(v.shape == (4,) and v.dtype == np.float64 for v in infos["reward_components"].values())
    assert infos["action_errors"].dtype == np.int64 and infos["action_errors"][2] != 0  # unparsable is charged
    assert infos["_score"].all() and infos["task"].tolist() == ["retry_storm", "zombie_node"] * 2
    assert np.all((infos["score"] >= 0) & (infos["score"] <= 1))


def test_vector__observations_are_fresh_arrays_every_call():
    envs = DimeVectorEnv(num_envs=2)
    first, _ = envs.reset(seed=0)
    second = envs.step(np.zeros((2, 4), dtype=np.int64))[0]
    for key in first:
        assert first[key].flags.c_contiguous
        assert not np.shares_memory(first[key], second[key]), key


# --- equality with SyncVectorEnv ----------------------------------------------------------------------
def test_vector__matches_sync_vector_env_of_dime_env_across_autoresets():
    tasks = list(TASK_IDS)
    ours, theirs = DimeVectorEnv(num_envs=len(tasks), task=tasks), _sync(tasks)
    _assert_same_step(ours.reset(seed=42), theirs.reset(seed=42), "reset")
    rng = np.random.default_rng(0)
    truncated_seen = 0
    for t in range(125):  # every task's episode (40-60 steps) ends and restarts at least once
        actions = _actions(rng, len(tasks))
        a, b = ours.step(actions), theirs.step(actions)
        _assert_same_step(a, b, f"step {t}")
        truncated_seen += int(a[3].sum())
    assert truncated_seen >= 2 * len(tasks)


def test_vector__unparsable_rows_match_dime_env_unparsable_answer():
    ours = DimeVectorEnv(num_envs=2, task="flash_crowd")
    ours.reset(seed=3)
    singles = [DimeEnv(task="flash_crowd", with_oracle=False) for _ in range(2)]
    for i, env in enumerate(singles):
        env.reset(seed=3 + i)
    actions = np.array([[UNPARSABLE, 0, 0, 0], [3, 0, 0, 0]])
    obs, rewards, _, _, infos = ours.step(actions)
    for i, env in enumerate(singles):
        s_obs, s_reward, *_ = env.step(UNPARSABLE_ANSWER if i == 0 else actions[i])
        assert s_reward == rewards[i]
        assert ours.state_records[i].tobytes() == env.state_record.tobytes()


def test_vector__parallel_and_serial_kernels_give_identical_runs():
    tasks = [TASK_IDS[i % len(TASK_IDS)] for i in range(80)]
    runs = []
    for parallel in (False, True):
        envs = DimeVectorEnv(num_envs=80, task=tasks, parallel=parallel)
        envs.reset(seed=9)
        envs.reset(options={"task": ["healthy"] * 80, "reset_mask": np.arange(80) % 3 == 0})
        assert envs.tasks == tuple("healthy" if i % 3 == 0 else t for i, t in enumerate(tasks))
        rng = np.random.default_rng(1)
        for _ in range(70):  # every episode ends and autoresets back to the constructor's task
            _, _, _, _, infos = envs.step(_actions(rng, 80))
        assert envs.tasks == tuple(tasks) and infos["task"].tolist() == tasks
        runs.append(envs.state_records.tobytes())
    assert runs[0] == runs[1]


# --- autoreset modes ------------------------------------------------------------------------------------
def test_vector__next_step_autoreset_ignores_the_action_and_starts_a_new_episode():
    steps = get_task("zombie_node").episode_steps
    envs = DimeVectorEnv(num_envs=2, task="zombie_node")
    envs.reset(seed=5)
    noop = np.zeros((2, 4), dtype=np.int64)
    for t in range(1, steps + 1):
        obs, rewards, _, truncations, _ = envs.step(noop)
        assert truncations.tolist() == [t == steps] * 2
    assert obs["step"][:, 0].tolist() == [steps, steps]
    restart = np.array([[1, 2, 0, 0], [1, 2, 0, 0]])
    obs, rewards, terminations, truncations, infos = envs.step(restart)  # the reset step
    assert obs["step"][:, 0].tolist() == [0, 0]
    assert rewards.tolist() == [0.0, 0.0] and not truncations.any() and not terminations.any()
    assert infos["action_errors"].tolist() == [0, 0] and infos["score"].tolist() == [1.0, 1.0]
    assert envs.state_records["n_actions"].tolist() == [0, 0]  # the restart was not applied
    obs, *_ = envs.step(noop)
    assert obs["step"][:, 0].tolist() == [1, 1]


def test_vector__max_episode_steps_truncates_earlier():
    envs = DimeVectorEnv(num_envs=2, task="traffic_spike", max_episode_steps=5)
    envs.reset(seed=0)
    flags = [envs.step(np.zeros((2, 4), dtype=np.int64))[3].tolist() for _ in range(6)]
    assert flags == [[False, False]] * 4 + [[True, True], [False, False]]


def test_vector__disabled_mode_needs_an_explicit_reset_mask():
    steps = get_task("retry_storm").episode_steps
    envs = DimeVectorEnv(num_envs=3, task="retry_storm", autoreset_mode="DISABLED")
    sync = _sync(["retry_storm"] * 3, AutoresetMode.DISABLED)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    _assert_same_step(envs.reset(seed=1), sync.reset(seed=1), "reset")
    rng = np.random.default_rng(2)
    for _ in range(steps):
        actions = _actions(rng, 3)
        _assert_same_step(envs.step(actions), sync.step(actions), "step")
    with pytest.raises(RuntimeError, match="reset_mask"):
        envs.step(np.zeros((3, 4), dtype=np.int64))
    mask = np.array([True, True, True])
    _assert_same_step(envs.reset(options={"reset_mask": mask}), sync.reset(options={"reset_mask": mask}), "masked reset")
    actions = _actions(rng, 3)
    _assert_same_step(envs.step(actions), sync.step(actions), "after reset")


def test_vector__reset_mask_resets_only_the_masked_sub_envs():
    envs = DimeVectorEnv(num_envs=3, task="hot_shard_skew", autoreset_mode=AutoresetMode.DISABLED)
    envs.reset(seed=4)
    for _ in range(3):
        envs.step(np.zeros((3, 4), dtype=np.int64))
    before = envs.state_records
    obs, infos = envs.reset(options={"reset_mask": np.array([False, True, False])})
    after = envs.state_records
    assert after[0].tobytes() == before[0].tobytes() and after[2].tobytes() == before[2].tobytes()
    assert after[1]["step"] == 0 and obs["step"][:, 0].tolist() == [3, 0, 3]
    assert infos["_score"].tolist() == [False, True, False]


def test_vector__reset_option_switches_tasks_of_the_reset_sub_envs():
    envs = DimeVectorEnv(num_envs=2, task="traffic_spike")
    envs.reset(seed=0)
    envs.reset(options={"task": ["zombie_node", "node_failure"], "reset_mask": np.array([True, False])})
    assert envs.tasks == ("zombie_node", "traffic_spike")


# --- seeding --------------------------------------------------------------------------------------------
def test_vector__seeding_is_deterministic_and_per_sub_env():
    def run(seed):
        envs = DimeVectorEnv(num_envs=3, task="level_5_alibaba_trace")
        envs.reset(seed=seed)
        rng = np.random.default_rng(0)
        for _ in range(70):  # through an autoreset: later episodes come from each sub-env's generator
            envs.step(_actions(rng, 3))
        return envs.state_records.tobytes()

    assert run(7) == run(7)
    assert run(7) != run(8)
    a = DimeVectorEnv(num_envs=2, task="traffic_spike")
    b = DimeVectorEnv(num_envs=2, task="traffic_spike")
    a.reset(seed=10)
    b.reset(seed=[10, 11])
    assert a.state_records.tobytes() == b.state_records.tobytes()
    single = DimeEnv(task="traffic_spike")
    single.reset(seed=11)
    assert a.state_records[1].tobytes() == single.state_record.tobytes()


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"task": "no_such_task"}, "valid tasks"),
        ({"task": ["traffic_spike"]}, "one per sub-env"),
        ({"autoreset_mode": AutoresetMode.SAME_STEP}, "not supported"),
        ({"render_mode": "human"}, "render_mode"),
        ({"trace_path": "x.csv"}, "trace_path"),
        ({"num_envs": 0}, "num_envs"),
        ({"with_oracle": True}, "oracle"),
    ],
)
def test_vector__bad_construction_raises(kwargs, fragment):
    kwargs = {"num_envs": 2, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        DimeVectorEnv(**kwargs)


def test_vector__bad_steps_and_resets_raise():
    envs = DimeVectorEnv(num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((2, 4), dtype=np.int64))
    envs.reset(seed=0)
    before = envs.state_records.tobytes()
    with pytest.raises(ValueError, match=r"actions\[1\] field node=9"):
        envs.step(np.array([[0, 0, 0, 0], [1, 9, 0, 0]]))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        envs.step(np.zeros((3, 4), dtype=np.int64))
    assert envs.state_records.tobytes() == before
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="unknown reset option"):
        envs.reset(options={"bogus": 1})


# --- snapshots, render, pickling --------------------------------------------------------------------------
def test_vector__restore_loads_one_snapshot_into_many_sub_envs():
    single = DimeEnv(task="connection_pool_deadlock", with_oracle=False)
    single.reset(seed=2)
    rng = np.random.default_rng(4)
    for a in _actions(rng, 6):
        single.step(a)
    snap = single.snapshot()
    envs = DimeVectorEnv(num_envs=4, task="traffic_spike")
    envs.reset(seed=0)
    obs, infos = envs.restore(snap, [1, 3])
    assert envs.tasks == ("traffic_spike", "connection_pool_deadlock", "traffic_spike", "connection_pool_deadlock")
    assert infos["_score"].tolist() == [False, True, False, True]
    assert obs["step"][:, 0].tolist() == [0, 6, 0, 6]
    assert envs.snapshot(1) == snap
    actions = np.zeros((4, 4), dtype=np.int64)
    for a in _actions(rng, 10):
        actions[1] = actions[3] = a
        _, rewards, *_ = envs.step(actions)
        _, reward, *_ = single.step(a)
        assert rewards[1] == rewards[3] == reward
    assert envs.state_records[1].tobytes() == single.state_record.tobytes()


def test_vector__render_ansi_gives_one_picture_per_sub_env():
    envs = DimeVectorEnv(num_envs=2, render_mode="ansi")
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 2 and all("node-7" in f for f in frames)
    assert DimeVectorEnv(num_envs=2).render() is None


def test_vector__pickle_round_trip_continues_identically():
    envs = DimeVectorEnv(num_envs=3, task=["zombie_node", "retry_storm", "traffic_spike"])
    envs.reset(seed=6)
    clone = pickle.loads(pickle.dumps(envs))
    rng = np.random.default_rng(8)
    for _ in range(45):
        actions = _actions(rng, 3)
        a, b = envs.step(actions), clone.step(actions)
        np.testing.assert_array_equal(a[1], b[1])
    assert envs.state_records.tobytes() == clone.state_records.tobytes()


def test_vector__gymnasium_vector_wrappers_read_its_autoreset_mode():
    steps = get_task("traffic_spike").episode_steps
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec("DIME-v0", num_envs=2, vectorization_mode="vector_entry_point", task="traffic_spike"))
    envs.reset(seed=0)
    total = np.zeros(2)
    for _ in range(steps):
        _, rewards, _, truncations, infos = envs.step(np.zeros((2, 4), dtype=np.int64))
        total += rewards
    assert truncations.all() and infos["_episode"].all()
    assert infos["episode"]["l"].tolist() == [steps, steps]
    np.testing.assert_allclose(infos["episode"]["r"], total)


def test_reset__a_refused_reset_changes_nothing():
    envs = DimeVectorEnv(num_envs=3, task="traffic_spike")
    envs.reset(seed=1)
    envs.step(np.zeros((3, 4), dtype=np.int64))
    before = envs.state_records.tobytes(), envs.tasks
    with pytest.raises(gym.error.Error, match="Seed"):
        envs.reset(seed=[5, 6, -1], options={"task": "zombie_node"})  # the last seed is invalid
    with pytest.raises(ValueError, match="unknown reset option"):
        envs.reset(seed=9, options={"bogus": 1})
    assert (envs.state_records.tobytes(), envs.tasks) == before


def test_reset__task_option_lasts_one_episode_like_dime_env():
    envs = DimeVectorEnv(num_envs=1, task="traffic_spike")
    envs.reset(seed=0, options={"task": "zombie_node"})
    assert envs.tasks == ("zombie_node",)
    truncated = np.zeros(1, dtype=bool)
    while not truncated[0]:
        _, _, _, truncated, infos = envs.step(np.zeros((1, 4), dtype=np.int64))
        assert infos["task"].tolist() == ["zombie_node"]
    _, _, _, _, infos = envs.step(np.zeros((1, 4), dtype=np.int64))  # NEXT_STEP autoreset
    assert envs.tasks == ("traffic_spike",) and infos["task"].tolist() == ["traffic_spike"]
    with pytest.raises(ValueError, match="read-only"):  # shared between steps: not writeable
        infos["task"][0] = "node_failure"


def test_vector__a_step_reads_the_trace_file_only_when_an_episode_starts(tmp_path):
    from dime_gym.scenarios.trace import bundled_trace, write_trace_csv

    trace = tmp_path / "trace.csv"
    write_trace_csv(trace, bundled_trace())
    envs = DimeVectorEnv(num_envs=2, task="level_5_alibaba_trace", trace_path=str(trace))
    envs.reset(seed=0)
    trace.unlink()  # steps inside the episode must not touch the file
    truncated = np.zeros(2, dtype=bool)
    while not truncated.all():
        _, _, _, truncated, _ = envs.step(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="does not exist"):  # the autoreset starts a new episode: it reads the file
        envs.step(np.zeros((2, 4), dtype=np.int64))


def test_restore__bad_indices_change_nothing():
    envs = DimeVectorEnv(num_envs=2, task="retry_storm")
    envs.reset(seed=0)
    snap = envs.snapshot(0)
    envs.step(np.zeros((2, 4), dtype=np.int64))
    before = envs.state_records.tobytes()
    with pytest.raises(TypeError):
        envs.restore(snap, 1.7)
    with pytest.raises(IndexError):
        envs.restore(snap, [0, 5])
    with pytest.raises(ValueError):
        envs.restore(snap[:-1], 0)
    assert envs.state_records.tobytes() == before


def test_restore__before_the_first_reset_must_cover_every_sub_env():
    env = DimeEnv(task="retry_storm")
    env.reset(seed=4)
    snap = env.snapshot()
    envs = DimeVectorEnv(num_envs=3, task="retry_storm")
    with pytest.raises(RuntimeError, match="reset"):
        envs.restore(snap, [0])
    obs, _ = envs.restore(snap)  # all sub-envs: a valid start without reset()
    _, rewards, *_ = envs.step(np.zeros((3, 4), dtype=np.int64))
    assert len(set(rewards.tolist())) == 1 and rewards[0] == env.step(np.zeros(4, dtype=np.int64))[1]


def test_kernel_chooser__times_both_paths_then_runs_the_faster_and_probes_the_other():
    from dime_gym.engine import KernelChooser

    chooser = KernelChooser(probe_every=10, warmup=1)
    seconds = {False: 1.0, True: 5.0}  # a loaded machine: the prange kernel waits at its barrier
    runs = []
    for _ in range(40):
        parallel = chooser.choose()
        runs.append(parallel)
        chooser.record(parallel, seconds[parallel])
    assert runs[:6] == [False] * 3 + [True] * 3  # warm-up + 2 timed calls of each path first
    assert runs[6:].count(True) == 4 and not chooser.faster()  # then serial; parallel on calls 10, 20, 30, 40
    seconds = {False: 1.0, True: 0.5}  # the load went away: the probes notice
    for _ in range(40):
        parallel = chooser.choose()
        chooser.record(parallel, seconds[parallel])
    assert chooser.faster() and chooser.choose()


def test_kernel_chooser__one_stalled_call_does_not_flip_the_choice_but_a_lasting_slowdown_does():
    from dime_gym.engine import KernelChooser

    chooser = KernelChooser(probe_every=1000, warmup=0)
    for parallel in (False, False, True, True):  # both timed: parallel 0.5, serial 1.0
        assert chooser.choose() == parallel
        chooser.record(parallel, 0.5 if parallel else 1.0)
    assert chooser.choose()
    chooser.record(True, 20.0)  # the VM stalled one call
    for _ in range(3):
        assert chooser.choose()  # still the faster kernel
        chooser.record(True, 0.5)
    assert chooser.choose()
    chooser.record(True, 5.0)  # another process now holds a core: every parallel call waits
    assert chooser.choose()  # one slow call is not yet a pattern
    chooser.record(True, 5.0)
    assert not chooser.choose()  # two of the last three are


def test_vector__chosen_kernels_give_the_forced_kernels_run():
    n = PARALLEL_MIN_BATCH
    tasks = [TASK_IDS[i % len(TASK_IDS)] for i in range(n)]
    runs = []
    for parallel in (None, False):
        envs = DimeVectorEnv(num_envs=n, task=tasks, parallel=parallel)
        assert (envs._chooser is not None) == (parallel is None)
        envs.reset(seed=9)
        rng = np.random.default_rng(1)
        rewards = [envs.step(_actions(rng, n))[1] for _ in range(60)]  # warm-up, timing, episode ends
        runs.append((envs.state_records.tobytes(), np.array(rewards).tobytes()))
    assert runs[0] == runs[1]
