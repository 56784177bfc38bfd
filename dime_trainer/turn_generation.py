"""One model turn for a batch of episodes: token ids in, one answer's token ids (and, from
vLLM, their log-probabilities) out. Used by :mod:`dime_trainer.rollout` inside TRL's
``rollout_func``.

Two backends, picked from the trainer as TRL picks its own (:func:`turn_generator`):

* :class:`TransformersTurnGenerator` — ``model.generate`` on the training model, unwrapped
  exactly as TRL unwraps it for generation (``trl.models.unwrap_model_for_generation``), with
  TRL's ``generation_config`` (temperature, top-p, top-k, EOS ids) and a per-turn token budget.
  CPU tests and small models.
* :class:`VLLMTurnGenerator` — TRL's own ``trainer.vllm_generation.generate`` (colocate or
  server; TRL has synced the weights before calling ``rollout_func``), with the per-turn budget
  set for the call. vllm itself is never imported here.

Every backend cuts an answer after its first stop token (as TRL does), so an answer that ends
with a stop token finished and one that does not was cut off at the budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

TurnOutput = tuple[list[int], list[float] | None]  # (answer token ids, their sampling log-probs or None)


def cut_at_stop(token_ids: Sequence[int], stop_token_ids) -> list[int]:
    """``token_ids`` up to and including the first stop token (all of them if there is none)."""
    out = []
    for token in token_ids:
        out.append(int(token))
        if token in stop_token_ids:
            break
    return out


class TransformersTurnGenerator:
    """Batched ``generate`` on the trainer's (unwrapped) model: contexts left-padded into one
    call, sampling as TRL's ``generation_config`` says, ``max_new_tokens`` per call."""

    def __init__(self, trainer):
        self.trainer = trainer
        tokenizer = trainer.processing_class
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_token_ids = frozenset(int(t) for t in [*trainer.eos_token_ids, self.pad_token_id] if t is not None)

    def generate(self, contexts: Sequence[Sequence[int]], max_new_tokens: int) -> list[TurnOutput]:
        import copy

        import torch
        from trl.models import unwrap_model_for_generation

        trainer = self.trainer
        width = max(len(c) for c in contexts)
        device = trainer.accelerator.device
        input_ids = torch.tensor([[self.pad_token_id] * (width - len(c)) + list(c) for c in contexts], device=device)
        attention_mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
        config = copy.deepcopy(trainer.generation_config)
        config.max_new_tokens = int(max_new_tokens)
        with (unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                          gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                          generation_kwargs=trainer.generation_kwargs,
                                          gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs) as model,
              torch.no_grad()):
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
        return [(cut_at_stop(row, self.stop_token_ids), None) for row in out[:, width:].tolist()]


class VLLMTurnGenerator:
    """TRL's ``VLLMGeneration`` (colocate or server mode) for one turn: token-id prompts in,
    one sample each (``num_generations=1``: after the first turn the rollouts of a group no
    longer share a context), the sampled tokens' log-probabilities kept for TRL's
    importance-sampling correction. The per-turn budget is set on ``max_completion_length``
    (which TRL turns into vLLM's ``max_tokens``) for the call only."""

    def __init__(self, vllm_generation, stop_token_ids):
        self.vllm_generation = vllm_generation
        self.stop_token_ids = frozenset(int(t) for t in stop_token_ids)

    @contextlib.contextmanager
    def _budget(self, max_new_tokens: int):
        saved = self.vllm_generation.max_completion_length
        self.vllm_generation.max_completion_length = int(max_new_tokens)
        try:
            yield
        finally:
            self.vllm_generation.max_completion_length = saved

    def generate(self, contexts: Sequence[Sequence[int]], max_new_tokens: int) -> list[TurnOutput]:
        with self._budget(max_new_tokens):
            _, completion_ids, logprobs, _ = self.vllm_generation.generate(
                prompts=[list(c) for c in contexts], images=None, num_generations=1)
        outputs = []
        for i, ids in enumerate(completion_ids):
            kept = cut_at_stop(ids, self.stop_token_ids)
            # vLLM gives each token's top-k log-probs, the sampled token's first (TRL keeps lp[0] too)
            lps = None if logprobs is None else [float("nan") if lp[0] is None else float(lp[0]) for lp in logprobs[i][:len(kept)]]
            outputs.append((kept, lps))
        return outputs


def turn_generator(trainer):
    """vLLM when the trainer uses it (``use_vllm``: its ``trainer.vllm_generation``), else
    transformers ``generate`` (also when ``use_transformers_continuous_batching`` is set: TRL's
    continuous batching has no per-turn entry point)."""
    transformers_backend = TransformersTurnGenerator(trainer)
    if getattr(trainer, "use_vllm", False):
        return VLLMTurnGenerator(trainer.vllm_generation, transformers_backend.stop_token_ids)
    return transformers_backend
