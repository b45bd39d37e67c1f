"""tlearn extend: teach a trained run new classes, or more images of its classes, and write RUN2 with its lineage.

RUN2 is an ordinary run directory (its classes: RUN's, then the new ones in sorted order), written through
RunWriter. Methods:
  analytic  frozen backbone: the parent's feature statistics plus NEWDATA's give the closed-form head
            (tlearn.incremental.analytic); no old image is read for training.
  lwf       fine-tune the whole network from the parent on the new images, with the parent's outputs as soft
            targets (LwfLoss) and L2-SP towards the parent's weights; --replay K adds K old images per class.
  naive     the same fine-tuning without soft targets or the pull: the lower bound that shows forgetting.
val/test of RUN2 are those of every data folder in its lineage that is still on disk (evaluation only).
"""
from __future__ import annotations

import copy
import logging
import resource
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..backbones.model import TransferModel
from ..backbones.registry import count_parameters
from ..data.layout import DataSplits, Sample, load_splits
from ..errors import DataError, TlearnError
from ..evaluate.metrics import classification_metrics
from ..features.extract import extract_features
from ..hashing import file_digest
from ..features.statistics import STATS_FILE, FeatureStatistics, to_space
from ..runs.run import Run
from ..runs.writer import RunWriter, evaluate_splits, run_config, run_inputs, settle_runtime
from .analytic import solve_head
from .config import DEFAULT_LWF_L2_SP, ExtendConfig
from .replay import EXEMPLARS_FILE, choose_exemplars, exemplar_samples, read_exemplars, write_exemplars

log = logging.getLogger("tlearn")

ANALYTIC_PARENTS = ("linear-probe", "analytic")  # runs whose backbone is the frozen pretrained one


def default_method(parent: Run) -> str:
    return "analytic" if parent_strategy(parent) in ANALYTIC_PARENTS else "lwf"


def parent_strategy(parent: Run) -> str:
    return str(parent.config.get("strategy", {}).get("name") or parent.config.get("fit", {}).get("strategy", "?"))


