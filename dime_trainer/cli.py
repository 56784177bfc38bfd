"""``dime-train``: GRPO fine-tuning on DIME, following TRL's script convention.

    dime-train --config configs/qwen3_8b_grpo.yaml [--learning_rate 1e-5 ...]
    dime-train --smoke                     # tiny Qwen3 built in code, a few steps on CPU
    dime-train --config configs/qwen3_8b_episode_grpo.yaml   # whole-episode GRPO (--rollout episode)

Arguments are ``DimeArguments`` (the dataset and rewards) + TRL's ``GRPOConfig`` + ``ModelConfig``,
parsed by ``TrlParser``: ``--config file.yaml`` sets defaults and command-line flags override it.
``--help`` prints the options that matter here, without importing TRL; ``--help-all`` lists all
of them (hundreds).
"""

from __future__ import annotations

import argparse
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
    env_reward_horizon: int | None = dataclasses.field(
        default=None, metadata={"help": "reward_env lookahead: discounted mean reward over 1 + h steps (0 = one step; "
                                        "default: the recipe's, dime_trainer.rewards.DEFAULT_ENV_REWARD_HORIZON)."})
    env_reward_discount: float | None = dataclasses.field(
        default=None, metadata={"help": "reward_env: weight discount**t of the reward t steps after the answer's "
                                        "(default: DEFAULT_ENV_REWARD_DISCOUNT)."})
    env_reward_continuation: str | None = dataclasses.field(
        default=None, metadata={"help": "reward_env: who acts in the lookahead steps, 'noop' (the answer's throttle stays "
                                        "in force) or 'oracle' (default: DEFAULT_ENV_REWARD_CONTINUATION)."})
    rollout: str = dataclasses.field(
        default="step", metadata={"help": "What a completion is: 'step' (one answer to one state, scored by reward_env "
                                          "and friends) or 'episode' (up to episode_turns answers in a row from the "
                                          "state, the env's replies in between; dime_trainer.rollout)."})
    episode_turns: int = dataclasses.field(default=4, metadata={"help": "Episode mode: model turns per rollout at most (K)."})
    episode_turn_max_tokens: int = dataclasses.field(
        default=256, metadata={"help": "Episode mode: new tokens per answer (max_completion_length bounds the whole "
                                       "episode, model and env tokens)."})
    episode_continuation: str = dataclasses.field(
        default="oracle", metadata={"help": "Episode mode: who plays after the model's turns, 'oracle', 'noop' or "
                                            "'none' (stop there)."})
    episode_continuation_steps: int | None = dataclasses.field(
        default=None, metadata={"help": "Episode mode: continuation steps at most (default: to the episode's end)."})
    episode_reward_discount: float | None = dataclasses.field(
        default=None, metadata={"help": "Episode mode: reward_episode_return's discount (default: "
                                        "dime_trainer.episode_rewards.DEFAULT_EPISODE_REWARD_DISCOUNT)."})
    tiny_model: bool = dataclasses.field(
        default=False, metadata={"help": "Build a tiny Qwen3 in <output_dir>/tiny-qwen3 and train it (CPU smoke runs)."})
    merge_adapter: bool = dataclasses.field(
        default=False, metadata={"help": "After training, also save the LoRA merged into a BF16 model in <output_dir>/merged."})
    torch_threads: int | None = dataclasses.field(default=None, metadata={"help": "torch.set_num_threads (CPU runs)."})


TRAIN_EXTRA_HINT = ("install the training extras: pip install -e '.[train]' (on a machine without a GPU install the CPU "
                    "torch first: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)")
# The TRL options most runs set, for the short --help (the full list is --help-all).
COMMON_TRL_OPTIONS = (
    ("--model_name_or_path", "model directory or hub id (ModelConfig)"),
    ("--output_dir", "where checkpoints, the adapter and logs go"),
    ("--max_steps", "optimizer steps"),
    ("--learning_rate", "initial AdamW learning rate"),
    ("--per_device_train_batch_size", "prompts x generations per device and step"),
    ("--num_generations", "completions per prompt (the GRPO group)"),
    ("--max_completion_length", "new tokens per completion"),
    ("--use_peft / --lora_r / --lora_alpha", "LoRA (ModelConfig)"),
    ("--use_vllm / --vllm_mode", "generate with vLLM (CUDA; pip install -e '.[vllm]')"),
    ("--bf16 / --use_cpu", "precision and device (the GPU recipe needs CUDA for bf16)"),
    ("--save_steps / --resume_from_checkpoint", "checkpoints"),
    ("--seed", "training seed (also shuffles the prompt dataset)"),
)


