"""Registry, typed parameters, and exactly which parameters each tuner trains."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import hfm
from hfm.errors import TunerError
from hfm.tuners import get_tuner, list_tuners, register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig
from hfm.tuners.bitfit import is_norm


def test_registry_lists_builtins_and_rejects_unknown() -> None:
    assert set(list_tuners()) >= {"probe", "lora", "dora", "vpt", "full", "bitfit"}
    with pytest.raises(TunerError, match="unknown tuner 'lorra'.*lora"):
        get_tuner("lorra")


def test_registry_is_open(make_twin) -> None:
    @dataclasses.dataclass
    class HeadOnlyConfig(TunerConfig):
        scale: float = 1.0

    @register_tuner("test-head-only")
    class HeadOnly(AdaptedModel):
        config_cls = HeadOnlyConfig

    model = get_tuner("test-head-only")(make_twin("pathology/uni"), 2, scale=2.0)
    assert model.tuner_name == "test-head-only" and model.params == {"scale": 2.0}
    assert set(model.trainable_parameters()) == {"head.weight", "head.bias"}
    with pytest.raises(ValueError, match="already registered"):
        register_tuner("test-head-only")(type("Other", (AdaptedModel,), {}))


def test_unknown_and_bad_params(make_twin) -> None:
    backbone = make_twin("pathology/uni")
    with pytest.raises(
        TunerError, match="no parameter 'rank': allowed are r, alpha, dropout, target_modules"
    ):
        get_tuner("lora")(backbone, 3, rank=4)
    with pytest.raises(TunerError, match="'r' must be positive"):
        get_tuner("lora")(backbone, 3, r=0)
    with pytest.raises(TunerError, match="'num_tokens'"):
        get_tuner("vpt")(backbone, 3, num_tokens="many")
    with pytest.raises(TunerError, match="at least 2 classes"):
        get_tuner("probe")(backbone, 1)


def _count(params: dict[str, nn.Parameter]) -> int:
    return sum(p.numel() for p in params.values())


def test_exactly_intended_parameters_train(make_twin) -> None:
    """Names and counts per tuner on the pathology/uni twin (width 64, depth 2, 3 classes)."""
    head = {"head.weight", "head.bias"}
    width, depth, n_head = 64, 2, 64 * 3 + 3

    probe = get_tuner("probe")(make_twin("pathology/uni"), 3).trainable_parameters()
    assert set(probe) == head

    lora = get_tuner("lora")(make_twin("pathology/uni"), 3, r=4).trainable_parameters()
    assert set(lora) - head and all("lora_" in k for k in set(lora) - head)
    # qkv (64 -> 192) and proj (64 -> 64) per block: r * (in + out) each
    assert _count(lora) == depth * 4 * ((width + 3 * width) + (width + width)) + n_head

    dora = get_tuner("dora")(make_twin("pathology/uni"), 3, r=4).trainable_parameters()
    magnitudes = {k for k in dora if "lora_magnitude_vector" in k}
    assert len(magnitudes) == 2 * depth
    assert _count(dora) == _count(lora) + depth * (3 * width + width)

    shallow = get_tuner("vpt")(make_twin("pathology/uni"), 3, num_tokens=5).trainable_parameters()
    assert set(shallow) == head | {"prompts"} and shallow["prompts"].shape == (1, 5, width)
    deep = get_tuner("vpt")(make_twin("pathology/uni"), 3, num_tokens=5, deep=True).trainable_parameters()
    assert deep["prompts"].shape == (depth, 5, width)

    full_model = get_tuner("full")(make_twin("pathology/uni"), 3)
    assert set(full_model.trainable_parameters()) == {k for k, _ in full_model.named_parameters()}

    bitfit_model = get_tuner("bitfit")(make_twin("pathology/uni"), 3)
    bitfit = bitfit_model.trainable_parameters()
    expected = set(head)
    for module_name, module in bitfit_model.backbone.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            if name == "bias" or is_norm(module):
                expected.add(f"backbone.{module_name}.{name}" if module_name else f"backbone.{name}")
    assert set(bitfit) == expected
    assert not any(k.endswith("qkv.weight") or k.endswith("fc1.weight") for k in bitfit)
    assert "backbone.model.norm.weight" in bitfit and "backbone.model.blocks.0.attn.qkv.bias" in bitfit
    frozen = _count(dict(bitfit_model.named_parameters())) - _count(bitfit)
    assert 0 < _count(bitfit) < frozen


def test_vpt_unsupported_backbone(make_twin) -> None:
    with pytest.raises(TunerError, match="vpt is not supported for this backbone"):
        get_tuner("vpt")(make_twin("multimodal/biomedclip"), 3)


@pytest.mark.parametrize(
    "name", ["pathology/uni", "pathology/virchow2", "radiology/rad-dino", "pathology/phikon"]
)
def test_vpt_path_matches_backbone_without_prompts(make_twin, name: str) -> None:
    """VPT runs the library's modules itself: with no prompts it must reproduce ``backbone.tokens``."""
    model = get_tuner("vpt")(make_twin(name), 3).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model.prompted_tokens(images, prompts=torch.zeros(1, 0, model.prompts.shape[-1]))
        torch.testing.assert_close(plain, model.backbone.tokens(images))
        prompted = model.prompted_tokens(images)
    assert prompted.shape == plain.shape  # prompt positions are removed before pooling
    assert not torch.allclose(prompted, plain)


def test_vpt_prompts_sit_after_prefix_tokens(make_twin) -> None:
    """With registers (virchow2: 1 class + 4 register tokens) prompts go after all five prefix tokens."""
    model = get_tuner("vpt")(make_twin("pathology/virchow2"), 3, num_tokens=3)
    seen: list[torch.Tensor] = []
    from hfm.tuners.vpt import vit_parts

    block = vit_parts(model.backbone).blocks[0]
    handle = block.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 32, 32))
    handle.remove()
    assert torch.equal(seen[0][0, 5:8], model.prompts[0].detach())


def test_lora_target_override_and_no_match(make_twin) -> None:
    model = get_tuner("lora")(make_twin("pathology/uni"), 3, target_modules=r".*blocks\.\d+\.mlp\.fc1")
    assert all("fc1.lora_" in k for k in model.trainable_parameters() if not k.startswith("head."))
    with pytest.raises(TunerError, match="match nothing"):
        get_tuner("lora")(make_twin("pathology/uni"), 3, target_modules=["no_such_layer"])


def test_lora_export_merged_loads_without_peft(make_twin, tmp_path) -> None:
    model = get_tuner("lora")(make_twin("radiology/rad-dino"), 3)
    with torch.no_grad():  # make the update non-zero (lora_B starts at zero)
        for name, p in model.trainable_parameters().items():
            if "lora_B" in name:
                p.normal_(std=0.1)
    folder = model.export_merged(tmp_path / "merged")
    loaded = hfm.load_adapter(folder)
    assert loaded.tuner_name == "full" and loaded.params == {"merged_from": "lora"}
    assert not any("lora" in k for k in loaded.state_dict())
    images = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(
        loaded.predict_proba(images), model.predict_proba(images), atol=1e-5, rtol=1e-4
    )


def test_no_tuner_class_shadows_a_peft_name() -> None:
    """``hfm.tuners.lora`` hands LoRA to peft; a class of the same name as peft's would be read as peft's."""
    import inspect

    import peft

    import hfm.tuners.lora

    ours = {
        name
        for name, obj in vars(hfm.tuners.lora).items()
        if inspect.isclass(obj) and obj.__module__.startswith("hfm")
    }
    assert ours and not ours & set(dir(peft)), ours & set(dir(peft))