def _normal(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def added_classes(old: list[str], new: list[str], data: str) -> list[str]:
    """NEWDATA's classes that are not the run's. A folder named like a known class but for case, spacing or
    Unicode form is refused: it is almost surely the same class, and a second output for it would split it."""
    known = {_normal(c): c for c in old}
    seen: dict[str, str] = {}
    for c in new:
        if c in old:
            continue
        if _normal(c) in known:
            raise DataError(f"class folder {c!r} in {data} differs from the run's class {known[_normal(c)]!r} only in "
                            f"case, spacing or Unicode form; rename it to {known[_normal(c)]!r} to add images to that "
                            "class, or give it a clearly different name for a new class.")
        if _normal(c) in seen:
            raise DataError(f"class folders {seen[_normal(c)]!r} and {c!r} in {data} differ only in case, spacing or "
                            "Unicode form; merge them or rename one.")
        seen[_normal(c)] = c
    return [c for c in new if c not in old]


def _remap(samples: list[Sample], source: list[str], target: list[str]) -> list[Sample]:
    index = {c: i for i, c in enumerate(target)}
    return [Sample(s.path, index[source[s.label]]) for s in samples]


def parent_lineage(parent: Run) -> list[dict]:
    """The steps that made the parent: its own lineage, or for a fitted run one step, the fit."""
    if isinstance(parent.config.get("lineage"), list):
        return copy.deepcopy(parent.config["lineage"])
    fit, data = parent.config.get("fit", {}), parent.config.get("data", {})
    return [{"step": 0, "run": str(parent.path), "method": parent_strategy(parent), "data": data.get("root"),
             "val_fraction": fit.get("val_fraction", 0.2), "seed": fit.get("seed", 0),
             "classes_added": list(parent.classes), "train_images": (data.get("counts") or {}).get("train")}]


def lineage_splits(lineage: list[dict], classes: list[str]) -> tuple[list[DataSplits], list[str]]:
    """Each lineage step's data re-split as it was (root, val_fraction, seed), labels by RUN2's classes; and the
    folders that are gone (their val/test are left out of RUN2's metrics)."""
    found, gone = [], []
    for step in lineage:
        root = step.get("data")
        if not root or not Path(root).exists():
            gone.append(str(root))
            continue
        try:
            s = load_splits(root, step.get("val_fraction", 0.2), step.get("seed", 0), min_classes=1)
        except TlearnError as exc:
            log.warning("lineage data %s cannot be read any more (%s); its val/test are left out", root, exc)
            gone.append(str(root))
            continue
        if any(c not in classes for c in s.classes):
            gone.append(str(root))
            continue
        found.append(DataSplits(s.root, classes, *(_remap(s.split(n), s.classes, classes)
                                                   for n in ("train", "val", "test")), s.val_source, s.skipped))
    return found, gone


def _union(parts: list[list[Sample]]) -> list[Sample]:
    """The samples of all parts, an image that is in several (by content: a copied test folder) once."""
    seen, out = set(), []
    for part in parts:
        for s in part:
            try:
                key = file_digest(s.path)
            except OSError:
                key = str(s.path)  # unreadable: evaluation lists it as skipped
            if key not in seen:
                seen.add(key)
                out.append(s)
    return out


def lineage_samples(run: Run, split: str) -> list[Sample]:
    """The val or test images of an extended run: those of every data folder in its lineage still on disk."""
    parts, _ = lineage_splits(run.config.get("lineage") or [], run.classes)
    return _union([p.split(split) for p in parts])


@dataclass
class StepResult:
    model: TransferModel
    history: list[dict]
    details: dict
    train_metrics: dict | None = None
    skipped: list = field(default_factory=list)
    files: dict = field(default_factory=dict)


def extend(run: str | Path, data: str | Path, out: str | Path, **options) -> Run:
    """Extend the run RUN with NEWDATA into OUT; options are ExtendConfig fields (method, head, replay, ...)."""
    return extend_config(ExtendConfig(run=str(run), data=str(data), out=str(out), **options))


def extend_config(cfg: ExtendConfig) -> Run:
    start = time.perf_counter()
    parent = Run(cfg.run)
    if Path(cfg.out).resolve() == parent.path.resolve():
        raise TlearnError(f"--out {cfg.out} is the run being extended; write the extension to a new folder (the "
                          "parent is never overwritten).")
    method = cfg.method or default_method(parent)
    if method == "analytic":
        check_analytic_parent(parent)
    fit = parent.config.get("fit", {})
    seed = fit.get("seed", 0) if cfg.seed is None else cfg.seed
    val_fraction = fit.get("val_fraction", 0.2) if cfg.val_fraction is None else cfg.val_fraction
    device, precision, cache_dir = settle_runtime(cfg.device or fit.get("device", "auto"),
                                                  parent.config.get("precision", "auto"),
                                                  cfg.cache_dir or fit.get("cache_dir"))
    torch.manual_seed(seed)
    new = load_splits(cfg.data, val_fraction, seed, min_classes=1)
    added = added_classes(parent.classes, new.classes, cfg.data)
    classes = list(parent.classes) + added
    new_train = _remap(new.train, new.classes, classes)
    log.info("extend %s (%s) with %s by %s: %d new class(es) %s, %d train images", parent.path,
             parent_strategy(parent), new.root, method, len(added), added, len(new_train))
    step = {"step": None, "run": str(Path(cfg.out).resolve()), "parent": str(parent.path), "method": method,
            "data": new.root, "val_fraction": val_fraction, "seed": seed, "classes_added": added,
            "images_added": {c: sum(1 for s in new_train if classes[s.label] == c) for c in new.classes}}
    lineage = parent_lineage(parent)
    step["step"] = len(lineage)
    lineage.append(step)
    writer = RunWriter(cfg.out, overwrite=cfg.overwrite)
    parts, gone = lineage_splits(lineage, classes)
    evaluation = DataSplits(new.root, classes, new_train, _union([p.val for p in parts]),
                            _union([p.test for p in parts]), "the val/test of every data folder in the lineage",
                            list(new.skipped))
    if method == "analytic":
        writer.start(run_inputs(parent.backbone_info, evaluation, "analytic"))
        result = _analytic(parent, new_train, classes, cfg, precision, device, cache_dir)
    else:
        writer.start(run_inputs(parent.backbone_info, evaluation, method))
        result = _finetuned(parent, new_train, classes, added, parts, lineage, cfg, method, seed, precision, device,
                            cache_dir)
    train_seconds = time.perf_counter() - start
    step["seconds"] = round(train_seconds, 3)
    model = result.model.eval()
    evaluated = evaluate_splits(model, evaluation, parent.data_config, precision=precision, device=str(device),
                                batch_size=fit.get("batch_size", 64), cache_dir=cache_dir, progress=cfg.progress)
    metrics = {"train": result.train_metrics} if result.train_metrics else {}
    metrics.update(evaluated.metrics)
    metrics.update(
        train_seconds=round(train_seconds, 3), total_seconds=round(time.perf_counter() - start, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        skipped=[s.to_dict() for s in list(new.skipped) + list(result.skipped) + evaluated.skipped],
        params=count_parameters(model),
        lineage=[{k: s.get(k) for k in ("step", "method", "data", "classes_added", "images_added", "train_images",
                                        "seconds") if k in s} for s in lineage],
        evaluated_on={"data": [p.root for p in parts], "gone": gone},
    )
    if gone:
        log.warning("val/test of %s left out of the metrics: the folder is gone or changed", ", ".join(gone))
    sections = {"fit": {**fit, "seed": seed, "val_fraction": val_fraction},
                "strategy": {"name": method, **result.details},
                "extend": {**cfg.to_dict(), "method": method, "parent": str(parent.path)}, "lineage": lineage}
    config = run_config(sections, parent.backbone_info, evaluation, precision, str(device))
    return writer.finish(model, classes, config, result.history, metrics, evaluated.predictions,
                         extra_files=result.files)


def check_analytic_parent(parent: Run) -> None:
    strategy = parent_strategy(parent)
    if strategy not in ANALYTIC_PARENTS:
        raise TlearnError(f"--method analytic needs a run whose backbone stayed frozen (a linear-probe run or its "
                          f"analytic extension); {parent.path} was trained with {strategy!r}. Use --method lwf "
                          "(or naive) for a fine-tuned run.")
    if not (parent.path / STATS_FILE).is_file():
        data = parent.config.get("data", {}).get("root", "DATA")
        raise TlearnError(f"{parent.path / STATS_FILE} is missing: {parent.path} was fitted by a tlearn that did not "
                          f"keep the linear probe's feature statistics. Fit it again (`tlearn fit {data} --out NEWRUN`;"
                          " its features come from the cache) and extend the new run.")


def _analytic(parent: Run, train: list[Sample], classes: list[str], cfg: ExtendConfig, precision: str, device,
              cache_dir: Path) -> StepResult:
    start = time.perf_counter()
    old = FeatureStatistics.load(parent.path / STATS_FILE)
    if old.classes != parent.classes or old.dim != parent.backbone_info.feature_dim:
        raise TlearnError(f"{parent.path / STATS_FILE} does not match the run's classes.json or backbone; the run "
                          "folder was edited. Extend an intact run.")
    backbone = parent.model.backbone
    fs = extract_features(backbone, train, parent.data_config, precision=precision, device=device,
                          batch_size=parent.config.get("fit", {}).get("batch_size", 64), cache_dir=cache_dir,
                          progress=cfg.progress, desc="new train features")
    log.info("new train features: %d images (%d from cache) in %.1fs", len(fs.samples), fs.from_cache, fs.seconds)
    empty = [c for k, c in enumerate(classes[len(parent.classes):], len(parent.classes)) if k not in set(fs.labels)]
    if empty:
        raise DataError(f"new class(es) {empty} have no readable training image in {cfg.data}; add images.")
    stats = old.with_classes(classes) + FeatureStatistics.from_features(fs.features, fs.labels, classes, old.space,
                                                                        old.treatment)
    solve_start = time.perf_counter()
    head = solve_head(stats, cfg.head)
    solve_seconds = time.perf_counter() - solve_start
    info = parent.backbone_info
    model = TransferModel(backbone, info.feature_dim, len(classes), info.architecture,
                          feature_norm="l2" if old.space == "l2" else None)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(head.weight))
        model.head.bias.copy_(torch.from_numpy(head.bias))
    probs = _softmax(head.logits(to_space(fs.features, old.space)))
    train_metrics = classification_metrics(fs.labels, probs)
    log.info("analytic %s head over %d classes from %d images' statistics (%.2fs to solve)", cfg.head, len(classes),
             int(stats.total), solve_seconds)
    history = [{"epoch": 1, "lr": "", "train_loss": train_metrics["loss"], "seconds": time.perf_counter() - start}]
    details = {**head.details, "features": old.treatment, "statistics_space": old.space,
               "images_in_statistics": int(stats.total), "solve_seconds": round(solve_seconds, 3),
               "train_feature_seconds": round(fs.seconds, 3), "train_features_from_cache": fs.from_cache}
    return StepResult(model, history, details, train_metrics, list(fs.skipped), {STATS_FILE: stats.save})


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _exemplars(parent: Run, classes: list[str], added: list[str], new_train: list[Sample], parts: list[DataSplits],
               lineage: list[dict], k: int, seed: int) -> tuple[list[dict], list[Sample]]:
    """(RUN2's exemplars: the parent's, or chosen now from its training data, plus k of each new class; the
    parent's as training samples, checked against their sha256)."""
    source = parent.path / EXEMPLARS_FILE
    old = read_exemplars(parent.path)
    if old is None:
        roots = {p.root for p in parts}
        missing = [s["data"] for s in lineage[:-1] if s.get("data") not in roots]
        if missing:
            raise TlearnError(f"--replay chooses the exemplars of {parent.path}'s classes from its training images the"
                              f" first time, but {', '.join(map(str, missing))} is gone; extend without --replay.")
        new_paths = {str(s.path) for s in new_train}
        old_train = [s for s in _union([p.train for p in parts])
                     if classes[s.label] in parent.classes and str(s.path) not in new_paths]
        old = choose_exemplars(old_train, classes, parent.classes, k, seed)
        source = Path(lineage[0].get("data") or parent.path)
    samples = exemplar_samples(old, classes, source)
    chosen = old + choose_exemplars(new_train, classes, added, k, seed)
    return chosen, samples


def _imprinted_head(old_model: TransferModel, new_train: list[Sample], n_old: int, n_classes: int, parent: Run,
                    precision: str, device, cache_dir: Path, progress: bool) -> torch.nn.Linear:
    """The parent's head with a row per new class imprinted from the class's mean feature (Qi et al. 2018), at
    the old rows' mean length and bias: new classes start predictable instead of at zero."""
    head = torch.nn.Linear(old_model.head.in_features, n_classes)
    old_w, old_b = old_model.head.weight.detach(), old_model.head.bias.detach()
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:n_old] = old_w
        head.bias.fill_(float(old_b.mean()))
        head.bias[:n_old] = old_b
        fresh = [s for s in new_train if s.label >= n_old]
        if fresh:
            fs = extract_features(old_model.backbone, fresh, parent.data_config, precision=precision, device=device,
                                  cache_dir=cache_dir, progress=progress, desc="new class features")
            H = torch.from_numpy(fs.features)
            if old_model.feature_norm == "l2":
                H = torch.nn.functional.normalize(H, dim=1) * H.shape[1] ** 0.5
            labels = torch.from_numpy(fs.labels)
            length = old_w.norm(dim=1).mean()
            for k in labels.unique().tolist():
                mean = H[labels == k].mean(0)
                head.weight[k] = mean / mean.norm().clamp_min(1e-12) * length
    return head