def make_parser():
    """The full ``TrlParser`` (imports TRL); help strings are plain text."""
    from trl import GRPOConfig, ModelConfig, TrlParser

    from dime_trainer.helptext import plain_parser

    parser = TrlParser((DimeArguments, GRPOConfig, ModelConfig), prog="dime-train", description=__doc__.split("\n\n")[0])
    plain_parser(parser)
    return parser


def short_help() -> str:
    """``dime-train --help``: the shortcuts, DIME's own options and the common TRL ones (no TRL import)."""
    parser = argparse.ArgumentParser(
        prog="dime-train", usage="dime-train (--smoke | --config FILE|NAME | --model_name_or_path MODEL) [options]",
        description="GRPO fine-tuning of a language model on DIME (TRL + LoRA). A YAML config sets defaults; "
                    "command-line flags override it.",
        epilog="examples:\n  dime-train --smoke                                  # tiny model, a few steps on CPU\n"
               "  dime-train --config qwen3_8b_grpo --output_dir runs/qwen3   # the GPU recipe (shipped config)\n"
               "  dime-train --config my.yaml --learning_rate 1e-5 --tasks retry_storm,zombie_node\n\n"
               f"shipped configs: {', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml') if not p.stem.startswith('accelerate')))}\n"
               "every GRPOConfig/ModelConfig option: dime-train --help-all",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    start = parser.add_argument_group("start")
    start.add_argument("--smoke", action="store_true", help="the shipped smoke config: a tiny Qwen3 built in code, CPU")
    start.add_argument("--config", metavar="FILE|NAME", help="YAML config: a file, or a shipped config by name")
    start.add_argument("--help-all", action="store_true", help="list every option, TRL's included (slow: imports TRL)")
    dime = parser.add_argument_group("DIME options (dataset and rewards)")
    for field in dataclasses.fields(DimeArguments):
        dime.add_argument(f"--{field.name}", metavar=field.type.replace(" | None", "").upper() if isinstance(field.type, str)
                          else None, help=f"{field.metadata['help']} (default: {field.default})")
    trl = parser.add_argument_group("common TRL options (GRPOConfig, ModelConfig)")
    for flag, text in COMMON_TRL_OPTIONS:
        trl.add_argument(flag, help=text, metavar="")
    return parser.format_help()


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


def prepare_dataset(dime_args: DimeArguments, seed: int, save: bool = True):
    """The prompt dataset: loaded from ``dataset_path`` if it was saved there with the same
    build arguments (a mismatch is an error), else built (and saved there if ``save``)."""
    from dime_trainer.data import build_prompt_dataset, load_dataset, save_dataset

    build_args = {
        "tasks": parse_tasks(dime_args.tasks),
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
    if dime_args.dataset_path and save:
        save_dataset(dataset, dime_args.dataset_path, build_args)
    return dataset


def prepare_dataset_main_first(dime_args: DimeArguments, training_args):
    """:func:`prepare_dataset` under ``accelerate launch``: the main process builds and saves the
    dataset while the other ranks wait, then they load its saved copy (one build, one writer).
    A rank that still finds no copy (``dataset_path`` not on a shared disk) builds its own, the
    same rows as it is seeded, without saving it."""
    with training_args.main_process_first(local=False, desc="the DIME prompt dataset"):
        return prepare_dataset(dime_args, training_args.seed, save=training_args.process_index == 0)


def train(dime_args: DimeArguments, training_args, model_args):
    """Build the dataset (main process first), the model (LoRA), the four rewards and the
    monitor; with vLLM, sync LoRA weights merged out of place (:mod:`dime_trainer.lora_sync`);
    train; save."""
    import torch
    from transformers import AutoConfig, AutoTokenizer
    from trl import GRPOTrainer, get_peft_config

    from dime_trainer.lora_sync import install_out_of_place_lora_sync
    from dime_trainer.monitor import TrainingHealthMonitor
    from dime_trainer.rewards import build_rewards

    parse_tasks(dime_args.tasks)  # a typo fails now, not after the model downloads
    try:  # the recipe's rewards (also a bad weight, horizon or episode setting fails before anything loads)
        reward_funcs, training_args.reward_weights = build_rewards(
            {**dataclasses.asdict(dime_args), "reward_weights": training_args.reward_weights,
             "max_completion_length": training_args.max_completion_length})
        episode_settings = episode_settings_of(dime_args, training_args.max_completion_length)
    except ValueError as exc:
        raise SystemExit(f"dime-train: error: {exc}") from None
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
    try:  # the model must resolve before the prompt dataset (minutes, ~100 MB) is built
        AutoConfig.from_pretrained(model_args.model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, padding_side="left")
    except (OSError, ValueError) as exc:  # missing path or hub id, no network, a malformed id
        raise SystemExit(f"dime-train: error: cannot load model {model_args.model_name_or_path!r}: {exc}") from None
    dataset = prepare_dataset_main_first(dime_args, training_args)
    rollout_func = None
    if episode_settings is not None:
        from dime_trainer.rollout import EpisodeRollout

        rollout_func = EpisodeRollout.from_dataset(dataset, episode_settings)
    trainer = GRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[TrainingHealthMonitor()],
        rollout_func=rollout_func,
    )
    if hasattr(reward_funcs[0], "stop_token_ids"):  # step mode's LengthCappedFormatReward
        # "cut off" as TRL counts it (completions/clipped_ratio, mask_truncated_completions): no EOS or pad at the end
        reward_funcs[0].stop_token_ids = frozenset(t for t in [*trainer.eos_token_ids, tokenizer.pad_token_id] if t is not None)
    if getattr(trainer, "vllm_generation", None) is not None:
        install_out_of_place_lora_sync(trainer.vllm_generation)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if dime_args.merge_adapter and trainer.accelerator.is_main_process:
        merge_adapter(model_args.model_name_or_path, training_args.output_dir, pathlib.Path(training_args.output_dir) / "merged")
    return trainer


def episode_settings_of(dime_args: DimeArguments, max_completion_length: int):
    """The ``EpisodeSettings`` of an episode-mode run (``None`` in step mode); ``ValueError``
    for a bad setting."""
    if dime_args.rollout != "episode":
        return None
    from dime_trainer.rollout import EpisodeSettings

    return EpisodeSettings(turns=dime_args.episode_turns, turn_max_tokens=dime_args.episode_turn_max_tokens,
                           continuation=dime_args.episode_continuation,
                           continuation_steps=dime_args.episode_continuation_steps).validated(max_completion_length)


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


class _SkipRecordsWithOwnHandlers(logging.Filter):
    """Drop, at the root handler, records that a library's own handler already printed
    (``huggingface_hub`` and ``datasets`` attach one and still propagate: every line twice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False
            if not logger.propagate:
                return True
            logger = logger.parent
        return True


def configure_logging(stream=None) -> logging.Handler:
    """INFO logging on stderr through one root handler that skips records already printed."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_SkipRecordsWithOwnHandlers())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.INFO)
    return handler


def parse_tasks(text: str) -> list[str] | None:
    """``--tasks``: ``None`` for 'all', else the listed ids; ``SystemExit`` naming the valid ids."""
    from dime_gym.scenarios import TASK_IDS

    if text.strip() == "all":
        return None
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASK_IDS]
    if not tasks or unknown:
        raise SystemExit(f"dime-train: error: --tasks {text!r}: unknown task(s) {', '.join(unknown) or '(none given)'}; "
                         f"valid: all, or a comma-separated list of {', '.join(TASK_IDS)}")
    return tasks


