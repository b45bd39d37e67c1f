"""ONNX export (torch.export based exporter) and int8 static quantization with onnxruntime."""
from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch

from ..errors import TlearnError
from .graph import ImageClassifier, example_input
from .metadata import INPUT_NAME, OUTPUT_NAME, encode

log = logging.getLogger("tlearn")
OPSET = 18


def write_metadata(path: Path, metadata: dict) -> None:
    """Replace the tlearn.* metadata_props of an ONNX file in place."""
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if not p.key.startswith("tlearn.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in encode(metadata).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "tlearn"
    model.doc_string = (f"tlearn image classifier {metadata.get('model_name', '')}: uint8 RGB (N, S, S, 3) -> "
                        "class probabilities; see the tlearn.* metadata")
    onnx.save(model, str(path))


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporter's graph passes log every rewrite at INFO; keep the user's log about tlearn."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(graph: ImageClassifier, path: Path, metadata: dict) -> None:
    """Trace the uint8-in, probabilities-out graph with a dynamic batch dimension into one .onnx file."""
    x = example_input(graph.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with quiet_exporters():
        program = torch.onnx.export(graph.eval(), (x,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)
    if program is None:
        raise TlearnError("torch.onnx.export returned nothing; cannot write the ONNX file.")
    program.save(str(path), external_data=False)
    write_metadata(path, metadata)


class _Calibration:
    """onnxruntime CalibrationDataReader over uint8 image batches."""

    def __init__(self, batches: Iterator[np.ndarray]):
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}

    def rewind(self):  # pragma: no cover - only some calibrators call it
        raise NotImplementedError


def quantize_int8(fp32_path: Path, out_path: Path, calibration: list[np.ndarray], metadata: dict) -> None:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on real images of the task."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        with quiet_exporters():
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
            quantize_static(
                str(prepared), str(out_path), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=["Conv", "MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax,
            )
    write_metadata(out_path, metadata)
