"""What `tlearn serve` serves: an exported .onnx file as is, or a run directory exported (and checked) once."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import TlearnError
from ..hashing import sha256_file

log = logging.getLogger("tlearn")


def _exported_for(run_dir: Path, onnx_path: Path) -> bool:
    """Whether onnx_path was exported from this run's current config (config hash in its metadata)."""
    import onnx

    if not onnx_path.is_file():
        return False
    try:
        props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        return json.loads(props.get("tlearn.config_sha256", "null")) == sha256_file(run_dir / "config.yaml")
    except Exception:  # unreadable or foreign file: export again
        return False


def resolve_model(path: str | Path) -> Path:
    """An .onnx file to serve: the file itself, or RUN/exports/model.onnx (exported with parity check if stale)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise TlearnError(f"{path} is not an .onnx file; serve a run directory or a file made by "
                              "`tlearn export RUN --format onnx`.")
        return path
    if path.is_dir() and (path / "config.yaml").is_file():
        onnx_path = path / "exports" / "model.onnx"
        if _exported_for(path, onnx_path):
            return onnx_path
        log.info("exporting %s to %s first (once; parity checked on its val split)", path, onnx_path)
        from ..export import export_run

        return export_run(path, "onnx", onnx_path).path
    raise TlearnError(f"{path} is neither an .onnx file nor a tlearn run directory (with config.yaml).")
