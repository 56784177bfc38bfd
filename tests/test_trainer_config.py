"""``dime-train``'s argument parsing and shipped configs, and the training-health monitor."""

from __future__ import annotations

import logging
import pathlib

import pytest

pytest.importorskip("trl", reason="needs the training extras: pip install -e '.[train]'")

from dime_trainer.cli import CONFIG_DIR, expand_shortcuts, make_parser  # noqa: E402
from dime_trainer.monitor import TrainingHealthMonitor  # noqa: E402
from dime_trainer.rewards import FLAT_ENV_GROUPS_METRIC, UNCLOSED_THINK_METRIC  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# Overrides that let the GPU recipe be parsed on a CPU machine (GRPOConfig refuses bf16 without CUDA).
CPU_OVERRIDES = ["--bf16", "false", "--use_cpu", "true"]


def parse(argv):
    return make_parser().parse_args_and_config(args=expand_shortcuts(argv))


def test_configs__shipped_with_the_package_and_linked_at_the_repo_root():
    names = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert {"smoke.yaml", "qwen3_8b_grpo.yaml", "accelerate_zero3.yaml"} <= names
    assert (REPO / "configs" / "qwen3_8b_grpo.yaml").read_text() == (CONFIG_DIR / "qwen3_8b_grpo.yaml").read_text()


