"""TorchScript export: a traced module that loads with torch.jit.load alone, metadata as an extra file."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from .graph import ImageClassifier, example_input

METADATA_FILE = "tlearn.json"


def export_torchscript(graph: ImageClassifier, path: Path, metadata: dict) -> None:
    """Trace (the graph has no data-dependent control flow) and freeze for inference."""
    x = example_input(graph.input_size)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph.eval(), (x,), check_trace=False)
        frozen = torch.jit.freeze(traced)
        torch.jit.save(frozen, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, dict]:
    """The scripted module and its tlearn metadata."""
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream but still loads
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module.eval(), json.loads(extra[METADATA_FILE] or "{}")
