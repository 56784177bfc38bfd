"""dime_trainer: GRPO fine-tuning of language models on DIME (TRL + LoRA).

Depends only on ``dime_gym``'s public API; torch, transformers, trl, peft and vllm are imported
lazily inside the functions that need them (install with ``pip install -e ".[train]"``).
The dataset builder, reward callbacks and the ``dime-train`` script are tracked in issue 5.
"""
