"""Gradient-based transfer strategies: small objects that say what trains, at which rates, in which phases.

finetune  head warm-up (the linear probe), then the whole network with discriminative rates (stem lowest)
gradual   head first, then one more layer group unfrozen (from the top) every `unfreeze_every` epochs
lp-ft     linear probe on cached features for the head, then everything at one small rate (Kumar et al. 2022)
scratch   the same architecture from random init, everything at one rate: the baseline transfer must beat
All share PhasedStrategy.fit, which hands the phases to tlearn.train.train.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from ..backbones.model import TransferModel, build_transfer_model
from ..runs.layout import CHECKPOINTS
from ..runs.records import options_record, phase_record
from ..strategy_defaults import DEFAULT_FIELDS, LOOP, STRATEGY_DEFAULTS, StrategyDefaults
from ..train import Phase, TrainOptions, TrainResult, discriminative_lrs, train
from .base import FitContext, FitResult, log


def train_options(cfg, ctx: FitContext, strategy: "PhasedStrategy", **overrides) -> TrainOptions:
    """The loop's options from the run's FitConfig; the options it leaves unset (None) take the strategy's
    defaults."""
    hp = strategy.resolve(cfg)
    fields = dict(
        batch_size=cfg.train_batch_size, eval_batch_size=cfg.batch_size,
        optimizer=hp["optimizer"], weight_decay=cfg.weight_decay, label_smoothing=hp["label_smoothing"],
        grad_clip=cfg.grad_clip or None, ema=cfg.ema,
        l2_sp=hp["l2_sp"] or None,  # --l2-sp 0 turns the strategy's default off
        accumulation=cfg.accumulation, memory_budget=getattr(cfg, "memory_budget", None), augment=hp["augment"],
        class_weights=cfg.class_weights, sampler=cfg.sampler,
        freeze_bn=bool(hp["freeze_bn"]), patience=cfg.patience,
        max_seconds=cfg.max_seconds, seed=cfg.seed, precision=cfg.precision, eval_precision=ctx.precision,
        device=cfg.device, num_workers=cfg.num_workers, cache_dir=str(ctx.cache_dir), progress=cfg.progress,
        checkpoint_dir=str(Path(ctx.out) / CHECKPOINTS), resume=cfg.resume,
    )
    fields.update(overrides)
    return TrainOptions(**fields)


class PhasedStrategy:
    """Base: build the starting model, list the phases, run the loop, return a FitResult.

    A strategy's hyper-parameter defaults are its row of tlearn.strategy_defaults (`defaults`); the
    `default_<name>` class attributes mirror that row for callers that read them."""

    name = "phased"
    defaults: StrategyDefaults = LOOP

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.defaults = STRATEGY_DEFAULTS.get(cls.name, cls.defaults)
        for f in DEFAULT_FIELDS:
            setattr(cls, f"default_{f}", getattr(cls.defaults, f))

    def __init__(self, cfg):
        self.cfg = cfg

    def resolve(self, cfg) -> dict:
        """Every hyper-parameter: cfg's value where it sets one (0 and False count), else this strategy's."""
        return {f: getattr(self.defaults, f) if getattr(cfg, f, None) is None else getattr(cfg, f)
                for f in DEFAULT_FIELDS}

    @property
    def hyperparameters(self) -> dict:
        """The run's hyper-parameters, resolved (recorded in config.yaml under strategy)."""
        return self.resolve(self.cfg)

    @property
    def lr(self) -> float:
        return getattr(self.cfg, "lr", None) or self.defaults.lr

    @property
    def epochs(self) -> int:
        return getattr(self.cfg, "epochs", None) or self.defaults.epochs

    def initial_model(self, ctx: FitContext) -> tuple[TransferModel, dict, list]:
        """(model to start from, details for config.yaml, files skipped while preparing)."""
        model = TransferModel(ctx.backbone, ctx.backbone_info.feature_dim, len(ctx.splits.classes),
                              ctx.backbone_info.architecture)
        return model, {}, []

    def phases(self, groups: list[str]) -> list[Phase]:
        raise NotImplementedError

    def fit(self, ctx: FitContext) -> FitResult:
        model, details, skipped = self.initial_model(ctx)
        groups = [name for name, _ in model.layer_groups()]
        phases = self.phases(groups)
        options = train_options(self.cfg, ctx, self)
        result: TrainResult = train(model, phases, ctx.splits.train, ctx.splits.val,
                                    ctx.backbone_info.data_config, options, num_classes=len(ctx.splits.classes),
                                    on_epoch=_telling(ctx.on_epoch_end))
        details.update(result.details)
        details.update(
            hyperparameters=self.hyperparameters,
            phases=phase_record(phases), train_options=options_record(options),
            decode_seconds=round(result.decode_seconds, 3), loop_seconds=round(result.seconds, 3),
        )
        return FitResult(model=result.model, history=result.history, skipped=skipped + result.skipped,
                         details=details)


