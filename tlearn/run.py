"""A run directory: write it atomically, load it back, and predict or evaluate with it.

RUN/
  config.yaml      resolved config (data, backbone + weights sha256, strategy, hyper-parameters, seed, versions)
  classes.json     class names in output order
  metrics.json     {"val": {...}, "test": {...}, "train_seconds": s, "skipped": [...], ...}
  history.csv      epoch, lr, train_loss, val_loss, val_accuracy, seconds
  model.safetensors  the whole transfer model (backbone + head); config.yaml says how to rebuild it
  predictions/<split>.csv  path, label, predicted, confidence, p:<class>... (for reports)
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from safetensors.torch import save_file

from .backbones.model import BackboneInfo, TransferModel, load_transfer_model, model_file_metadata
from .data.layout import Sample, SkippedFile, list_images, read_labelled_folder
from .device import pick_device, resolve_precision
from .errors import TlearnError
from .files import atomic_path, atomic_write_text
from .evaluate.metrics import classification_metrics
from .evaluate.predict import predict_samples
from .features.cache import default_cache_dir

HISTORY_FIELDS = ["epoch", "lr", "train_loss", "val_loss", "val_accuracy", "seconds"]


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=float) + "\n")


def save_model(model: TransferModel, path: Path, metadata: dict | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {**{k: str(v) for k, v in (metadata or {}).items()}, **model_file_metadata(model)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def write_history(path: Path, rows: list[dict]) -> None:
    extra = [k for row in rows for k in row if k not in HISTORY_FIELDS]
    header = HISTORY_FIELDS + list(dict.fromkeys(extra))
    lines = [",".join(header)] + [",".join(_fmt(row.get(k, "")) for k in header) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_predictions(path: Path, samples: list[Sample], probs: np.ndarray, classes: list[str]) -> None:
    """One row per image, so reports can draw confusion matrices, curves and galleries later."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "predicted", "confidence"] + [f"p:{c}" for c in classes])
        for s, p in zip(samples, probs):
            label = classes[s.label] if s.label >= 0 else ""
            w.writerow([str(s.path), label, classes[int(p.argmax())], f"{p.max():.6f}"] + [f"{x:.6f}" for x in p])


@dataclass
class Prediction:
    path: str
    label: str
    probability: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "probability": self.probability,
                "probabilities": self.probabilities}


class Run:
    """A finished run directory: its config, classes, metrics and model, ready to predict."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        for name in ("config.yaml", "classes.json", "model.safetensors"):
            if not (self.path / name).is_file():
                raise TlearnError(f"{self.path} is not a tlearn run directory: {name} is missing.")
        self.config: dict = yaml.safe_load((self.path / "config.yaml").read_text())
        self.classes: list[str] = json.loads((self.path / "classes.json").read_text())
        self.backbone_info = BackboneInfo.from_dict(self.config["backbone"])
        self._model: TransferModel | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def metrics(self) -> dict:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def data_config(self):
        return self.backbone_info.data_config

    @property
    def model(self) -> TransferModel:
        if self._model is None:
            model = load_transfer_model(self.path / "model.safetensors", self.backbone_info, len(self.classes))
            self._model = model.eval()
        return self._model

    def _predict(self, samples: list[Sample], precision: str | None, batch_size: int, progress: bool,
                 use_cache: bool = True, tta: str | None = None):
        fit = self.config.get("fit", {})
        if tta:
            from .evaluate.tta import predict_samples_tta

            return predict_samples_tta(
                self.model, samples, self.data_config, tta, device=fit.get("device", "auto"),
                precision=precision or self.config.get("precision", "auto"), batch_size=batch_size, progress=progress,
            )
        return predict_samples(
            self.model, samples, self.data_config, precision=precision or self.config.get("precision", "auto"),
            device=fit.get("device", "auto"), batch_size=batch_size, cache_dir=fit.get("cache_dir"),
            use_cache=use_cache, progress=progress,
        )

    def predict(self, images, batch_size: int = 32, precision: str | None = None,
                progress: bool = False, tta: str | None = None) -> tuple[list[Prediction], list[SkippedFile]]:
        """Label image files: a path, a folder (recursive) or a list of paths.

        tta: None, "flip" or "crops": average the probabilities over flipped / cropped views (see evaluate.tta).
        """
        paths = [p for item in ([images] if isinstance(images, (str, Path)) else images) for p in list_images(item)]
        samples = [Sample(p, -1) for p in paths]
        probs, fs = self._predict(samples, precision, batch_size, progress, use_cache=False, tta=tta)
        out = []
        for s, p in zip(fs.samples, probs):
            k = int(p.argmax())
            out.append(Prediction(str(s.path), self.classes[k], float(p[k]),
                                  {c: float(x) for c, x in zip(self.classes, p)}))
        return out, fs.skipped

    def evaluate(self, split: str | Path, batch_size: int = 64, precision: str | None = None,
                 progress: bool = True, save_as: str | None = None, tta: str | None = None) -> dict:
        """Metrics on a labelled class tree (or CSV) whose classes are among the run's classes (tta as in predict)."""
        samples, skipped = read_labelled_folder(split, self.classes)
        probs, fs = self._predict(samples, precision, batch_size, progress, tta=tta)
        metrics = classification_metrics(fs.labels, probs) if len(fs.samples) else {"n": 0}
        metrics["skipped"] = [s.to_dict() for s in skipped + fs.skipped]
        if save_as:
            write_predictions(self.path / "predictions" / f"{save_as}.csv", fs.samples, probs, self.classes)
        return metrics


def load_run(path: str | Path) -> Run:
    return Run(path)


def prepare_run(out: str | Path, device: str, precision: str, cache_dir: str | None):
    """What every training command settles first: (OUT as a Path, torch device, precision, cache folder).

    Refuses an OUT that exists and is not a folder, before any work is done.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TlearnError(f"--out {out} exists and is not a folder; choose another run directory.")
    torch_device = pick_device(device)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return out, torch_device, resolve_precision(precision, torch_device), cache
