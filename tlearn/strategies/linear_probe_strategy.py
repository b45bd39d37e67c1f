"""--strategy linear-probe: frozen backbone, cached features, logistic-regression head."""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import torch

from ..backbones.model import TransferModel
from ..data.multilabel import is_multilabel, label_matrix
from ..data.unlabeled import unlabeled_samples
from ..errors import DataError
from ..evaluate.metrics import classification_metrics
from ..evaluate.multilabel import multilabel_metrics
from ..features.extract import extract_features
from ..features.statistics import STATS_FILE, FeatureStatistics, space_for
from .base import FitContext, FitResult, log
from .linear_probe import LinearProbe
from .multilabel_probe import MultiLabelProbe
from .probe_cache import fit_probe
from .semi_supervised import choose_semi_supervised


def _probe_model(ctx: FitContext, probe: LinearProbe | MultiLabelProbe) -> TransferModel:
    """The backbone with the probe as its head (over l2-normalised features where the probe chose l2)."""
    model = TransferModel(ctx.backbone.cpu().float(), ctx.backbone_info.feature_dim, len(ctx.splits.classes),
                          ctx.backbone_info.architecture, feature_norm="l2" if probe.treatment == "l2" else None)
    weight, bias = probe.linear_weights()
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)
    return model


class LinearProbeStrategy:
    name = "linear-probe"

    def __init__(self, class_weight: str | None = None, features: str = "auto"):
        self.class_weight = class_weight
        self.features = features  # feature treatment: "auto" chooses by cross-validation on train

    def fit(self, ctx: FitContext) -> FitResult:
        cfg = ctx.config
        fs = extract_features(
            ctx.backbone, ctx.splits.train, ctx.backbone_info.data_config, precision=ctx.precision,
            device=ctx.device, batch_size=cfg.batch_size, cache_dir=ctx.cache_dir, num_workers=cfg.num_workers,
            progress=cfg.progress, desc="train features",
        )
        log.info("train features: %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
        if is_multilabel(ctx.splits.train):
            if cfg.unlabeled:
                raise DataError("--unlabeled is for single-label data; the multi-label probe does not use "
                                "unlabeled images.")
            return self._fit_multilabel(ctx, fs)
        classes = ctx.splits.classes
        counts = Counter(fs.labels.tolist())
        short = [classes[c] for c in range(len(classes)) if counts.get(c, 0) < 1]
        if short:
            raise DataError(
                f"after skipping unreadable files, class(es) {short} have no readable training image; "
                "add images to those class folders."
            )
        start = time.perf_counter()
        probe, cached = fit_probe(LinearProbe(class_weight=self.class_weight, seed=cfg.seed, features=self.features),
                                  fs.features, fs.labels, ctx.cache_dir, len(classes))
        sampled = f" (a stratified sample of {probe.cv_rows_} of {len(fs.labels)} images)" \
            if 0 < probe.cv_rows_ < len(fs.labels) else ""
        log.info("linear probe: %s features, C=%.3g from %s%s (%.1fs%s%s)", probe.treatment, probe.C_,
                 probe.settings_source, sampled, time.perf_counter() - start, ", from cache" if cached else "",
                 "; CV log-likelihood " + ", ".join(f"{k} {v:.4f}" for k, v in probe.cv_scores_.items())
                 if probe.cv_scores_ else "")

        semi = None
        if cfg.unlabeled:
            probe, semi = self._with_unlabeled(ctx, probe, fs)
        model = _probe_model(ctx, probe)
        train_metrics = classification_metrics(fs.labels, probe.predict_proba(fs.features))
        history = [{"epoch": 1, "lr": "", "train_loss": train_metrics["loss"], "seconds": fs.seconds
                    + time.perf_counter() - start}]
        # kept so that `tlearn extend` can add classes or images later without these images (tlearn.incremental)
        stats = FeatureStatistics.from_features(fs.features, fs.labels, classes, space_for(probe.treatment),
                                                probe.treatment)
        return FitResult(
            model=model, history=history, skipped=fs.skipped, train_metrics=train_metrics,
            files={STATS_FILE: stats.save},
            details={"C": probe.C_, "features": probe.treatment, "cv_log_likelihood": probe.cv_scores_,
                     "cv_folds": probe.folds_used_, "cv_images": probe.cv_rows_, "settings_from": probe.settings_source,
                     "cv_from_cache": cached, "class_weight": self.class_weight,
                     "train_feature_seconds": round(fs.seconds, 3), "train_features_from_cache": fs.from_cache}
            | ({"unlabeled": semi} if semi is not None else {}),
        )

    def _with_unlabeled(self, ctx: FitContext, probe: LinearProbe, fs) -> tuple[LinearProbe, dict]:
        """The probe refitted with pseudo-labelled unlabeled images when val (else CV on train) says it pays."""
        cfg = ctx.config
        extract = {"precision": ctx.precision, "device": ctx.device, "batch_size": cfg.batch_size,
                   "cache_dir": ctx.cache_dir, "num_workers": cfg.num_workers, "progress": cfg.progress}
        pool = extract_features(ctx.backbone, unlabeled_samples(cfg.unlabeled, ctx.splits, drop_train=True),
                                ctx.backbone_info.data_config, desc="unlabeled features", **extract)
        val = extract_features(ctx.backbone, ctx.splits.val, ctx.backbone_info.data_config, desc="val features",
                               **extract) if ctx.splits.val else None
        start = time.perf_counter()
        kept, record = choose_semi_supervised(probe, fs.features, fs.labels, pool.features, len(ctx.splits.classes),
                                              val.features if val else None, val.labels if val else None)
        record.update(source=str(cfg.unlabeled), unreadable=len(pool.skipped),
                      seconds=round(time.perf_counter() - start, 3))
        log.info("unlabeled images: %d; %s: %s (%s)", len(pool.samples), record["chosen"], record["why"],
                 ", ".join(f"{k} {v:.4f}" for k, v in record["scores"].items()) or "not judged")
        return kept, record

    def _fit_multilabel(self, ctx: FitContext, fs) -> FitResult:
        """One-vs-rest logistic regressions: a sigmoid head over the labels (tlearn.strategies.multilabel_probe)."""
        cfg, classes = ctx.config, ctx.splits.classes
        Y = label_matrix(fs.samples, len(classes))
        start = time.perf_counter()
        probe, cached = fit_probe(MultiLabelProbe(class_weight=self.class_weight, seed=cfg.seed,
                                                  features=self.features), fs.features, Y, ctx.cache_dir)
        log.info("multi-label linear probe: %s features, %d labels, C per label by up to %d-fold CV on train "
                 "(%.1fs%s; mean CV log-likelihood %s)", probe.treatment, len(classes), probe.folds_used_,
                 time.perf_counter() - start, ", from cache" if cached else "",
                 ", ".join(f"{k} {v:.4f}" for k, v in probe.cv_scores_.items()))
        for j, why in probe.fallback_.items():
            log.warning("label %r: %s", classes[j], why)
        model = _probe_model(ctx, probe)
        train_metrics = multilabel_metrics(Y, probe.predict_proba(fs.features), classes)
        out_of_fold = None
        if not ctx.splits.val:  # thresholds are then chosen on these
            out_of_fold = (fs.samples, probe.out_of_fold_proba(fs.features, Y))
        history = [{"epoch": 1, "lr": "", "train_loss": train_metrics["loss"], "seconds": fs.seconds
                    + time.perf_counter() - start}]
        positive_C = [c for c in probe.C_ if c is not None]
        return FitResult(
            model=model, history=history, skipped=fs.skipped, train_metrics=train_metrics, out_of_fold=out_of_fold,
            details={"C": float(np.median(positive_C)) if positive_C else None,
                     "C_per_label": {c: v for c, v in zip(classes, probe.C_)}, "features": probe.treatment,
                     "head": "sigmoid (one-vs-rest logistic regression per label)",
                     "cv_log_likelihood": probe.cv_scores_, "cv_folds": probe.folds_used_, "cv_from_cache": cached,
                     "fallback_labels": {classes[j]: why for j, why in probe.fallback_.items()},
                     "class_weight": self.class_weight, "train_feature_seconds": round(fs.seconds, 3),
                     "train_features_from_cache": fs.from_cache},
        )
