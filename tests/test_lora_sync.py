"""The vLLM weight sync of a LoRA model (``dime_trainer.lora_sync``), through TRL's real
``VLLMGeneration.sync_weights`` with a fake vLLM ``load_weights`` receiver: the weights streamed
equal a ``merge_and_unload()`` copy under vLLM's names, and the base weights stay bit-identical
over many syncs (TRL's own in-place merge/unmerge drifts them in BF16)."""

from __future__ import annotations

import contextlib
import copy
import types

import pytest

torch = pytest.importorskip("torch", reason="needs the training extras: pip install -e '.[train]'")
pytest.importorskip("trl", reason="needs the training extras: pip install -e '.[train]'")
peft = pytest.importorskip("peft", reason="needs the training extras: pip install -e '.[train]'")

from trl.generation.vllm_generation import VLLMGeneration  # noqa: E402  (imports vllm only if installed)

from dime_trainer.lora_sync import install_out_of_place_lora_sync, merged_lora_weights  # noqa: E402
from dime_trainer.tiny_model import build_tiny_model, build_tiny_tokenizer  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def base_model():
    return build_tiny_model(build_tiny_tokenizer())


def lora_model(base, dtype=torch.float32, seed=1):
    """The tiny Qwen3 with LoRA r=8 (alpha 16) on the 7 projections, B non-zero (as after training)."""
    model = peft.get_peft_model(copy.deepcopy(base).to(dtype), peft.LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:  # factors in FP32, as TRL keeps trainable adapter weights
                param.data = (torch.randn(param.shape, generator=gen) * 0.05).float()
    return model


class FakeVLLMModel:
    """vLLM's model runner model, reduced to ``load_weights``: records what it was sent."""

    def __init__(self):
        self.received = {}

    def load_weights(self, weights):
        for name, tensor in weights:
            self.received[name] = tensor.detach().clone()


def fake_generation(model) -> tuple[VLLMGeneration, FakeVLLMModel]:
    """A colocate ``VLLMGeneration`` without vLLM: TRL's own methods on a fake engine."""
    gen = object.__new__(VLLMGeneration)
    receiver = FakeVLLMModel()
    runner = types.SimpleNamespace(model=receiver)
    engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner)))
    gen.llm = types.SimpleNamespace(llm_engine=engine, reset_prefix_cache=lambda: None)
    gen.model, gen.mode, gen.enable_sleep_mode, gen.accelerator = model, "colocate", False, None
    gen._dist = types.SimpleNamespace(is_fsdp=False, gather_params=lambda params: contextlib.nullcontext())
    return gen, receiver


def base_weights(model) -> dict:
    return {name: param.detach().clone() for name, param in model.named_parameters() if "lora_" not in name}


def test_lora_sync__streams_the_merge_and_unload_weights_under_vllm_names(base_model):
    model = lora_model(base_model)
    gen, receiver = fake_generation(model)
    assert install_out_of_place_lora_sync(gen)
    gen.sync_weights()
    merged = dict(copy.deepcopy(model).merge_and_unload().named_parameters())
    assert set(receiver.received) == set(merged)  # base-layer names, no base_layer / lora_ params
    assert not any("base_layer" in n or "lora_" in n for n in receiver.received)
    for name, tensor in merged.items():
        assert torch.equal(receiver.received[name], tensor), name
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(receiver.received[q], base_model.state_dict()[q])  # the adapter was merged in


def test_lora_sync__bf16_is_merged_in_fp32_then_cast(base_model):
    model = lora_model(base_model, dtype=torch.bfloat16)
    layer = model.base_model.model.model.layers[1].mlp.down_proj
    w = layer.base_layer.weight
    expected = (w.float() + (layer.lora_B["default"].weight.float() @ layer.lora_A["default"].weight.float())
                * layer.scaling["default"]).to(torch.bfloat16)
    streamed = dict(merged_lora_weights(model))
    assert streamed["model.layers.1.mlp.down_proj.weight"].dtype == torch.bfloat16
    assert torch.equal(streamed["model.layers.1.mlp.down_proj.weight"], expected)


def test_lora_sync__base_weights_bit_identical_after_many_syncs(base_model):
    model = lora_model(base_model, dtype=torch.bfloat16)
    before = base_weights(model)
    gen, receiver = fake_generation(model)
    assert install_out_of_place_lora_sync(gen)
    first = None
    for _ in range(50):
        gen.sync_weights()
        first = first or dict(receiver.received)
    after = base_weights(model)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(first[n], receiver.received[n]) for n in first)  # same weights every sync


def test_lora_sync__trl_in_place_merge_drifts_the_bf16_base(base_model):
    """The bug the out-of-place sync avoids: TRL 1.16's merge_adapter/unmerge_adapter round trip."""
    model = lora_model(base_model, dtype=torch.bfloat16)
    before = base_weights(model)
    gen, _ = fake_generation(model)  # TRL's own _iter_named_params
    for _ in range(10):
        gen.sync_weights()
    after = base_weights(model)
    changed = sum(int((before[n] != after[n]).sum()) for n in before)
    assert changed > 0


def test_lora_sync__not_installed_without_lora_or_under_fsdp(base_model):
    gen, _ = fake_generation(copy.deepcopy(base_model))
    assert not install_out_of_place_lora_sync(gen)
    gen, _ = fake_generation(lora_model(base_model))
    gen._dist.is_fsdp = True
    assert not install_out_of_place_lora_sync(gen)
    assert "_iter_named_params" not in vars(gen)  # TRL's method stays


def test_lora_sync__dora_keeps_trl_path(base_model):
    model = peft.get_peft_model(copy.deepcopy(base_model), peft.LoraConfig(r=4, target_modules=["q_proj"], use_dora=True))
    gen, _ = fake_generation(model)
    assert not install_out_of_place_lora_sync(gen)
