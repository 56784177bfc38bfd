"""``benchmarks/bench_learning.py`` (the CPU learning benchmark) at toy size, and its shipped
config ``cpu_learning.yaml``; the warm start's random-answer mix in ``dime_trainer.tiny_model``."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("trl", reason="needs the training extras: pip install -e '.[train]'")

from dime_trainer.cli import CONFIG_DIR, expand_shortcuts, make_parser  # noqa: E402
from dime_trainer.rewards import DEFAULT_REWARD_WEIGHTS, build_rewards  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def parse(argv):
    return make_parser().parse_args_and_config(args=expand_shortcuts(argv))


def bench_learning():
    """The benchmark script as a module (it lives outside the package)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_learning as module
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def test_cpu_learning_config__parses_for_a_cpu_full_fine_tune():
    assert (CONFIG_DIR / "cpu_learning.yaml").exists()
    dime, grpo, model = parse(["--config", "cpu_learning", "--model_name_or_path", "some/dir"])
    assert grpo.use_cpu and not grpo.bf16 and not model.use_peft
    assert grpo.num_generations == 8 and grpo.per_device_train_batch_size % grpo.num_generations == 0
    assert grpo.save_steps == grpo.max_steps  # one checkpoint at the end: the benchmark reads its log_history
    assert grpo.chat_template_kwargs == {"enable_thinking": False}
    assert dime.tasks != "all" and dime.torch_threads == 1
    # no design in the config: dime-train uses the recipe's default rewards
    assert grpo.reward_weights is None and dime.env_reward_horizon is None
    _, weights = build_rewards({"reward_weights": grpo.reward_weights})
    assert tuple(weights) == DEFAULT_REWARD_WEIGHTS


def test_cpu_learning_config__takes_the_old_design_from_the_command_line():
    dime, grpo, _ = parse(["--config", "cpu_learning", "--model_name_or_path", "x", *bench_learning().DESIGNS["old"]])
    assert grpo.reward_weights == [1.0, 1.0, 1.0, 1.0] and dime.env_reward_horizon == 0


@pytest.mark.slow
def test_random_fraction__changes_the_imprint_targets_and_is_seeded():
    torch = pytest.importorskip("torch")
    from dime_trainer.tiny_model import build_tiny_model, build_tiny_tokenizer, imprint_answer_format

    tokenizer = build_tiny_tokenizer()
    weights = []
    for fraction in (0.0, 0.5, 0.5):
        model = build_tiny_model(tokenizer, seed=0)
        imprint_answer_format(model, tokenizer, steps=3, random_fraction=fraction, seed=0)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[1], weights[2]) and not torch.equal(weights[0], weights[1])
    with pytest.raises(ValueError):
        imprint_answer_format(build_tiny_model(tokenizer), tokenizer, steps=1, random_fraction=1.5)


@pytest.mark.slow
def test_bench_learning__toy_run_prints_the_paired_difference(tmp_path):
    """The whole pipeline (base build, dime-eval base, dime-train, dime-eval trained, compare) at
    toy size: 2 GRPO steps on one task, 2 held-out seeds cut to 3 steps."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_learning.py"), "--out", str(tmp_path), "--design", "old",
           "--max-steps", "2", "--train-tasks", "retry_storm", "--dataset-episodes", "1", "--tasks", "retry_storm",
           "--seeds", "2", "--eval-max-steps", "3", "--imprint-steps", "5", "--states-per-task", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"paired difference \(old - base\) in mean dime-eval score: [-+]\d\.\d{4} "
                     r"\(95 % CI [-+]\d\.\d{4} to [-+]\d\.\d{4}\), p = ", out), out
    assert "rewards/reward_env/mean" in out and "wall time:" in out
    assert (tmp_path / "eval" / "base.summary.json").exists() and (tmp_path / "eval" / "old.summary.json").exists()


def test_cpu_learning_config__episode_design_parses_and_fits_its_budget():
    bench = bench_learning()
    DESIGNS, EPISODE_TURNS, episode_time_lines = bench.DESIGNS, bench.EPISODE_TURNS, bench.episode_time_lines
    from dime_trainer.cli import episode_settings_of

    dime, grpo, _ = parse(["--config", "cpu_learning", "--model_name_or_path", "x", *DESIGNS["episode"]])
    settings = episode_settings_of(dime, grpo.max_completion_length)
    assert settings.turns == EPISODE_TURNS and grpo.save_steps == grpo.max_steps  # one checkpoint, at the end
    # the tiny tokenizer's user turns are at most 434 tokens: every turn fits the episode budget
    assert EPISODE_TURNS * settings.turn_max_tokens + (EPISODE_TURNS - 1) * 434 <= grpo.max_completion_length
    rows = [{"dime/episode/generation_s_per_turn": 2.0, "dime/episode/env_s_per_turn": 0.02, "dime/episode/continuation_s": 0.1}]
    assert episode_time_lines(rows) == ["episode rollouts, per batched turn: generation 2.000 s, env (step, render, tokenize) "
                                        "0.0200 s (1.0% of generation); oracle continuation 0.100 s per batch"]
    assert episode_time_lines([{"reward": 1.0}]) == []  # step mode logs no episode times