def test_qwen3_recipe__matches_the_seed():
    dime, grpo, model = parse(["--config", "configs/qwen3_8b_grpo.yaml", *CPU_OVERRIDES])
    assert model.model_name_or_path == "Qwen/Qwen3-8B" and model.dtype == "bfloat16"
    assert model.use_peft and model.lora_r == 32 and model.lora_alpha == 64
    assert set(model.lora_target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert grpo.learning_rate == 5e-6 and grpo.lr_scheduler_type == "cosine"
    assert grpo.num_generations == 4 and grpo.max_completion_length == 1024 and grpo.max_steps == 300
    assert grpo.use_vllm and grpo.vllm_mode == "colocate"
    assert grpo.chat_template_kwargs == {"enable_thinking": False}
    assert dime.tasks == "all" and dime.dataset_path


def test_qwen3_recipe__gpu_fixes():
    """Issue 11's GPU-recipe fixes, each a real GRPOConfig/ModelConfig field (the parser rejects unknown keys)."""
    dime, grpo, model = parse(["--config", "configs/qwen3_8b_grpo.yaml", *CPU_OVERRIDES])
    # untruncated sampling: vLLM's processed log-probs and the trainer's cover the same support
    assert (grpo.temperature, grpo.top_p, grpo.top_k, grpo.min_p) == (1.0, 1.0, 0, None)
    assert grpo.vllm_importance_sampling_correction
    assert grpo.mask_truncated_completions  # truncated completions out of the loss (and -3 format reward)
    assert grpo.disable_dropout and model.lora_dropout == 0.0  # old and new log-probs from the same network
    assert grpo.num_completions_to_print == 2 and grpo.log_completions
    assert grpo.vllm_max_model_length >= 2048 + grpo.max_completion_length
    # the reward design (README "Reward design"): the recipe ships build_rewards' defaults
    from dime_trainer.rewards import DEFAULT_ENV_REWARD_HORIZON, DEFAULT_REWARD_WEIGHTS

    assert dime.env_reward_horizon == DEFAULT_ENV_REWARD_HORIZON and grpo.reward_weights == list(DEFAULT_REWARD_WEIGHTS)


def test_smoke_shortcut__and_command_line_overrides():
    dime, grpo, model = parse(["--smoke", "--max_steps", "7", "--tasks", "retry_storm"])
    assert dime.tiny_model and grpo.use_cpu and not grpo.use_vllm
    assert grpo.max_steps == 7 and dime.tasks == "retry_storm"
    dime, *_ = parse(["--config", "smoke"])  # a shipped config by name
    assert dime.tiny_model


def test_parser__rejects_unknown_options():
    with pytest.raises(ValueError, match="no_such_option"):
        parse(["--smoke", "--no_such_option", "1"])


def _feed(monitor, steps, **logs):
    for step in range(steps):
        monitor.on_log(None, type("State", (), {"global_step": step})(), None, logs=dict(logs))


def test_monitor__warns_once_when_advantages_collapse(caplog):
    monitor = TrainingHealthMonitor(window=3)
    with caplog.at_level(logging.WARNING, logger="dime_trainer"):
        _feed(monitor, 2, frac_reward_zero_std=1.0)
        assert not monitor.alerts  # not a full window yet
        _feed(monitor, 5, frac_reward_zero_std=1.0)
    assert [a[1] for a in monitor.alerts] == ["advantages_collapsed"]
    assert "frac_reward_zero_std" in caplog.text and "Likely causes" in caplog.text


def test_monitor__re_arms_after_recovery():
    monitor = TrainingHealthMonitor(window=2)
    _feed(monitor, 2, frac_reward_zero_std=1.0)
    _feed(monitor, 2, frac_reward_zero_std=0.2)
    _feed(monitor, 2, frac_reward_zero_std=1.0)
    assert [a[1] for a in monitor.alerts] == ["advantages_collapsed", "advantages_collapsed"]


def test_monitor__truncation_inside_think_and_flat_env_reward():
    monitor = TrainingHealthMonitor(window=2)
    _feed(monitor, 2, **{"completions/clipped_ratio": 0.9, UNCLOSED_THINK_METRIC: 0.8, FLAT_ENV_GROUPS_METRIC: 1.0,
                         "rewards/reward_env/std": 0.7})  # batch-wide std can stay high while every group is flat
    checks = {a[1]: a[2] for a in monitor.alerts}
    assert set(checks) == {"truncated_completions", "env_reward_flat"}
    assert "unclosed <think>" in checks["truncated_completions"] and "enable_thinking" in checks["truncated_completions"]


def test_monitor__silent_on_a_healthy_run():
    monitor = TrainingHealthMonitor(window=2)
    _feed(monitor, 6, frac_reward_zero_std=0.1, **{"completions/clipped_ratio": 0.0, FLAT_ENV_GROUPS_METRIC: 0.1})
    assert monitor.alerts == []


def test_qwen3_episode_recipe__parses_and_fits_its_token_budget():
    from dime_trainer.cli import episode_settings_of
    from dime_trainer.episode_rewards import DEFAULT_EPISODE_REWARD_WEIGHTS, EPISODE_REWARD_NAMES
    from dime_trainer.rewards import build_rewards

    dime, grpo, model = parse(["--config", "qwen3_8b_episode_grpo", *CPU_OVERRIDES])
    settings = episode_settings_of(dime, grpo.max_completion_length)
    assert dime.rollout == "episode" and settings.turns == 4 and settings.continuation == "oracle"
    # K answers and K-1 user turns (<= ~350 Qwen3 tokens each) fit the episode budget, and prompt + budget vLLM's context
    assert settings.turns * settings.turn_max_tokens + (settings.turns - 1) * 350 <= grpo.max_completion_length
    assert grpo.vllm_max_model_length >= 1200 + grpo.max_completion_length
    funcs, weights = build_rewards({**vars(dime), "reward_weights": grpo.reward_weights})
    assert [f.__name__ for f in funcs] == list(EPISODE_REWARD_NAMES) and tuple(weights) == DEFAULT_EPISODE_REWARD_WEIGHTS
    assert funcs[2].discount == dime.episode_reward_discount


def test_qwen3_episode_recipe__is_the_step_recipe_but_for_the_rollout():
    step = parse(["--config", "qwen3_8b_grpo", *CPU_OVERRIDES])
    episode = parse(["--config", "qwen3_8b_episode_grpo", *CPU_OVERRIDES])
    assert vars(step[2]) == vars(episode[2])  # model and LoRA
    for name in ("learning_rate", "lr_scheduler_type", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "num_generations", "temperature", "top_p", "top_k", "min_p", "mask_truncated_completions", "disable_dropout",
                 "chat_template_kwargs", "use_vllm", "vllm_mode", "vllm_importance_sampling_correction", "seed"):
        assert getattr(step[1], name) == getattr(episode[1], name), name
    assert (step[0].tasks, step[0].dataset_path, step[0].dataset_episodes) == (episode[0].tasks, episode[0].dataset_path,
                                                                               episode[0].dataset_episodes)
