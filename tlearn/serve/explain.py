"""`tlearn serve RUN --explain`: the page also shows where the model looks for an uploaded image.

POST /explain (one image, as for /predict) -> {"file", "predicted" (also as "label"), "probability", "method",
"layer", "heatmap": data:image/png URI, "seconds"}. The run's torch model computes the map on the run's eval crop; one map at a time
(a second request meanwhile gets 503), so the cost is bounded. /predict and its JSON are unchanged.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from ..errors import TlearnError
from ..runs import layout as run_layout

EXPLAIN_PX = 240  # the overlay's size on the page


class ExplainService:
    """The run's model with an Explainer, loaded once at start; explain() runs one image at a time."""

    def __init__(self, run_dir: str | Path, max_pixels: int):
        from ..explain.cam import Explainer, require_grad_cam
        from ..explain.images import EvalPreprocess
        from ..runs.run import Run

        require_grad_cam()
        if not run_layout.is_run(run_dir):
            raise TlearnError(f"--explain needs the run directory (its torch model draws the heatmaps), not "
                              f"{run_dir}; serve the run: tlearn serve RUN --explain.")
        run = Run(run_dir)
        self.classes = run.classes
        self.prep = EvalPreprocess(run.data_config)
        self.explainer = Explainer(run.model, device="cpu")
        self.max_pixels = max_pixels
        self.lock = threading.Lock()

    def explain(self, name: str, data: bytes) -> dict | None:
        """The heatmap of the predicted class; None when another image is being explained (the caller says 503).
        Raises runtime.ImageError for an image that cannot be used."""
        from ..explain.overlay import data_uri, overlay

        if not self.lock.acquire(blocking=False):
            return None
        try:
            start = time.perf_counter()
            image = self.prep.from_bytes(data, self.max_pixels)
            probs, (m,) = self.explainer.explain(image.tensor[None])
            predicted = self.classes[m.class_index]  # also as "label", as in /predict's entries
            return {"file": name, "predicted": predicted, "label": predicted, "probability": round(m.probability, 6),
                    "method": self.explainer.method, "layer": self.explainer.target.name,
                    "heatmap": data_uri(overlay(image.crop, m.heatmap, EXPLAIN_PX), "PNG"),
                    "seconds": round(time.perf_counter() - start, 4)}
        finally:
            self.lock.release()
