"""End to end on CPU, episode mode: ``dime-train --smoke --rollout episode`` (tiny Qwen3, LoRA,
EpisodeRollout as TRL's rollout_func, the episode rewards) trains, logs the episode rewards and
metrics, masks the environment's tokens (they get no gradient at all) and resumes."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="needs the training extras: pip install -e '.[train]'")
pytest.importorskip("trl", reason="needs the training extras: pip install -e '.[train]'")
pytest.importorskip("peft", reason="needs the training extras: pip install -e '.[train]'")

from dime_gym.text.prompts import USER_PREFIX  # noqa: E402
from dime_trainer.cli import expand_shortcuts, make_parser, train  # noqa: E402
from dime_trainer.episode_rewards import EPISODE_REWARD_NAMES  # noqa: E402
from dime_trainer.rollout import EpisodeRollout  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # trains a tiny model: deselect with -m "not slow"
# two turns of at most 48 tokens; 640 tokens hold both answers and the env's user turn (<= 434 tiny-tokenizer tokens)
EPISODE = ["--rollout", "episode", "--episode_turns", "2", "--episode_turn_max_tokens", "48", "--max_completion_length", "640"]


def run(*argv):
    dime, grpo, model = make_parser().parse_args_and_config(args=expand_shortcuts(["--smoke", *EPISODE, *argv]))
    return train(dime, grpo, model)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Two steps, a checkpoint after each; every rollout TRL asked for is kept."""
    out = tmp_path_factory.mktemp("episode")
    rollouts = []
    play = EpisodeRollout.play

    def recording_play(self, *args, **kwargs):
        result = play(self, *args, **kwargs)
        rollouts.append(result)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EpisodeRollout, "play", recording_play)
        trainer = run("--output_dir", str(out), "--max_steps", "2", "--save_steps", "1", "--dataset_path", str(out / "prompts"))
    return out, trainer, rollouts


def test_episode_train__logs_the_episode_rewards_and_metrics(first_run):
    _, trainer, rollouts = first_run
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and len(rollouts) == 2
    for entry in logs:
        assert math.isfinite(entry["loss"])
        for name in EPISODE_REWARD_NAMES:
            assert math.isfinite(entry[f"rewards/{name}/mean"])
        assert 1 <= entry["dime/episode/model_turns"] <= 2
        assert entry["dime/episode/generation_s_per_turn"] > 0 and entry["dime/episode/env_s_per_turn"] > 0
    assert "rewards/reward_env/mean" not in logs[0]  # step mode's rewards are not used


def test_episode_train__env_mask_is_zero_exactly_where_the_env_spoke(first_run):
    _, trainer, rollouts = first_run
    tokenizer = trainer.processing_class
    two_turn_rows = 0
    for out in rollouts:
        for ids, mask, turns in zip(out["completion_ids"], out["env_mask"], out["episode_model_turns"], strict=True):
            env_text = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
            model_text = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
            assert USER_PREFIX not in model_text
            if turns == 2:
                two_turn_rows += 1
                assert env_text.count(USER_PREFIX) == 1 and '"last_command": {' in env_text
    assert two_turn_rows > 0


def test_episode_train__env_tokens_never_enter_the_loss(first_run):
    """Through TRL's own scoring and loss: the loss's gradient with respect to each completion
    token's log-probability is zero on every environment token and non-zero on model tokens."""
    _, trainer, _ = first_run
    trainer.model.train()
    rows = [trainer.train_dataset[0]] * trainer.args.num_generations
    batch = trainer._generate_and_score_completions(rows)
    env = (batch["tool_mask"] == 0) & (batch["completion_mask"] == 1)
    model = (batch["tool_mask"] == 1) & (batch["completion_mask"] == 1)
    assert env.any() and model.any()
    batch["advantages"] = torch.linspace(-1.0, 1.0, len(rows)) + 0.1  # every row pushes, none is zero
    captured = {}
    compute = trainer._get_per_token_logps_and_entropies

    def keep_logps(*args, **kwargs):
        logps, entropies, aux = compute(*args, **kwargs)
        logps.retain_grad()
        captured["logps"] = logps
        return logps, entropies, aux

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "_get_per_token_logps_and_entropies", keep_logps)
        trainer.compute_loss(trainer.model, batch).backward()
    grad = captured["logps"].grad
    assert torch.count_nonzero(grad[env]) == 0
    assert torch.count_nonzero(grad[model]) == int(model.sum())
    trainer.model.zero_grad()


def test_episode_train__resumes_from_a_checkpoint(first_run):
    out, first, _ = first_run
    before = [entry for entry in first.state.log_history if "loss" in entry]
    trainer = run("--output_dir", str(out), "--max_steps", "3", "--save_steps", "10", "--dataset_path", str(out / "prompts"),
                  "--resume_from_checkpoint", str(out / "checkpoint-2"))
    after = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 3 and [entry["step"] for entry in after] == [1, 2, 3]
    assert after[:2] == before and "rewards/reward_episode_return/mean" in after[2]
