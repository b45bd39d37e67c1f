"""Ship a run: ONNX or TorchScript files that take uint8 RGB images and return probabilities, checked at export.

    from tlearn.export import export_run
    result = export_run("runs/hym", "onnx", "hym.onnx")                 # fp32, parity <= 1e-4 or ExportError
    result = export_run("runs/hym", "onnx", "hym.int8.onnx", quantize="int8")  # accuracy delta in hym.int8.onnx.json
"""
from .exporter import ExportError, ExportResult, export_run

__all__ = ["ExportError", "ExportResult", "export_run"]
