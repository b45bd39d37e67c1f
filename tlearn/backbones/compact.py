"""Compact students made for speed: small plain CNNs for small images (32-96 px), trained from scratch.

A plain stack of 3x3 convolutions with batch norm runs fast on CPUs at batch 1 (no depthwise convolutions,
few layers), which is what a distilled student deployed on a phone or an embedded board needs.
"""
from __future__ import annotations

from torch import nn

from ..data.transforms import DataConfig
from .registry import BackboneSpec, groups_by_regex, register


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CompactCNN(nn.Module):
    """stem -> 3 stages (conv blocks, each ending in a 2x2 max-pool) -> top conv -> global average pool.

    With widths (32, 64, 128, 256) it has about 0.58 M parameters; `classifier` maps pooled features to
    num_classes and is what `strip` removes for transfer.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 256), num_classes: int = 1000,
                 dropout: float = 0.2):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(*_conv(3, w1))
        self.stage1 = nn.Sequential(*_conv(w1, w1), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(*_conv(w1, w2), *_conv(w2, w2), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(*_conv(w2, w3), *_conv(w3, w3), nn.MaxPool2d(2))
        self.top = nn.Sequential(*_conv(w3, w4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.num_features = w4
        self.classifier: nn.Module = nn.Linear(w4, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.top(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        return self.classifier(x)


def _strip(model: CompactCNN) -> CompactCNN:
    model.classifier = nn.Identity()
    return model


COMPACT_CNN = register(
    BackboneSpec(
        name="compact_cnn",
        family="compact",
        # Small images are used whole (crop_pct 1.0); pass a student size of 64-96 for photos.
        data_config=DataConfig(input_size=32, crop_pct=1.0, interpolation="bilinear"),
        feature_dim=256,
        create=CompactCNN,
        strip=_strip,
        groups=groups_by_regex([("stem", r"^stem\."), ("stage1", r"^stage1\."), ("stage2", r"^stage2\."),
                                ("stage3", r"^stage3\."), ("top", r"^(top|classifier)\.")]),
        weights=None,
        notes="~0.58 M params, 32 px, random init; a fast distillation student",
    )
)
