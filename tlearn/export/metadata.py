"""What travels inside an exported file: class names, input size, preprocessing and the run it came from."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from .._version import __version__
from ..hashing import sha256_file
from ..runs.run import Run

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def export_metadata(run: Run, fmt: str, quantization: str | None) -> dict:
    """JSON-serialisable description of an export; the runtime reads classes and data_config from it."""
    dc = run.data_config
    return {
        "classes": list(run.classes),
        "input_size": dc.input_size,
        "data_config": dc.to_dict(),
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC RGB",
                  "shape": ["N", dc.input_size, dc.input_size, 3]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(run.classes)],
                   "meaning": "sigmoid probabilities, one per label, in the order of classes" if run.multilabel
                   else "softmax probabilities in the order of classes"},
        "task": "multilabel" if run.multilabel else "single-label",
        **({"thresholds": dict(zip(run.classes, run.thresholds))} if run.multilabel else {}),
        "config_sha256": sha256_file(run.path / "config.yaml"),
        "model_name": f"{run.path.name} ({run.backbone_info.architecture}, "
                      f"{run.config.get('strategy', {}).get('name', '?')})",
        "architecture": run.backbone_info.architecture,
        "strategy": run.config.get("strategy", {}).get("name"),
        "run": str(run.path.resolve()),
        "format": fmt,
        "quantization": quantization or "none",
        "tlearn_version": __version__,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def encode(metadata: dict, prefix: str = "tlearn.") -> dict[str, str]:
    """Flat string map (ONNX metadata_props); each value JSON so lists and numbers round-trip."""
    return {f"{prefix}{k}": json.dumps(v) for k, v in metadata.items()}
