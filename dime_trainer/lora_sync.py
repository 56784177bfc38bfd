"""LoRA weights for vLLM merged out of place, so the frozen base weights never change.

TRL 1.16 (``trl/generation/vllm_generation.py``, ``VLLMGeneration._iter_named_params``) syncs a
PEFT model into vLLM with ``merge_adapter()``, reads the merged weights and then calls
``unmerge_adapter()``. Both run in place on the base weights: in BF16, ``(W + d) - d`` is not
``W``, so every sync moves the frozen base a little (a simulation of 300 syncs changed 23 % of
its weights) and an update smaller than the BF16 step of ``W`` is rounded away in vLLM.

:func:`merged_lora_weights` yields the same ``(name, tensor)`` stream instead computed as
``W + scaling * B @ A`` in FP32 on a copy, cast to ``W``'s dtype, under the names vLLM expects
(base-layer names, no ``base_layer`` and no LoRA parameters). :func:`install_out_of_place_lora_sync`
puts it in place of TRL's iterator on a ``VLLMGeneration`` (colocate and server modes alike, as
both stream from that iterator). Only vanilla LoRA on ``nn.Linear`` is handled; anything else
(DoRA, ``lora_bias``, LoRA on embeddings, FSDP) keeps TRL's path with a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

LOGGER = logging.getLogger("dime_trainer")


def _vllm_name(name: str) -> str:
    """A PEFT parameter name as vLLM knows it (the renaming TRL 1.16 does)."""
    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
    for prefix in ("_checkpoint_wrapped_module.", "modules_to_save.default."):
        name = name.replace(prefix, "")
    return name


def _lora_layers(model) -> dict:
    """``{module name: peft LoRA layer}`` for every LoRA layer of ``model``."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def unsupported_lora_layers(model) -> list[str]:
    """Names of the LoRA layers :func:`merged_lora_weights` cannot merge (not a vanilla LoRA ``Linear``)."""
    from peft.tuners.lora.layer import Linear

    bad = []
    for name, layer in _lora_layers(model).items():
        adapters = [a for a in layer.active_adapters if a in layer.lora_A]
        if (type(layer) is not Linear or any(a in getattr(layer, "lora_variant", {}) for a in adapters)
                or any(getattr(layer, "lora_bias", {}).get(a, False) for a in adapters)):
            bad.append(name)
    return bad


def merged_weight(layer, weight):
    """``W + sum_a scaling_a * B_a @ A_a`` over the layer's active adapters, in FP32 on a new
    tensor, returned in ``weight``'s dtype; ``weight`` itself is only read."""
    import torch
    from peft.utils.other import transpose

    with torch.no_grad():
        if layer.disable_adapters or layer.merged:  # nothing to add, or already inside W
            return weight.detach()
        merged = weight.detach().to(torch.float32, copy=True)
        for adapter in layer.active_adapters:
            if adapter not in layer.lora_A:
                continue
            a = layer.lora_A[adapter].weight.detach().to(device=merged.device, dtype=torch.float32)
            b = layer.lora_B[adapter].weight.detach().to(device=merged.device, dtype=torch.float32)
            merged += transpose(b @ a, layer.fan_in_fan_out) * layer.scaling[adapter]
        return merged.to(weight.dtype)


def merged_lora_weights(model, gather_params: Callable | None = None) -> Iterator[tuple[str, object]]:
    """Yield ``(vllm_name, tensor)`` for every weight of the PEFT ``model`` with the active LoRA
    adapters merged out of place (see the module docstring); the model is not modified.

    Args:
        model: a ``peft.PeftModel`` with LoRA adapters.
        gather_params: ``gather_params(params)`` -> context manager that materialises sharded
            parameters (TRL's ``DistributedBackend.gather_params`` under DeepSpeed ZeRO-3); all
            are gathered at once, as TRL does, because merging needs the full matrices.
    """
    gather = gather_params or (lambda params: contextlib.nullcontext())
    layers = _lora_layers(model)
    lora_prefix = getattr(model, "prefix", "lora_")
    with gather(list(model.parameters())):
        for name, param in model.named_parameters():
            if lora_prefix in name or "original_module" in name:  # LoRA factors; a modules_to_save original
                continue
            owner, _, leaf = name.rpartition(".")
            layer = layers.get(owner.removesuffix(".base_layer")) if owner.endswith(".base_layer") else None
            if layer is not None and leaf == "weight":
                yield _vllm_name(name), merged_weight(layer, param)
            else:
                yield _vllm_name(name), param.detach()


def install_out_of_place_lora_sync(vllm_generation) -> bool:
    """Make a TRL ``VLLMGeneration`` stream :func:`merged_lora_weights` instead of merging the
    adapter into the base weights in place. Returns ``True`` if installed; ``False`` (TRL's own
    path stays) for a model without LoRA, under FSDP, or with LoRA layers it cannot merge."""
    from accelerate.utils import is_peft_model

    model = vllm_generation.model
    if not is_peft_model(model) or not _lora_layers(model):
        return False
    dist = vllm_generation._dist
    if dist.is_fsdp:
        LOGGER.warning("FSDP: vLLM weight sync keeps TRL's in-place LoRA merge (the frozen base weights drift in BF16)")
        return False
    bad = unsupported_lora_layers(model)
    if bad:
        LOGGER.warning("LoRA layers other than vanilla Linear (%s...): vLLM weight sync keeps TRL's in-place merge",
                       bad[0])
        return False
    vllm_generation._iter_named_params = lambda: merged_lora_weights(model, dist.gather_params)
    LOGGER.info("vLLM weight sync: LoRA merged out of place (W + scaling * B @ A in FP32); base weights untouched")
    return True
