"""tlearn.fitting: `tlearn fit` as a job of the run pipeline (tlearn.runs.pipeline): data -> backbone -> strategy."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from .auto import AutoSearch
from .auto.advice import data_findings
from .backbones.model import BackboneInfo
from .config import FitConfig
from .constants import AUTO_BACKBONE, AUTO_STRATEGY
from .data.layout import SPLITS, DataSplits, load_splits
from .data.multilabel import refuse_multilabel
from .errors import TlearnError
from .features.extract import extract_features
from .features.sharded import Extraction, fill_cache
from .option_names import refuse_unknown
from .report import write_report_safely
from .runs.pipeline import Job, JobContext, JobResult, PipelineOptions, run_job
from .runs.run import Run
from .runs.source import load_source, resolve_info
from .strategies import FitContext, Strategy, get_strategy
from .strategies.recipes import apply_recipe
from .train.distributed import from_main

log = logging.getLogger("tlearn")


def fit(data: str | Path, out: str | Path, callbacks: Sequence = (), **options) -> Run:
    """Train a classifier on DATA with a transfer strategy and write the run directory OUT.

    options are FitConfig fields (strategy, backbone, weights, seed, ...); tlearn.fit (tlearn.api) spells them
    out for IDEs. An unknown option is refused with the closest valid name. callbacks: objects with
    on_run_start(config), on_epoch_end(row), on_run_end(run_dir, metrics) (tlearn.tracking.Callback), told as
    the run goes, beside the trackers of `track`. Returns the finished Run.
    """
    refuse_unknown(options, {f.name for f in dataclasses.fields(FitConfig)}, "tlearn.fit")
    return fit_config(FitConfig(data=str(data), out=str(out), **options), callbacks)


def choose_backbone(cfg: FitConfig, splits, cache_dir: Path):
    """--backbone auto: rank the candidate sources on train (features cached for the fit that follows). Under
    torchrun the features are extracted over all processes and rank 0 ranks: (winner, ranking or None there)."""
    from .rank.ranking import fill_rank_features, rank_sources
    from .rank.sources import parse_sources

    sources = parse_sources(cfg.rank_sources)
    options = dict(batch_size=cfg.batch_size, precision=cfg.precision, device=cfg.device, cache_dir=cache_dir,
                   num_workers=cfg.num_workers, progress=cfg.progress)
    ranking = None
    if fill_rank_features(splits, sources, **options):
        ranking = rank_sources(splits, sources, [cfg.rank_metric], seed=cfg.seed, **options)
        log.info("--backbone auto: %s by %s over %d source(s) in %.1fs", ranking.best(), cfg.rank_metric,
                 len(ranking.rows), ranking.seconds)
    return from_main(ranking.best() if ranking is not None else None), ranking


class FitJob(Job):
    """`tlearn fit`: a strategy (or the auto search) trains on the splits of DATA."""

    who = ""

    def __init__(self, cfg: FitConfig):
        self.cfg = cfg
        self.strategy = cfg.strategy
        self.ranking = None
        self.backbone = None
        self.info: BackboneInfo | None = None
        self.fitter: Strategy | None = None
        self.findings = None  # DataFindings: the data's facts, the recipe they chose, the probe's advice

    def load(self, ctx: JobContext) -> DataSplits:
        cfg = self.cfg
        splits = load_splits(cfg.data, cfg.val_fraction, cfg.seed, cfg.group_by, cfg.empty_label)
        if cfg.strategy == AUTO_STRATEGY:  # its search compares candidates by val accuracy, a single-label score
            refuse_multilabel(splits, "--strategy auto")
        if not splits.val and cfg.strategy != "linear-probe":
            raise TlearnError(f"{splits.root} has no val images ({splits.val_source}), and --strategy {cfg.strategy} "
                              "chooses its epochs and settings on val; use --strategy linear-probe (its settings "
                              "come from cross-validation on train), or give a val/ folder or a --val-fraction "
                              "above 0.")
        if not splits.val:
            log.info("no val images (%s): the probe's settings come from train alone, and the run reports test "
                     "only", splits.val_source)
        return splits

    def prepare(self, ctx: JobContext) -> BackboneInfo | None:
        cfg = self.cfg
        with ctx.timer("backbone"):
            name = cfg.backbone
            if name == AUTO_BACKBONE:
                name, self.ranking = choose_backbone(cfg, ctx.splits, ctx.cache_dir)
            self.backbone, native = load_source(name, cfg.weights, cfg.weights_sha256)
        # data facts -> fine-tuning recipe (tlearn.strategies.recipes), the probe's advice (tlearn.auto.advice)
        with ctx.timer("data_facts"):
            self.findings = data_findings(cfg, ctx.splits, self.backbone, native, ctx.cache_dir)
        if self.findings is not None and self.findings.applied:
            cfg = self.cfg = apply_recipe(cfg, self.findings.recipe)  # the user's explicit options stay
        # the data config is recorded in config.yaml, so predict/evaluate/export use it too
        info = self.info = resolve_info(native, image_size=cfg.image_size, train_size=cfg.train_size,
                                        dicom_window=cfg.dicom_window)
        log.info("backbone %s (%s weights, %s), %d px, %s on %s", info.name, info.weights, info.weights_origin,
                 info.data_config.input_size, ctx.precision, ctx.device)
        if cfg.strategy == "linear-probe":
            with ctx.timer("features"):
                if not fill_probe_features(cfg, ctx.splits, self.backbone, info.data_config, ctx.cache_dir,
                                           ctx.precision, ctx.device):
                    return None  # a torchrun worker: its share of the features is in rank 0's cache
        self.fitter = strategy_for(cfg)
        return info

    def train(self, ctx: JobContext) -> JobResult:
        fit_ctx = FitContext(splits=ctx.splits, backbone=self.backbone, backbone_info=self.info, out=ctx.out,
                             config=self.cfg, precision=ctx.precision, device=str(ctx.device),
                             cache_dir=ctx.cache_dir, on_epoch_end=ctx.tracking.on_epoch_end)
        result = self.fitter.fit(fit_ctx)
        sections = {"rank": self.ranking.to_dict()} if self.ranking is not None else {}
        details, metrics = dict(result.details), {}
        if self.findings is not None:
            metrics["data_findings"] = self.findings.to_dict()
            if self.findings.applied:  # the recipe finetune used and the fact that chose it
                details["recipe"] = self.findings.recipe.to_dict()
            else:  # a probe: the recipe finetune would use (extend carries it over)
                sections["data_findings"] = {"recipe": self.findings.recipe.to_dict()}
        return JobResult(model=result.model, history=result.history, details=details,
                         train_metrics=result.train_metrics, skipped=list(result.skipped), files=result.files,
                         out_of_fold=result.out_of_fold, backbone_info=result.backbone_info, sections=sections,
                         metrics=metrics)

    def fit_section(self) -> dict:
        return self.cfg.to_dict()


def strategy_for(cfg: FitConfig) -> Strategy:
    """The strategy object of cfg.strategy; `auto` is the search of tlearn.auto (which builds on the others)."""
    if cfg.strategy == AUTO_STRATEGY:
        return AutoSearch(cfg)
    return get_strategy(cfg.strategy, cfg)


def pipeline_options(cfg: FitConfig, callbacks: Sequence = ()) -> PipelineOptions:
    """The pipeline's part of a fit's options (the trackers of --track, then the caller's callbacks)."""
    return PipelineOptions(out=cfg.out, seed=cfg.seed, device=cfg.device, precision=cfg.precision,
                           cache_dir=cfg.cache_dir, batch_size=cfg.batch_size, progress=cfg.progress,
                           overwrite=cfg.overwrite, resume=cfg.resume, strict=cfg.strict, group_by=cfg.group_by,
                           report=write_report_safely,
                           track=cfg.track, tracking_uri=cfg.tracking_uri, callbacks=list(callbacks))


def fit_config(cfg: FitConfig, callbacks: Sequence = ()) -> Run | None:
    """Run the fit that cfg describes, telling callbacks (tlearn.tracking.Callback) as it goes; None in a torchrun
    worker other than rank 0 (which writes the run)."""
    return run_job(FitJob(cfg), pipeline_options(cfg, callbacks))


def fill_probe_features(cfg: FitConfig, splits: DataSplits, backbone, data_config, cache_dir: Path, precision: str,
                        device) -> bool:
    """The features the linear probe and the evaluation will read (train, val, test) in the cache before training
    (so the run's phases time extraction apart from the probe's fit): under torchrun extracted over all processes
    into rank 0's cache, else here. Whether this process goes on (rank 0, or a single process)."""
    jobs = [Extraction(backbone, splits.split(name), data_config) for name in SPLITS if splits.split(name)]
    filled = fill_cache(jobs, precision=cfg.precision, device=cfg.device, batch_size=cfg.batch_size,
                        cache_dir=cache_dir, num_workers=cfg.num_workers, progress=cfg.progress)
    if not filled.env.enabled:
        for job in jobs:
            extract_features(job.backbone, job.samples, data_config, precision=precision, device=device,
                             batch_size=cfg.batch_size, cache_dir=cache_dir, num_workers=cfg.num_workers,
                             progress=cfg.progress, desc="features")
    return filled.is_main
