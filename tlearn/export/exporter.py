"""export_run: build the uint8 -> probabilities graph, write it, check it against PyTorch, then publish it."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import INT8_MAX_ACCURACY_DROP
from ..errors import TlearnError
from ..runs.layout import write_json
from ..runs.run import Run
from ..runtime import Classifier
from .graph import ImageClassifier
from .metadata import export_metadata
from .parity import ParityReport, check_parity, reference_for, runtime_inputs, split_samples

log = logging.getLogger("tlearn")

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
FP32_LIMIT = 1e-4  # max |probability difference| an fp32 export may show against PyTorch fp32
CALIBRATION_IMAGES = 128


class ExportError(TlearnError):
    """The exported file does not reproduce the PyTorch model closely enough; nothing was published."""


@dataclass
class ExportResult:
    path: Path
    report_path: Path
    format: str
    quantization: str
    bytes: int
    metadata: dict
    parity: dict
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "report": str(self.report_path), "format": self.format,
                "quantization": self.quantization, "bytes": self.bytes, "parity": self.parity, **self.extra}


def default_output(run: Run, fmt: str, quantize: str | None) -> Path:
    return run.path / "exports" / f"model{'.int8' if quantize else ''}{FORMATS[fmt]}"


def export_run(run: str | Path | Run, fmt: str = "onnx", out: str | Path | None = None, *,
               quantize: str | None = None, data: str | Path | None = None, fp32_limit: float = FP32_LIMIT,
               max_accuracy_drop: float = INT8_MAX_ACCURACY_DROP, max_images: int | None = None) -> ExportResult:
    """Export a run and check it on the run's val split; raise ExportError (and publish nothing) on failure.

    fp32 must match PyTorch within fp32_limit on every probability; int8 (ONNX only) must not lose more than
    max_accuracy_drop of val accuracy. The figures are written to OUT.json next to the file.
    max_images limits the check to the first images of val (quick checks only; default: the whole split).
    """
    run = run if isinstance(run, Run) else Run(run)
    if fmt not in FORMATS:
        raise TlearnError(f"--format must be one of {sorted(FORMATS)}, not {fmt!r}.")
    if quantize not in (None, "none", "int8"):
        raise TlearnError(f"--quantize must be int8 (or omitted), not {quantize!r}.")
    quantize = None if quantize == "none" else quantize
    if quantize and fmt != "onnx":
        raise TlearnError("--quantize int8 is available for --format onnx (onnxruntime static int8); "
                          "TorchScript exports are fp32.")
    out = Path(out) if out else default_output(run, fmt, quantize)
    if out.is_dir():
        raise TlearnError(f"--out {out} is a folder; give a file name such as {out / ('model' + FORMATS[fmt])}.")
    out.parent.mkdir(parents=True, exist_ok=True)

    samples, root = split_samples(run, data, "val")
    samples = samples[:max_images] if max_images else samples
    log.info("export %s -> %s (%s%s); parity on %d val images of %s", run.path, out, fmt,
             ", int8" if quantize else "", len(samples), root)
    metadata = export_metadata(run, fmt, quantize)
    graph = ImageClassifier(run.model.float().eval(), run.data_config, run.multilabel).eval()
    reference = reference_for(run, samples)

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        fp32_path = Path(tmp) / f"fp32{FORMATS[fmt]}"
        if fmt == "onnx":
            from .onnx_format import export_onnx

            export_onnx(graph, fp32_path, {**metadata, "quantization": "none"})
            backend = Classifier(fp32_path).probabilities
        else:
            from .torchscript_format import export_torchscript

            export_torchscript(graph, fp32_path, metadata)
            backend = _torchscript_backend(fp32_path)
        fp32 = check_parity(run, backend, samples, "val", reference)
        log.info("fp32 %s vs PyTorch on %d val images: max |dp| %.2e, top-1 agreement %.4f", fmt, fp32.n,
                 fp32.max_abs_diff, fp32.top1_agreement)
        if fp32.max_abs_diff > fp32_limit or fp32.preprocess_max_pixel_diff:
            raise ExportError(
                f"{fmt} export of {run.path} does not match PyTorch: max |probability difference| "
                f"{fp32.max_abs_diff:.3g} (limit {fp32_limit:g}), top-1 agreement {fp32.top1_agreement:.4f}, "
                f"preprocessing pixel difference {fp32.preprocess_max_pixel_diff} on {fp32.n} val images; "
                f"{out} was not written."
            )
        extra: dict = {"fp32_parity": fp32.to_dict()}
        final, parity = fp32_path, fp32
        if quantize:
            final, parity = _quantize(run, fp32_path, Path(tmp), data, samples, reference, metadata,
                                      max_accuracy_drop, out)
            extra.update(fp32_bytes=fp32_path.stat().st_size, size_ratio=round(
                final.stat().st_size / fp32_path.stat().st_size, 4))
        os.replace(final, out)

    result = ExportResult(path=out, report_path=out.with_name(out.name + ".json"), format=fmt,
                          quantization=quantize or "none", bytes=out.stat().st_size, metadata=metadata,
                          parity=parity.to_dict(), extra=extra)
    write_json(result.report_path, {**result.to_dict(), "metadata": metadata})
    log.info("wrote %s (%.1f MB) and %s", out, result.bytes / 1e6, result.report_path)
    return result


def _torchscript_backend(path: Path):
    import torch

    from .torchscript_format import load_torchscript

    module, _ = load_torchscript(path)

    def probabilities(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

    return probabilities


def _quantize(run: Run, fp32_path: Path, tmp: Path, data, samples, reference, metadata: dict,
              max_accuracy_drop: float, out: Path) -> tuple[Path, ParityReport]:
    """Static int8 calibrated on train images (never val, which judges it), then judged on the whole val split."""
    from .onnx_format import quantize_int8

    train, _ = split_samples(run, data, "train")
    step = max(1, len(train) // CALIBRATION_IMAGES)
    _, arrays, _ = runtime_inputs(train[::step][:CALIBRATION_IMAGES], Classifier(fp32_path).preprocess)
    batches = [arrays[i:i + 16] for i in range(0, len(arrays), 16)]
    int8_path = tmp / "int8.onnx"
    quantize_int8(fp32_path, int8_path, batches, {**metadata, "quantization": "int8",
                                                 "calibration_images": len(arrays)})
    report = check_parity(run, Classifier(int8_path).probabilities, samples, "val", reference)
    log.info("int8 vs PyTorch fp32 on %d val images: accuracy %.4f -> %.4f (delta %+.4f), top-1 agreement %.4f, "
             "max |dp| %.3f; size %.1f MB -> %.1f MB", report.n, report.accuracy_pytorch, report.accuracy_export,
             report.accuracy_delta, report.top1_agreement, report.max_abs_diff, fp32_path.stat().st_size / 1e6,
             int8_path.stat().st_size / 1e6)
    if report.accuracy_delta < -max_accuracy_drop:
        raise ExportError(
            f"int8 export of {run.path} loses {-report.accuracy_delta:.4f} val accuracy "
            f"({report.accuracy_pytorch:.4f} -> {report.accuracy_export:.4f}), more than --max-accuracy-drop "
            f"{max_accuracy_drop}; {out} was not written. Export fp32 instead, or allow a larger drop."
        )
    return int8_path, report

