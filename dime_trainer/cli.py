"""``dime-train``: GRPO fine-tuning on DIME, following TRL's script convention.

    dime-train --config configs/qwen3_8b_grpo.yaml [--learning_rate 1e-5 ...]
    dime-train --smoke                     # tiny Qwen3 built in code, a few steps on CPU

Arguments are ``DimeArguments`` (the dataset and rewards) + TRL's ``GRPOConfig`` + ``ModelConfig``,
parsed by ``TrlParser``: ``--config file.yaml`` sets defaults and command-line flags override it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import sys

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
LOGGER = logging.getLogger("dime_trainer")


@dataclasses.dataclass
class DimeArguments:
    """DIME's own options (dataset and rewards); the rest are TRL's ``GRPOConfig``/``ModelConfig``."""

    tasks: str = dataclasses.field(default="all", metadata={"help": "Comma-separated task ids, or 'all'."})
    dataset_episodes: int = dataclasses.field(default=8, metadata={"help": "Episodes per task (training seeds 10000+)."})
    dataset_max_steps: int | None = dataclasses.field(default=None, metadata={"help": "Rows per episode at most."})
    explore_epsilon: float = dataclasses.field(default=0.2, metadata={"help": "Behaviour policy: the oracle, with this random-action rate."})
    balance_tasks: bool = dataclasses.field(default=True, metadata={"help": "Subsample tasks to equal row counts."})
    min_reward_gap: float | None = dataclasses.field(
        default=0.0, metadata={"help": "Keep states where the best action beats the median action's one-step reward by more than this."})
    dataset_path: str | None = dataclasses.field(
        default=None, metadata={"help": "Load the prompt dataset from here if it exists, else build it and save it here."})
    env_reward_horizon: int = dataclasses.field(
        default=0, metadata={"help": "reward_env lookahead: mean reward over 1 + h steps with the oracle continuing (0 = one step)."})
    tiny_model: bool = dataclasses.field(
        default=False, metadata={"help": "Build a tiny Qwen3 in <output_dir>/tiny-qwen3 and train it (CPU smoke runs)."})
    merge_adapter: bool = dataclasses.field(
        default=False, metadata={"help": "After training, also save the LoRA merged into a BF16 model in <output_dir>/merged."})
    torch_threads: int | None = dataclasses.field(default=None, metadata={"help": "torch.set_num_threads (CPU runs)."})


def make_parser():
    from trl import GRPOConfig, ModelConfig, TrlParser

    return TrlParser((DimeArguments, GRPOConfig, ModelConfig), prog="dime-train", description=__doc__.split("\n\n")[0])


def expand_shortcuts(argv: list[str]) -> list[str]:
    """``--smoke`` -> ``--config <shipped smoke.yaml>``; ``--config NAME`` also finds a shipped
    config by name (``qwen3_8b_grpo``) when no such file exists."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--smoke":
            out += ["--config", str(CONFIG_DIR / "smoke.yaml")]
        elif i > 0 and argv[i - 1] == "--config" and not os.path.exists(arg) and (CONFIG_DIR / f"{arg}.yaml").exists():
            out.append(str(CONFIG_DIR / f"{arg}.yaml"))
        else:
            out.append(arg)
    return out


def prepare_dataset(dime_args: DimeArguments, seed: int):
    """The prompt dataset: loaded from ``dataset_path`` if it was saved there with the same
    build arguments (a mismatch is an error), else built (and saved there)."""
    from dime_trainer.data import build_prompt_dataset, load_dataset, save_dataset

    build_args = {
        "tasks": None if dime_args.tasks == "all" else [t.strip() for t in dime_args.tasks.split(",") if t.strip()],
        "seeds": dime_args.dataset_episodes, "epsilon": dime_args.explore_epsilon, "max_steps": dime_args.dataset_max_steps,
        "balance_tasks": dime_args.balance_tasks, "min_reward_gap": dime_args.min_reward_gap, "shuffle_seed": seed,
    }
    if dime_args.dataset_path and os.path.exists(dime_args.dataset_path):
        LOGGER.info("loading the prompt dataset from %s", dime_args.dataset_path)
        try:
            return load_dataset(dime_args.dataset_path, expect_build_args=build_args)
        except ValueError as exc:
            raise SystemExit(f"dime-train: error: {exc}") from None
    dataset = build_prompt_dataset(**build_args)
    if dime_args.dataset_path:
        save_dataset(dataset, dime_args.dataset_path, build_args)
    return dataset


def train(dime_args: DimeArguments, training_args, model_args):
    """Build the dataset, the model (LoRA), the four rewards and the monitor; train; save."""
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOTrainer, get_peft_config

    from dime_trainer.monitor import TrainingHealthMonitor
    from dime_trainer.rewards import EnvReward, reward_format, reward_triage, reward_validity

    if dime_args.torch_threads:
        torch.set_num_threads(dime_args.torch_threads)
    if dime_args.tiny_model:
        from dime_trainer.tiny_model import save_tiny_qwen3

        model_args.model_name_or_path = str(save_tiny_qwen3(pathlib.Path(training_args.output_dir) / "tiny-qwen3"))
    if not model_args.model_name_or_path:
        raise SystemExit("dime-train: --model_name_or_path is required (or --tiny_model / --smoke)")
    if dime_args.merge_adapter and not model_args.use_peft:
        raise SystemExit("dime-train: --merge_adapter merges a LoRA adapter; it needs --use_peft true")
    if training_args.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise SystemExit("dime-train: use_vllm is set but vllm is not installed; pip install 'dime[vllm]' "
                             "on a CUDA machine, or pass --use_vllm false") from None
    training_args.model_init_kwargs = {
        **(training_args.model_init_kwargs or {}),
        "dtype": model_args.dtype,
        **({"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}),
    }
    dataset = prepare_dataset(dime_args, training_args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, padding_side="left")
    trainer = GRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=[reward_format, reward_validity, EnvReward(horizon=dime_args.env_reward_horizon), reward_triage],
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[TrainingHealthMonitor()],
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if dime_args.merge_adapter and trainer.accelerator.is_main_process:
        merge_adapter(model_args.model_name_or_path, training_args.output_dir, pathlib.Path(training_args.output_dir) / "merged")
    return trainer


def merge_adapter(base_model: str, adapter_dir: str | pathlib.Path, path: str | pathlib.Path) -> pathlib.Path:
    """Merge the saved LoRA adapter in ``adapter_dir`` into ``base_model`` and save a BF16
    checkpoint (like the seed's) with the tokenizer. It reloads both from disk, so it also works
    after a sharded (ZeRO-3) run; call it on one process."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(path)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(path)
    return pathlib.Path(path)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    argv = expand_shortcuts(list(sys.argv[1:] if argv is None else argv))
    try:
        dime_args, training_args, model_args = make_parser().parse_args_and_config(args=argv)
    except ValueError as exc:  # TrlParser/GRPOConfig validation: unknown keys, bf16 without a GPU, ...
        hint = " (the GPU recipe needs CUDA; on a CPU machine try: dime-train --smoke)" if "bf16" in str(exc) else ""
        raise SystemExit(f"dime-train: error: {exc}{hint}") from None
    train(dime_args, training_args, model_args)


if __name__ == "__main__":
    main()