def probe_initialised(ctx: FitContext, cfg) -> tuple[TransferModel, dict, list]:
    """The linear probe fitted on cached features, as a transfer model: a head that is already good."""
    from .linear_probe_strategy import LinearProbeStrategy

    # standardized features: the head folds into one linear layer over the backbone's features, the start
    # fine-tuning's defaults were chosen with (docs/results.md)
    probe = LinearProbeStrategy(class_weight="balanced" if getattr(cfg, "class_weights", None) == "auto" else None,
                                features="standardized").fit(ctx)
    c = probe.details["C"]  # None for a multi-label probe whose labels chose their own C
    log.info("head initialised from the linear probe (C=%s, train accuracy %.4f)",
             "per label" if c is None else f"{c:.3g}", probe.train_metrics["accuracy"])
    details = {"head_init": "linear probe", "probe": {"C": probe.details["C"],
                                                     "train_accuracy": probe.train_metrics["accuracy"]}}
    return probe.model, details, list(probe.skipped)


class FineTune(PhasedStrategy):
    """Head warm-up, then all groups with rates growing geometrically from stem to head (fastai's fine_tune).

    The warm-up is by default the linear probe on cached features (a head-only fit that costs one forward
    pass, and a far better start than one epoch of SGD on the head); --head-epochs N trains the head for
    N epochs with the backbone frozen instead.
    """

    name = "finetune"  # its defaults: tlearn.strategy_defaults (tuned on flowers over several seeds)

    def head_epochs(self) -> int:
        return getattr(self.cfg, "head_epochs", None) or self.defaults.head_epochs

    def initial_model(self, ctx: FitContext) -> tuple[TransferModel, dict, list]:
        if self.head_epochs():
            model, details, skipped = super().initial_model(ctx)
            return model, {"head_init": f"{self.head_epochs()} head-only epoch(s)"}, skipped
        return probe_initialised(ctx, self.cfg)

    def phases(self, groups: list[str]) -> list[Phase]:
        ratio = getattr(self.cfg, "lr_ratio", None) or self.defaults.lr_ratio
        out = []
        if self.head_epochs():
            out.append(Phase("head", self.head_epochs(), {groups[-1]: self.lr * 4}, final_lr_ratio=0.1))
        out.append(Phase("all", self.epochs, discriminative_lrs(groups, self.lr, ratio),
                         warmup_epochs=min(0.5, self.epochs / 4)))
        return out


class Gradual(PhasedStrategy):
    """Unfreeze one more layer group from the top every unfreeze_every epochs; the last phase trains all."""

    name = "gradual"

    def phases(self, groups: list[str]) -> list[Phase]:
        every = getattr(self.cfg, "unfreeze_every", None) or 1
        ratio = getattr(self.cfg, "lr_ratio", None) or self.defaults.lr_ratio
        rates = discriminative_lrs(groups, self.lr, ratio)
        out, remaining = [], self.epochs
        for k in range(1, len(groups) + 1):
            trainable = groups[-k:]
            last = k == len(groups)
            epochs = max(remaining, 1) if last else min(every, remaining)
            if epochs <= 0:
                break
            out.append(Phase("all" if last else f"top{k}", epochs, {g: rates[g] for g in trainable},
                             warmup_epochs=0.0))
            remaining -= epochs
            if remaining <= 0:
                break
        return out


class LinearProbeThenFineTune(PhasedStrategy):
    """The linear probe (cached features) gives the head; then all groups at one small rate."""

    name = "lp-ft"

    def initial_model(self, ctx: FitContext) -> tuple[TransferModel, dict, list]:
        return probe_initialised(ctx, self.cfg)

    def phases(self, groups: list[str]) -> list[Phase]:
        return [Phase("all", self.epochs, {g: self.lr for g in groups}, warmup_epochs=min(1.0, self.epochs / 4))]


class Scratch(PhasedStrategy):
    """Random init of the same architecture, everything trained at one rate: the no-transfer baseline."""

    name = "scratch"

    def initial_model(self, ctx: FitContext) -> tuple[TransferModel, dict, list]:
        info = dataclasses.replace(ctx.backbone_info)
        model = build_transfer_model(info, len(ctx.splits.classes))
        return model, {"init": "random (pretrained weights not used)"}, []

    def phases(self, groups: list[str]) -> list[Phase]:
        return [Phase("all", self.epochs, {g: self.lr for g in groups}, warmup_epochs=min(2.0, self.epochs / 5))]


def _telling(on_epoch_end: Callable[[dict], None] | None) -> Callable[[dict], bool] | None:
    """The loop's on_epoch callback that tells on_epoch_end each row and never stops training."""
    if on_epoch_end is None:
        return None

    def tell(row: dict) -> bool:
        on_epoch_end(row)
        return False
    return tell
