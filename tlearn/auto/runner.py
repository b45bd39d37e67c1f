"""Run one candidate of the search in RUN/search/<name>/: an ordinary strategy with its own FitConfig, on train
and val only. A fine-tuning candidate trains up to a given epoch of its schedule and can be continued later
from its checkpoints (tlearn.train's resume); a probe runs whole."""
from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..backbones.model import TransferModel, load_transfer_model
from ..backbones.tensor_files import check_tensors, read_tensors
from ..evaluate.metrics import classification_metrics
from ..evaluate.predict import predict_samples
from ..strategies import FitContext, FitResult, get_strategy
from ..strategies.finetune import train_options
from ..runs import layout
from ..runs.records import options_record, phase_record
from ..runs.writer import save_model
from ..train import train
from ..train.selection import kept_row

PROBE_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = Path("checkpoints") / "best.safetensors"


# many candidates x epochs on a few hundred val images: the maximum is mostly noise (tlearn.train.selection)
KEEP_EPOCH = "one-se"


def kept_epoch_row(history: list[dict], n_val: int) -> dict | None:
    """The epoch the training loop keeps for a candidate (a probe's single row)."""
    return kept_row(history, KEEP_EPOCH, n_val)


def write_candidate_files(folder: Path, cfg_dict: dict, description: str) -> None:
    """config.yaml of the candidate: the FitConfig it trains with and the equivalent command-line options."""
    folder.mkdir(parents=True, exist_ok=True)
    layout.write_yaml(folder / layout.CONFIG, {"fit": cfg_dict, "options": description})


def run_probe(ctx: FitContext) -> dict:
    """Fit the linear probe, score it on val, save its weights; the record for search.json."""
    result: FitResult = get_strategy("linear-probe", ctx.config).fit(ctx)
    probs, fs = predict_samples(result.model, ctx.splits.val, ctx.backbone_info.data_config, precision=ctx.precision,
                                device=ctx.device, batch_size=ctx.config.batch_size, cache_dir=ctx.cache_dir,
                                progress=ctx.config.progress, desc="val features")
    val = classification_metrics(fs.labels, probs)
    save_model(result.model, Path(ctx.out) / PROBE_WEIGHTS)  # records an l2 feature norm, if the probe chose it
    history = [{**result.history[0], "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                "val_balanced_accuracy": val["balanced_accuracy"]}]
    return {"history": history, "details": result.details, "train_metrics": result.train_metrics,
            "skipped": [s.to_dict() for s in list(result.skipped) + list(fs.skipped)],
            "val": {k: val[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "loss", "n")},
            "weights": PROBE_WEIGHTS}


@dataclass
class EpochControl:
    """Called after every epoch with the history row; returns the reason to stop now, or None."""

    decide: Callable[[dict], str | None]
    reason: str | None = None

    def __call__(self, row: dict) -> bool:
        self.reason = self.decide(row)
        return self.reason is not None


def probe_head_model(ctx: FitContext, probe_folder: Path, num_classes: int) -> TransferModel:
    """A transfer model with the pretrained backbone and the probe candidate's head (what finetune's linear-
    probe warm-up would fit again from the same cached features)."""
    info = ctx.backbone_info
    model = TransferModel(ctx.backbone, info.feature_dim, num_classes, info.architecture)
    path = probe_folder / PROBE_WEIGHTS
    fix = "rerun without --resume to search from the start, or use a new --out"
    head = {k.removeprefix("head."): v for k, v in read_tensors(path, fix).items() if k.startswith("head.")}
    model.head.load_state_dict(check_tensors(head, model.head.state_dict(), path, fix))
    return model


def train_finetune(ctx: FitContext, control: EpochControl, head_from: Path | None, details: dict | None):
    """Train (or continue) a fine-tuning candidate until its schedule ends or control says stop.

    Returns (TrainResult, details for the record, files skipped while preparing)."""
    strategy = get_strategy(ctx.config.strategy, ctx.config)
    folder = Path(ctx.out)
    resuming = (folder / "checkpoints" / "last.json").is_file()
    num_classes = len(ctx.splits.classes)
    skipped: list = []
    probe = json.loads((head_from / "result.json").read_text()) if head_from is not None else None
    if probe is not None and probe["details"].get("features") == "l2":
        probe = None  # its head reads normalised features; fine-tuning starts from a standardized probe
    if resuming:  # the checkpoint replaces every weight: no need to fit the head again
        info = ctx.backbone_info
        model = TransferModel(ctx.backbone, info.feature_dim, num_classes, info.architecture)
        details = dict(details or {})
    elif probe is not None:
        model = probe_head_model(ctx, head_from, num_classes)
        details = {"head_init": "linear probe", "head_from": head_from.name,
                   "probe": {"C": probe["details"].get("C"), "train_accuracy": probe["train_metrics"]["accuracy"]}}
    else:
        model, details, skipped = strategy.initial_model(ctx)
    phases = strategy.phases([name for name, _ in model.layer_groups()])
    options = dataclasses.replace(train_options(ctx.config, ctx, strategy, resume=resuming),
                                  keep_epoch=KEEP_EPOCH)
    result = train(model, phases, ctx.splits.train, ctx.splits.val, ctx.backbone_info.data_config, options,
                   num_classes=num_classes, on_epoch=control)
    details = {**details, **{k: v for k, v in result.details.items() if k not in ("stopped",)},
               "phases": phase_record(phases), "train_options": options_record(options)}
    return result, details, skipped


def load_candidate_model(folder: Path, record: dict, info, num_classes: int) -> TransferModel:
    """The kept weights of a finished or stopped candidate: the probe's, or the kept epoch's."""
    path = folder / (PROBE_WEIGHTS if record["strategy"] == "linear-probe" else BEST_WEIGHTS)
    return load_transfer_model(path, info, num_classes).eval()


def fresh_context(ctx: FitContext, config, info, out: Path) -> FitContext:
    """A candidate's context: its own copy of the pretrained backbone, config, input size and folder."""
    return FitContext(splits=ctx.splits, backbone=copy.deepcopy(ctx.backbone), backbone_info=info, out=out,
                      config=config, precision=ctx.precision, device=ctx.device, cache_dir=ctx.cache_dir)

