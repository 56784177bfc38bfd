"""dime_trainer: GRPO fine-tuning of language models on DIME (TRL + LoRA), and ``dime-eval``.

* ``data``: prompt datasets of cluster states with exact snapshots (``build_prompt_dataset``);
* ``rewards``: the four GRPO reward callbacks (format, validity, env, triage);
* ``rollout``, ``turn_generation``, ``episode_rewards``: episode mode (``--rollout episode``), a
  TRL ``rollout_func`` that plays several turns per completion, and its rewards;
* ``monitor``: a ``TrainerCallback`` that warns when GRPO stops learning;
* ``lora_sync``: LoRA weights streamed to vLLM merged out of place (base weights untouched);
* ``cli``: the ``dime-train`` script; ``tiny_model``: a tiny Qwen3 for CPU smoke runs;
* ``evaluation``: the ``dime-eval`` benchmark for built-in policies and language models.

Depends only on ``dime_gym``'s public API; torch, transformers, trl, peft and vllm are imported
lazily inside the functions that need them (install with ``pip install -e ".[train]"``).
"""
