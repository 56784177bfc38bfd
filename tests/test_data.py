"""Prompt datasets: seeded, deduplicated, balanced, filtered, saved and loaded; every row's
snapshot reproduces its prompt; the env reward is consistent within a GRPO group."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("datasets", reason="needs the training extras: pip install -e '.[train]'")

from dime_gym.splits import PUBLIC_EVAL_SEEDS, TRAIN_SEED_START  # noqa: E402
from dime_gym.text import format_action  # noqa: E402
from dime_trainer.data import COLUMNS, build_prompt_dataset, load_dataset, prompt_from_row, save_dataset  # noqa: E402
from dime_trainer.rewards import reward_env  # noqa: E402

TASKS = ["retry_storm", "node_failure", "zombie_node"]


@pytest.fixture(scope="module")
def dataset():
    return build_prompt_dataset(tasks=TASKS, seeds=2, max_steps=12, progress=False)


def test_dataset__columns_and_provenance(dataset):
    assert dataset.column_names == list(COLUMNS)
    assert set(dataset["task"]) == set(TASKS)
    assert all(seed >= TRAIN_SEED_START for seed in dataset["seed"])
    for row in dataset.select(range(5)):
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["oracle_command"] == format_action(row["oracle_action"])
        assert 1 <= row["oracle_rule"] <= 10
        assert set(json.loads(row["context"])) == {"last_command", "action_errors", "logs"}


def test_dataset__same_arguments_same_dataset(dataset):
    again = build_prompt_dataset(tasks=TASKS, seeds=2, max_steps=12, progress=False)
    assert again.to_dict() == dataset.to_dict()
    other = build_prompt_dataset(tasks=TASKS, seeds=2, max_steps=12, progress=False, shuffle_seed=1)
    assert sorted(other["snapshot"]) == sorted(dataset["snapshot"]) and other["snapshot"] != dataset["snapshot"]


def test_dataset__every_snapshot_reproduces_its_prompt(dataset):
    for row in dataset:
        assert prompt_from_row(row) == row["prompt"]


def test_dataset__deduplicated(dataset):
    users = [row["prompt"][1]["content"] for row in dataset]
    assert len(users) == len(set(users))
    with_duplicates = build_prompt_dataset(tasks=["retry_storm"], seeds=[10_000, 10_000], max_steps=5, dedupe=False,
                                           progress=False)
    assert len(with_duplicates) == 2 * len(build_prompt_dataset(tasks=["retry_storm"], seeds=[10_000], max_steps=5,
                                                                progress=False))


def test_dataset__balance_and_filter():
    balanced = build_prompt_dataset(tasks=TASKS, seeds=1, balance_tasks=True, progress=False)
    counts = {task: balanced["task"].count(task) for task in TASKS}
    assert len(set(counts.values())) == 1 and min(counts.values()) > 0
    everything = build_prompt_dataset(tasks=["node_failure"], seeds=1, min_reward_gap=None, progress=False)
    strict = build_prompt_dataset(tasks=["node_failure"], seeds=1, min_reward_gap=0.3, progress=False)
    assert 0 < len(strict) < len(everything)


def test_dataset__bad_arguments():
    with pytest.raises(ValueError, match="unknown task"):
        build_prompt_dataset(tasks=["nope"], seeds=1, progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        build_prompt_dataset(tasks=TASKS, seeds=1, epsilon=2.0, progress=False)
    with pytest.warns(UserWarning, match="evaluation split"):
        build_prompt_dataset(tasks=["retry_storm"], seeds=[PUBLIC_EVAL_SEEDS[0]], max_steps=2, progress=False)


def test_dataset__save_and_load(dataset, tmp_path):
    build_args = {"tasks": TASKS, "seeds": 2, "max_steps": 12}
    save_dataset(dataset, str(tmp_path / "ds"), build_args)
    assert load_dataset(str(tmp_path / "ds")).to_dict() == dataset.to_dict()
    assert load_dataset(str(tmp_path / "ds"), expect_build_args=build_args).to_dict() == dataset.to_dict()
    with pytest.raises(ValueError, match="seeds: 2 -> 3"):
        load_dataset(str(tmp_path / "ds"), expect_build_args={**build_args, "seeds": 3})
    save_dataset(dataset.remove_columns(["snapshot"]), str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="snapshot"):
        load_dataset(str(tmp_path / "bad"))


def _answer(command: str) -> str:
    return f'<reasoning>r</reasoning><action>{{"command": "{command}"}}</action>'


def test_reward_env__identical_completions_identical_rewards(dataset):
    for row in dataset.select(range(0, len(dataset), 7)):
        completion = _answer(row["oracle_command"])
        rewards = reward_env(prompts=[None] * 4, completions=[completion] * 4, snapshot=[row["snapshot"]] * 4)
        assert len(set(rewards)) == 1


def test_reward_env__distinct_actions_rarely_tie(dataset):
    answers = [_answer(c) for c in ("no_op", "kubectl delete pod node-2", "kubectl throttle ingress --rate=0.50",
                                    "kubectl scale deployment frontend --replicas=1")]
    zero_std = 0
    for row in dataset:
        rewards = reward_env(prompts=[None] * 4, completions=answers, snapshot=[row["snapshot"]] * 4)
        zero_std += np.std(rewards) == 0.0
    assert zero_std / len(dataset) < 0.05


def test_reward_env__matches_stepping_a_restored_env(dataset):
    from dime_gym.env import UNPARSABLE_ANSWER, DimeEnv

    row = dataset[3]
    answers = [_answer(row["oracle_command"]), "gibberish", _answer("kubectl logs node-4")]
    rewards = reward_env(prompts=[None] * 3, completions=answers, snapshot=[row["snapshot"]] * 3)
    expected = []
    for action in (np.array(row["oracle_action"]), UNPARSABLE_ANSWER, np.array([5, 4, 0, 0])):
        env = DimeEnv()
        env.restore(row["snapshot"])
        expected.append(env.step(action)[1])
    assert rewards == pytest.approx(expected, abs=0)


def test_load_dataset__rejects_snapshots_from_another_build(dataset, tmp_path):
    stale = dataset.select(range(3)).map(lambda row: {"snapshot": b"NOTDIME!" + row["snapshot"][8:]})
    save_dataset(stale, str(tmp_path / "stale"))
    with pytest.raises(ValueError, match="incompatible DIME"):
        load_dataset(str(tmp_path / "stale"))


def test_load_dataset__checks_every_row_snapshot_and_names_the_bad_row(dataset, tmp_path):
    from dime_gym.snapshot import decode_snapshot, encode_snapshot

    def poison(row, index):  # a NaN CPU with a recomputed, valid CRC in row 4 only
        if index != 4:
            return {}
        contents = decode_snapshot(row["snapshot"])
        state = contents.state.copy()
        state["cpu"][2] = np.nan
        return {"snapshot": encode_snapshot(contents.task, contents.params, state, contents.facts)}

    hostile = dataset.select(range(8)).map(poison, with_indices=True)
    save_dataset(hostile, str(tmp_path / "hostile"))
    with pytest.raises(ValueError, match=r"row 4 .*state field 'cpu'"):
        load_dataset(str(tmp_path / "hostile"))
