"""End to end on CPU: ``dime-train --smoke`` (tiny Qwen3 built in code, LoRA, the four DIME
rewards) trains, logs finite losses and rewards, saves an adapter that reloads to the same
logits, and resumes from a checkpoint."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="needs the training extras: pip install -e '.[train]'")
pytest.importorskip("trl", reason="needs the training extras: pip install -e '.[train]'")
pytest.importorskip("peft", reason="needs the training extras: pip install -e '.[train]'")

from dime_trainer.cli import expand_shortcuts, make_parser, train  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # trains a tiny model: deselect with -m "not slow"


def run(*argv):
    dime, grpo, model = make_parser().parse_args_and_config(args=expand_shortcuts(["--smoke", *argv]))
    return train(dime, grpo, model)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    trainer = run("--output_dir", str(out), "--max_steps", "2", "--save_steps", "1", "--dataset_path", str(out / "prompts"))
    return out, trainer


def test_smoke__trains_with_finite_loss_and_all_rewards(first_run):
    out, trainer = first_run
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert math.isfinite(entry["loss"])
        for name in ("reward_format", "reward_validity", "reward_env", "reward_triage"):
            assert math.isfinite(entry[f"rewards/{name}/mean"])
        assert "dime/env/r_topo" in entry
    # the imprinted tiny model samples varied answers, so GRPO groups carry a learning signal
    assert all(entry["frac_reward_zero_std"] < 1 for entry in logs)
    assert any(entry["rewards/reward_env/std"] > 0 for entry in logs)
    assert (out / "prompts").exists()  # the dataset was saved for reuse


def test_smoke__recipe_fixes_are_live_in_the_trainer(first_run):
    _, trainer = first_run
    dropouts = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0 for m in dropouts)  # disable_dropout reaches LoRA's own dropout
    fmt = trainer.reward_funcs[0]
    assert fmt.__name__ == "reward_format" and fmt.max_completion_length == trainer.args.max_completion_length
    assert set(trainer.eos_token_ids) <= fmt.stop_token_ids  # "cut off" as TRL's clipped_ratio counts it


def test_smoke__adapter_saved_and_reloads_to_the_same_logits(first_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, trainer = first_run
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    assert not (out / "model.safetensors").exists()  # only the adapter, not a full copy
    base = AutoModelForCausalLM.from_pretrained(out / "tiny-qwen3")
    reloaded = PeftModel.from_pretrained(base, out).eval()
    trained = trainer.model.eval()
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, trained(ids).logits)
        with reloaded.disable_adapter():
            assert not torch.equal(reloaded(ids).logits, trained(ids).logits)


def test_smoke__resumes_from_a_checkpoint_and_merges(first_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, first = first_run
    checkpoint = out / "checkpoint-2"
    assert checkpoint.exists()
    before = [entry for entry in first.state.log_history if "loss" in entry]
    trainer = run("--output_dir", str(out), "--max_steps", "3", "--save_steps", "10", "--dataset_path", str(out / "prompts"),
                  "--resume_from_checkpoint", str(checkpoint), "--merge_adapter", "true")
    after = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 3
    assert [entry["step"] for entry in after] == [1, 2, 3]
    assert after[:2] == before  # steps 1-2 restored from the checkpoint (wall-clock step_time included), not re-run
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert next(merged.parameters()).dtype == torch.bfloat16
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out / "tiny-qwen3"), out).eval()
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        torch.testing.assert_close(merged.float()(ids).logits, adapted(ids).logits, atol=0.1, rtol=0.05)