def _finetuned(parent: Run, new_train: list[Sample], classes: list[str], added: list[str], parts: list[DataSplits],
               lineage: list[dict], cfg: ExtendConfig, method: str, seed: int, precision: str, device,
               cache_dir: Path) -> StepResult:
    from ..config import FitConfig
    from ..strategies.base import FitContext
    from ..strategies.finetune import FineTune, train_options
    from ..train import train
    from .lwf import LwfLoss

    fit = parent.config.get("fit", {})
    l2_sp = cfg.l2_sp if cfg.l2_sp is not None else (DEFAULT_LWF_L2_SP if method == "lwf" else 0.0)
    fit_cfg = FitConfig.from_dict({**fit, "data": cfg.data, "out": cfg.out, "strategy": "finetune", "seed": seed,
                                   "epochs": cfg.epochs, "lr": cfg.lr, "l2_sp": l2_sp, "head_epochs": None,
                                   "patience": None, "resume": False, "budget_minutes": None,
                                   "progress": cfg.progress})
    strategy = FineTune(fit_cfg)
    old_model = parent.model
    model = copy.deepcopy(old_model)
    n_old, dim = len(parent.classes), parent.backbone_info.feature_dim
    model.head = _imprinted_head(old_model, new_train, n_old, len(classes), parent, precision, device, cache_dir,
                                 cfg.progress)
    exemplars, replayed = [], []
    if cfg.replay:
        exemplars, replayed = _exemplars(parent, classes, added, new_train, parts, lineage, cfg.replay, seed)
        log.info("replay: %d exemplar images of %d old classes", len(replayed), n_old)
    groups = [name for name, _ in model.layer_groups()]
    phases = strategy.phases(groups)
    ctx = FitContext(splits=None, backbone=model.backbone, backbone_info=parent.backbone_info, out=Path(cfg.out),
                     config=fit_cfg, precision=precision, device=str(device), cache_dir=cache_dir)
    options = train_options(fit_cfg, ctx, strategy, checkpoint_dir=None, resume=False, patience=None)
    loss = (LwfLoss(old_model, n_old, cfg.lwf_weight, cfg.temperature, options.label_smoothing)
            if method == "lwf" else None)
    # no val: a val set of the new classes alone would pick the epoch that forgot most; the last epoch is kept
    result = train(model, phases, new_train + replayed, [], parent.data_config, options, loss=loss,
                   num_classes=len(classes))
    details = {**result.details, "l2_sp_to_parent": l2_sp, "replay_per_class": cfg.replay,
               "replayed_images": len(replayed), "epochs": strategy.epochs, "lr": strategy.lr,
               **({"lwf_weight": cfg.lwf_weight, "temperature": cfg.temperature} if method == "lwf" else {}),
               "phases": [{"name": p.name, "epochs": p.epochs, "warmup_epochs": p.warmup_epochs} for p in phases]}
    files = {}
    if cfg.replay:
        files[EXEMPLARS_FILE] = lambda path: write_exemplars(path, exemplars, cfg.replay)
    return StepResult(result.model, result.history, details, None, list(result.skipped), files)
