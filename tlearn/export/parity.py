"""Parity at export: the exported file, fed by tlearn.runtime's preprocessing, against the PyTorch model.

Reference: tlearn's own path (load_rgb + eval_transform + the run's model in fp32).
Candidate: tlearn.runtime's decoding and resize/crop (Pillow, numpy) + the exported graph on uint8 pixels.
So a passing check covers the whole path a user of the file takes, not the network alone.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import DEFAULT_VAL_FRACTION
from ..data.images import load_rgb
from ..data.layout import Sample, load_splits
from ..data.multilabel import label_matrix
from ..data.transforms import eval_transform, resize_crop
from ..errors import TlearnError
from ..runs.run import Run
from ..runtime import ImageError, Preprocess, decode_image

Backend = Callable[[np.ndarray], np.ndarray]  # uint8 (N, S, S, 3) -> probabilities (N, C)


@dataclass
class ParityReport:
    split: str
    n: int
    max_abs_diff: float  # max |p_export - p_pytorch| over all images and classes
    top1_agreement: float  # fraction of images with the same top-1 class (multi-label: the same label set)
    accuracy_pytorch: float
    accuracy_export: float
    preprocess_max_pixel_diff: int  # runtime's uint8 crop vs tlearn's, should be 0
    seconds: float
    skipped: list[dict] = field(default_factory=list)

    @property
    def accuracy_delta(self) -> float:
        return self.accuracy_export - self.accuracy_pytorch

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_delta": self.accuracy_delta}


def split_samples(run: Run, data: str | Path | None = None, split: str = "val") -> tuple[list[Sample], str]:
    """A split of the run's own data (config.yaml data.root, same seed and hold-out), or of `data`."""
    root = data or run.config.get("data", {}).get("root")
    fit = run.config.get("fit", {})
    if data is None and run.config.get("lineage"):  # an extension (tlearn extend): the val of its whole lineage
        from ..incremental.lineage import lineage_samples

        samples = lineage_samples(run, split)
        if samples:
            return samples, f"the {split} images of the lineage of {run.path}"
    if not root or not Path(root).exists():
        raise TlearnError(f"the data of run {run.path} ({root}) is not available, and export checks parity on "
                          "its val split; pass --data DATA (the same class folders) to check on it there.")
    splits = load_splits(root, fit.get("val_fraction", DEFAULT_VAL_FRACTION), fit.get("seed", 0), fit.get("group_by"),
                         fit.get("empty_label"))
    if splits.classes != run.classes:
        raise TlearnError(f"{root} has classes {splits.classes}, but run {run.path} has {run.classes}.")
    samples = splits.split(split)
    if not samples:
        raise TlearnError(f"{root} has no {split} images to check parity on.")
    return samples, str(root)


def runtime_inputs(samples: Sequence[Sample], preprocess: Preprocess) -> tuple[list[int], np.ndarray, list[dict]]:
    """Decode and crop with tlearn.runtime, as a user of the exported file would."""
    kept, arrays, skipped = [], [], []
    for i, s in enumerate(samples):
        try:
            img = decode_image(s.path, draft_size=preprocess.resize_size, dicom_window=preprocess.dicom_window)
            arrays.append(preprocess.to_array(img))
            kept.append(i)
        except ImageError as exc:
            skipped.append({"path": str(s.path), "reason": str(exc)})
    s = preprocess.input_size
    return kept, (np.stack(arrays) if arrays else np.zeros((0, s, s, 3), np.uint8)), skipped


@torch.inference_mode()
def pytorch_probabilities(run: Run, samples: Sequence[Sample], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, tlearn's uint8 crops) from tlearn's own preprocessing and the fp32 model."""
    cfg = run.data_config
    transform, geometry = eval_transform(cfg), resize_crop(cfg)
    model = run.model.float().eval()
    probs, crops = [], []
    for start in range(0, len(samples), batch_size):
        images = [load_rgb(s.path, draft_size=cfg.resize_size, dicom_window=cfg.dicom_window)
                  for s in samples[start:start + batch_size]]
        crops += [np.asarray(geometry(img), dtype=np.uint8) for img in images]
        x = torch.stack([transform(img) for img in images])
        logits = model(x).float()
        probs.append((torch.sigmoid(logits) if run.multilabel else torch.softmax(logits, dim=1)).numpy())
    return np.concatenate(probs), np.stack(crops)


def batched(backend: Backend, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate([backend(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)])


def check_parity(run: Run, backend: Backend, samples: Sequence[Sample], split: str,
                 reference: tuple[np.ndarray, np.ndarray, list[int], np.ndarray] | None = None) -> ParityReport:
    """Compare backend(runtime preprocessing) with the PyTorch fp32 path on every decodable sample."""
    start = time.perf_counter()
    reference = reference or reference_for(run, samples)
    ref_probs, ref_crops, kept, inputs = reference
    probs = batched(backend, inputs).astype(np.float64)
    labels = np.array([samples[i].label for i in kept])
    skipped = [{"path": str(samples[i].path), "reason": "undecodable"} for i in range(len(samples)) if i not in kept]
    if run.multilabel:  # accuracy is the subset accuracy at the run's thresholds, agreement that of the label sets
        truth = label_matrix([samples[i] for i in kept], len(run.classes)).astype(bool)
        cut = np.asarray(run.thresholds)[None, :]
        agree = lambda a, b: float(((a >= cut) == b).all(1).mean()) if len(kept) else 1.0  # noqa: E731
        top1, acc_ref, acc_exp = agree(probs, ref_probs >= cut), agree(ref_probs, truth), agree(probs, truth)
    else:
        top1 = float((probs.argmax(1) == ref_probs.argmax(1)).mean()) if len(kept) else 1.0
        acc_ref = float((ref_probs.argmax(1) == labels).mean()) if len(kept) else 0.0
        acc_exp = float((probs.argmax(1) == labels).mean()) if len(kept) else 0.0
    return ParityReport(
        split=split, n=len(kept),
        max_abs_diff=float(np.abs(probs - ref_probs).max()) if len(kept) else 0.0,
        top1_agreement=top1, accuracy_pytorch=acc_ref, accuracy_export=acc_exp,
        preprocess_max_pixel_diff=int(np.abs(inputs.astype(np.int16) - ref_crops.astype(np.int16)).max())
        if len(kept) else 0,
        seconds=round(time.perf_counter() - start, 3), skipped=skipped,
    )


def reference_for(run: Run, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """PyTorch probabilities and crops, and the runtime's inputs, on the samples both can decode."""
    dc = run.data_config
    kept, inputs, _ = runtime_inputs(samples, Preprocess(dc.input_size, dc.crop_pct, dc.interpolation,
                                                                  dc.dicom_window))
    if not kept:
        raise TlearnError("none of the parity images could be decoded; cannot check the export.")
    ref_probs, ref_crops = pytorch_probabilities(run, [samples[i] for i in kept])
    return ref_probs.astype(np.float64), ref_crops, kept, inputs
