"""A tiny Qwen3-architecture model and tokenizer, built in code, for CPU smoke runs and tests.

No network is needed: a byte-level BPE tokenizer is trained on DIME's own prompts and answers,
given Qwen3's chat template (``add_generation_prompt``, ``enable_thinking``) and Qwen3's
non-special ``<think>`` tags, and a 2-layer ``Qwen3ForCausalLM`` with the same projection
module names as Qwen3-8B (so the LoRA recipe is identical) is saved next to it with
``save_pretrained``. Load both back with ``from_pretrained(path)`` like the real model.

A random model almost never writes a parsable answer, so every completion of a prompt would
get the same rewards and GRPO would have nothing to learn from. ``save_tiny_qwen3`` therefore
first imprints the answer format with a few supervised steps on the oracle's answers
(``imprint_steps``); sampled completions then vary in format and action, as a real model's do.
``random_fraction`` mixes in answers with a random canonical command (a mediocre operator for
GRPO to improve on: ``benchmarks/bench_learning.py``), and ``with_last_command`` imprints on
prompts that show the previous command's report, as every prompt after an episode's first does.
"""

from __future__ import annotations

import pathlib

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN3_ADDED_TOKENS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")


def _oracle_states(steps: int, with_last_command: bool = False):
    """``(obs, info)`` of ``steps`` states spread evenly over one oracle-driven episode per task
    (task i on seed i): faults strike at seed-dependent steps, so the first few states alone
    would nearly all be healthy ones whose answer is no_op. ``with_last_command``: yield
    ``(obs, info, last_command)`` instead, the report of the oracle's previous command (``None``
    at reset) that a prompt shows after the first step (``dime_gym.text.step_report``)."""
    import gymnasium as gym
    import numpy as np

    import dime_gym  # noqa: F401 - registers DIME-v0
    from dime_gym.scenarios import TASK_IDS
    from dime_gym.text import step_report

    for seed, task in enumerate(TASK_IDS):
        env = gym.make("DIME-v0", task=task)
        obs, info = env.reset(seed=seed)
        last_command = None
        keep = set(np.linspace(0, env.unwrapped.episode.task.episode_steps - 1, steps).round().astype(int).tolist())
        for t in range(max(keep) + 1):
            if t in keep:
                yield (obs, info, last_command) if with_last_command else (obs, info)
            command = info["oracle"]["command"]
            obs, _, _, _, info = env.step(info["oracle"]["action"])
            last_command = step_report(command, info["action_errors"])


def _corpus() -> list[str]:
    """Text the tokenizer learns from: the system prompt, rendered states and every command."""
    import numpy as np

    from dime_gym.commands import canonical_actions
    from dime_gym.text import SYSTEM_PROMPT, format_action, render_user_message

    lines = SYSTEM_PROMPT.splitlines()
    for obs, info in _oracle_states(steps=4):
        lines.extend(render_user_message(obs, info).splitlines())
    commands = [format_action(a) for a in canonical_actions()]
    lines.extend(f'<reasoning>Rule {i % 10 + 1} applies.</reasoning>\n<action>{{"command": "{c}"}}</action>'
                 for i, c in enumerate(commands))
    lines.extend(str(x) for x in np.round(np.linspace(0, 1, 101), 2))
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A Qwen3-style fast tokenizer (byte-level BPE, ChatML specials, Qwen3's chat template)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN3_ADDED_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None)
    fast.chat_template = qwen3_chat_template
    return fast


def build_tiny_model(tokenizer, hidden_size: int = 64, num_layers: int = 2, seed: int = 0):
    """A randomly initialised 2-layer ``Qwen3ForCausalLM`` sized for CPU (about 0.2 M params)."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden_size // 4,
        max_position_embeddings=4096, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        bos_token_id=None, eos_token_id=im_end, pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[im_end, pad], pad_token_id=pad, do_sample=True,
                                               temperature=0.6, top_p=0.95, top_k=20)
    return model


def _answer(rule_id, command: str, eos: str) -> str:
    return f'<reasoning>Rule {rule_id} applies.</reasoning>\n<action>{{"command": "{command}"}}</action>{eos}'


def oracle_answer_examples(tokenizer, steps: int = 3, with_last_command: bool = False) -> list[tuple[list[int], list[int]]]:
    """``(prompt_ids, answer_ids)`` pairs: DIME prompts (chat template, thinking off, as in
    the smoke config) and the triage oracle's answer in the required format.
    ``with_last_command``: prompts show the previous command's report, as every prompt after an
    episode's first does (in ``dime-eval`` and in the training data); otherwise none does."""
    from dime_gym.text import render_messages

    examples = []
    for obs, info, last_command in _oracle_states(steps, with_last_command=True):
        oracle = info["oracle"]
        messages = render_messages(obs, info, last_command if with_last_command else None)
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=False)
        answer = _answer(oracle["rule_id"], oracle["command"], tokenizer.eos_token)
        examples.append((tokenizer(prompt)["input_ids"], tokenizer(answer)["input_ids"]))
    return examples


def random_answer_ids(tokenizer, rng) -> list[int]:
    """A well-formed answer with a uniformly random canonical command and rule number (the
    imprint's "random operator" examples)."""
    from dime_gym.commands import canonical_actions, format_action

    actions = canonical_actions()
    command = format_action(actions[int(rng.integers(len(actions)))])
    return tokenizer(_answer(int(rng.integers(1, 11)), command, tokenizer.eos_token))["input_ids"]


def imprint_answer_format(model, tokenizer, steps: int = 200, learning_rate: float = 3e-3, seed: int = 0,
                          random_fraction: float = 0.0, states_per_task: int = 3, with_last_command: bool = False):
    """A few supervised steps (loss on the answer tokens only) on ``oracle_answer_examples``.

    ``random_fraction``: the share of steps (drawn with ``seed``) whose target answer is a random
    canonical command (:func:`random_answer_ids`) instead of the oracle's, so the model is a
    *mediocre* operator: well-formed answers, the oracle's action only part of the time, a
    spread of other actions (a warm start that GRPO can improve on). 0 = oracle answers only.
    ``states_per_task`` and ``with_last_command``: as in :func:`oracle_answer_examples`."""
    import numpy as np
    import torch

    if not 0.0 <= random_fraction <= 1.0:
        raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
    examples = oracle_answer_examples(tokenizer, steps=states_per_task, with_last_command=with_last_command)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    # decay to zero: the last steps settle the format instead of jumping between examples
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    model.train()
    for step in range(steps):
        prompt_ids, answer_ids = examples[step % len(examples)]
        if random_fraction and rng.random() < random_fraction:
            answer_ids = random_answer_ids(tokenizer, rng)
        labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
        loss = model(input_ids=torch.tensor([prompt_ids + answer_ids]), labels=labels).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()
    return model


def save_tiny_qwen3(path: str | pathlib.Path, seed: int = 0, imprint_steps: int = 200, random_fraction: float = 0.0,
                    states_per_task: int = 3, with_last_command: bool = False) -> pathlib.Path:
    """Build the tiny model and tokenizer, imprint the answer format (``imprint_steps``
    supervised steps; 0 leaves the model random; ``random_fraction``, ``states_per_task`` and
    ``with_last_command`` as in :func:`imprint_answer_format`) and ``save_pretrained`` both into ``path``; returns
    it. An existing complete directory is reused."""
    path = pathlib.Path(path)
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=seed)
    if imprint_steps:
        imprint_answer_format(model, tokenizer, steps=imprint_steps, seed=seed, random_fraction=random_fraction,
                              states_per_task=states_per_task, with_last_command=with_last_command)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
