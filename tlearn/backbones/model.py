"""Build a pretrained feature extractor and the transfer model (backbone + new linear head)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.transforms import DataConfig
from ..errors import TlearnError, WeightsError
from .tensor_files import check_tensors, read_tensors
from .registry import DEFAULT_BACKBONE, BackboneSpec, get_spec, list_specs
from .weights import load_state_dict, resolve


@dataclass
class BackboneInfo:
    """What config.yaml records about the backbone: enough to rebuild and to trace its weights."""

    name: str  # as the user asked: a registry name, timm:<name> or a run directory
    architecture: str  # registry name used to rebuild the network
    feature_dim: int
    data_config: DataConfig
    weights: str  # "pretrained", "none", a file path or "run:<dir>"
    weights_sha256: str | None = None
    weights_origin: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_config"] = self.data_config.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneInfo":
        return cls(**{**d, "data_config": DataConfig.from_dict(d["data_config"])})


def check_recorded(info: BackboneInfo, file: str | Path) -> None:
    """A backbone record read back from FILE (a run's config.yaml) names a known architecture of its feature size."""
    if info.architecture.startswith("timm:"):
        return  # timm's size is only known by building the network; the section's range check stands
    specs = {spec.name: spec for spec in list_specs()}
    spec = specs.get(info.architecture)
    if spec is None:
        raise TlearnError(f"{file} records the backbone architecture {info.architecture!r}, which is not one of "
                          f"{', '.join(specs)} or timm:<name>; the file was edited. Train the run again.")
    if info.feature_dim != spec.feature_dim:
        raise TlearnError(f"{file} records feature_dim {info.feature_dim} for {spec.name}, whose features are "
                          f"{spec.feature_dim} wide; the file was edited. Train the run again.")


FEATURE_NORMS = (None, "l2")  # what the head may see: the pooled features, or them at unit length times sqrt(d)


class TransferModel(nn.Module):
    """backbone (images -> pooled features) followed by a linear head over the target classes.

    feature_norm "l2": the head sees the features at unit length times sqrt(d) (a linear probe may choose it).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, architecture: str,
                 feature_norm: str | None = None):
        super().__init__()
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, not {feature_norm!r}")
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.architecture = architecture
        self.feature_norm = feature_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.backbone(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled backbone features (cached or live)."""
        if self.feature_norm == "l2":
            features = nn.functional.normalize(features, dim=1) * features.shape[1] ** 0.5
        return self.head(features)

    def layer_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameter groups from stem to head, the unit that fine-tuning freezes and unfreezes."""
        params = dict(self.named_parameters())
        groups = [
            (name, [params[f"backbone.{n}"] for n in names])
            for name, names in get_spec(self.architecture).groups(self.backbone)
        ]
        return groups + [("head", list(self.head.parameters()))]


PRETRAINED = (None, "auto", "pretrained", "imagenet")  # spellings of "the registry's own weights"


def _quick_batchnorm(model: nn.Module) -> nn.Module:
    """Random init: BatchNorm running statistics must keep up with weights that change fast. ImageNet recipes
    with a slow average (torchvision's MobileNetV3: momentum 0.01) leave them near their initial (0, 1) after the
    few hundred steps of a small dataset, and eval mode then predicts one class
    (docs/results.md#student-batchnorm-from-random-init). PyTorch's default 0.1 keeps up."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None and m.momentum < 0.1:
            m.momentum = 0.1
    return model


def _build_pretrained(spec: BackboneSpec, weights: str | None, weights_sha256: str | None):
    model = spec.create()
    if weights in ("none", "random"):
        return _quick_batchnorm(spec.strip(model)), None, "random init"
    explicit = None if weights in PRETRAINED else weights
    resolved = resolve(spec.name, spec.weights, explicit=explicit, expected_sha256=weights_sha256)
    state = load_state_dict(resolved.path)
    if spec.convert is not None:
        state = spec.convert(state, model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # A checkpoint of the stripped model (no ImageNet classifier) is fine too.
        stripped = spec.strip(model)
        missing, unexpected = stripped.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise WeightsError(f"{resolved.path} does not fit backbone {spec.name}: {exc}") from None
        return stripped, resolved, resolved.origin
    return spec.strip(model), resolved, resolved.origin


def load_backbone(name: str = DEFAULT_BACKBONE, weights: str | None = None,
                  weights_sha256: str | None = None) -> tuple[nn.Module, BackboneInfo]:
    """A registry backbone's feature extractor with its weights resolved offline first, and the record of what was
    loaded (an earlier run as the source: tlearn.runs.source.load_source).

    weights: None/"pretrained" for the registry's ImageNet weights, "none" for random init, or a file.
    """
    if Path(name).exists() and not name.startswith("timm:"):
        raise TlearnError(f"{name} exists but is not a tlearn run directory (config.yaml + model.safetensors).")
    spec = get_spec(name)
    module, resolved, origin = _build_pretrained(spec, weights, weights_sha256)
    info = BackboneInfo(
        name=name, architecture=spec.name, feature_dim=spec.feature_dim, data_config=spec.data_config,
        weights="none" if resolved is None else ("pretrained" if weights in PRETRAINED else str(weights)),
        weights_sha256=resolved.sha256 if resolved else None, weights_origin=origin,
    )
    return module, info


def build_transfer_model(info: BackboneInfo, num_classes: int, feature_norm: str | None = None) -> TransferModel:
    """The architecture alone (random init), to receive a saved state dict."""
    spec = get_spec(info.architecture)
    return TransferModel(spec.strip(spec.create()), info.feature_dim, num_classes, info.architecture, feature_norm)


def model_file_metadata(model: TransferModel) -> dict[str, str]:
    """What model.safetensors records about itself, beside config.yaml's backbone record, to be rebuilt."""
    meta = {"architecture": model.architecture, "num_classes": str(model.head.out_features)}
    if model.feature_norm:
        meta["feature_norm"] = model.feature_norm
    return meta


RETRAIN = "train the run again (`tlearn fit ... --out RUN --overwrite`)"


def load_transfer_model(path: str | Path, info: BackboneInfo, num_classes: int) -> TransferModel:
    """A saved transfer model (model.safetensors), rebuilt from the backbone record and the file's metadata; the
    file's tensors are checked against the rebuilt model (names, shapes, finite values) before they are loaded."""
    from safetensors import safe_open

    state = read_tensors(path, RETRAIN)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    norm = meta.get("feature_norm")
    if norm not in FEATURE_NORMS:
        raise TlearnError(f"{path} records feature_norm {norm!r}, not one of {FEATURE_NORMS}: the file was edited or "
                          f"damaged; {RETRAIN}.")
    model = build_transfer_model(info, num_classes, norm)
    model.load_state_dict(check_tensors(state, model.state_dict(), path, RETRAIN))
    return model


def weights_available(spec: BackboneSpec) -> bool:
    """Whether pretrained weights can be found without a network."""
    try:
        resolve(spec.name, spec.weights, allow_download=False)
        return True
    except WeightsError:
        return False


def load_imagenet_classifier(name: str = DEFAULT_BACKBONE, weights: str | None = None) -> nn.Module:
    """The full ImageNet model (1000-way classifier kept), e.g. to check the weights on a known photo."""
    spec = get_spec(name)
    model = spec.create()
    resolved = resolve(spec.name, spec.weights, explicit=weights)
    state = load_state_dict(resolved.path)
    model.load_state_dict(spec.convert(state, model) if spec.convert else state)
    return model.eval()