def _gives_a_model(argv: list[str]) -> bool:
    flags = {arg.split("=", 1)[0] for arg in argv}
    return bool(flags & {"--config", "--model_name_or_path", "--tiny_model"})


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(short_help(), end="")
        return
    help_all = "--help-all" in argv
    if not help_all and not _gives_a_model(argv) and "--smoke" not in argv:
        raise SystemExit("dime-train: error: no config or model given; try: dime-train --smoke (tiny model, CPU), "
                         "dime-train --config qwen3_8b_grpo (GPU), or dime-train --help")
    try:
        parser = make_parser()
    except ImportError as exc:
        raise SystemExit(f"dime-train: error: {exc}; {TRAIN_EXTRA_HINT}") from None
    if help_all:
        parser.print_help()
        return
    configure_logging()
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        dime_args, training_args, model_args = parser.parse_args_and_config(args=expand_shortcuts(argv))
    except ValueError as exc:  # TrlParser/GRPOConfig validation: unknown keys, bf16 without a GPU, ...
        hint = " (the GPU recipe needs CUDA; on a CPU machine try: dime-train --smoke)" if "bf16" in str(exc) else ""
        raise SystemExit(f"dime-train: error: {exc}{hint}") from None
    train(dime_args, training_args, model_args)


if __name__ == "__main__":
    main()
