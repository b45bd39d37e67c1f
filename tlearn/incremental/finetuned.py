"""Extending a fine-tuned run: LwF (+ L2-SP towards the parent, + exemplar replay) or naive fine-tuning, through
the fine-tune strategy's phases and the training loop, with the parent's own settings."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch

from ..backbones.model import TransferModel
from ..data.layout import DataSplits, Sample
from ..errors import TlearnError
from ..features.extract import extract_features
from ..runs.records import phase_record
from ..runs.run import Run
from .config import DEFAULT_LWF_L2_SP, ExtendConfig
from .lineage import union
from .replay import EXEMPLARS_FILE, choose_exemplars, exemplar_samples, write_exemplars
from .step import StepResult

log = logging.getLogger("tlearn")


def _exemplars(parent: Run, kept: list[dict] | None, classes: list[str], added: list[str], new_train: list[Sample],
               parts: list[DataSplits], lineage: list[dict], k: int, seed: int) -> tuple[list[dict], list[Sample]]:
    """(RUN2's exemplars: the parent's (kept, as replay.read_exemplars read them), or chosen now from its training
    data, plus k of each new class; the parent's as training samples, checked against their sha256)."""
    source = parent.path / EXEMPLARS_FILE
    old = kept
    if old is None:
        roots = {p.root for p in parts}
        missing = [s["data"] for s in lineage[:-1] if s.get("data") not in roots]
        if missing:
            raise TlearnError(f"--replay chooses the exemplars of {parent.path}'s classes from its training images the"
                              f" first time, but {', '.join(map(str, missing))} is gone; extend without --replay.")
        new_paths = {str(s.path) for s in new_train}
        old_train = [s for s in union([p.train for p in parts])
                     if classes[s.label] in parent.classes and str(s.path) not in new_paths]
        old = choose_exemplars(old_train, classes, parent.classes, k, seed)
        source = Path(lineage[0].get("data") or parent.path)
    samples = exemplar_samples(old, classes, source)
    chosen = old + choose_exemplars(new_train, classes, added, k, seed)
    return chosen, samples


def _imprinted_head(old_model: TransferModel, new_train: list[Sample], n_old: int, n_classes: int, parent: Run,
                    precision: str, device, cache_dir: Path, progress: bool) -> torch.nn.Linear:
    """The parent's head plus a row per new class, imprinted (Qi et al. 2018) from the class's mean feature
    centred on the mean of all new images, at the old rows' mean length; its bias puts the new class level with
    the best old class on its own images. New classes start in the race instead of at zero, without swamping
    the old ones (pooled features are mostly positive, so an uncentred mean would score every image high)."""
    head = torch.nn.Linear(old_model.head.in_features, n_classes)
    old_w, old_b = old_model.head.weight.detach(), old_model.head.bias.detach()
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:n_old] = old_w
        head.bias.fill_(float(old_b.mean()))
        head.bias[:n_old] = old_b
        if not any(s.label >= n_old for s in new_train):
            return head
        fs = extract_features(old_model.backbone, new_train, parent.data_config, precision=precision, device=device,
                              cache_dir=cache_dir, progress=progress, desc="new features")
        H = torch.from_numpy(fs.features)
        if old_model.feature_norm == "l2":
            H = torch.nn.functional.normalize(H, dim=1) * H.shape[1] ** 0.5
        labels = torch.from_numpy(fs.labels)
        best_old = (H @ old_w.T + old_b).max(1).values
        centre, length = H.mean(0), old_w.norm(dim=1).mean()
        for k in [k for k in labels.unique().tolist() if k >= n_old]:
            mine = H[labels == k]
            direction = mine.mean(0) - centre
            if direction.norm() < 1e-6 * mine.mean(0).norm():  # one new class and nothing else: no contrast
                direction = mine.mean(0)
            head.weight[k] = direction / direction.norm().clamp_min(1e-12) * length
            head.bias[k] = (best_old[labels == k] - mine @ head.weight[k]).mean()
    return head


def lwf_l2_sp(fit: dict) -> float:
    """LwF's pull towards the parent: as strong as the parent recipe's pull towards the pretrained weights
    (DEFAULT_LWF_L2_SP for the strategy's default); a recipe without one learns new classes worse with it
    (docs/results.md#incremental-learning)."""
    return DEFAULT_LWF_L2_SP if fit.get("l2_sp") is None else float(fit["l2_sp"])


def extend_finetuned(parent: Run, new_train: list[Sample], classes: list[str], added: list[str],
                     parts: list[DataSplits], lineage: list[dict], cfg: ExtendConfig, method: str, seed: int,
                     precision: str, device, cache_dir: Path, kept: list[dict] | None = None) -> StepResult:
    from ..config import FitConfig
    from ..strategies.base import FitContext
    from ..strategies.finetune import FineTune, train_options
    from ..train import train
    from .lwf import LwfLoss

    from ..strategies.recipes import inherited_fit

    fit = inherited_fit(parent.config)  # the parent's recipe (optimizer, rates, BatchNorm rule, size) carries over
    # K exemplars per old class against hundreds of new images: unbalanced, the new classes win the old ones' images
    sampler = cfg.sampler or ("balanced" if cfg.replay else fit.get("sampler"))
    l2_sp = cfg.l2_sp if cfg.l2_sp is not None else (lwf_l2_sp(fit) if method == "lwf" else 0.0)
    fit_cfg = FitConfig.from_dict({**fit, "data": cfg.data, "out": cfg.out, "strategy": "finetune", "seed": seed,
                                   "epochs": cfg.epochs or fit.get("epochs"), "lr": cfg.lr or fit.get("lr"),
                                   "l2_sp": l2_sp, "head_epochs": None, "patience": None, "resume": False,
                                   "budget_minutes": None, "progress": cfg.progress, "sampler": sampler})
    strategy = FineTune(fit_cfg)
    old_model = parent.model
    model = copy.deepcopy(old_model)
    n_old, dim = len(parent.classes), parent.backbone_info.feature_dim
    model.head = _imprinted_head(old_model, new_train, n_old, len(classes), parent, precision, device, cache_dir,
                                 cfg.progress)
    exemplars, replayed = [], []
    if cfg.replay:
        exemplars, replayed = _exemplars(parent, kept, classes, added, new_train, parts, lineage, cfg.replay,
                                         seed)
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
               "replayed_images": len(replayed), "sampler": sampler, "epochs": strategy.epochs, "lr": strategy.lr,
               **({"lwf_weight": cfg.lwf_weight, "temperature": cfg.temperature} if method == "lwf" else {}),
               "phases": phase_record(phases)}
    files = {}
    if cfg.replay:
        files[EXEMPLARS_FILE] = lambda path: write_exemplars(path, exemplars, cfg.replay)
    return StepResult(result.model, result.history, details, None, list(result.skipped), files)
