"""tlearn incremental: the class-incremental protocol on any labelled folder.

The classes are put in an order (a seeded permutation, recorded) and cut into T tasks; each method learns the
tasks one after another (the first by `fit`, the rest by `extend`), and joint training on all tasks so far is
the upper bound. After every task the run's test predictions give one row of the accuracy matrix
A[i][j] = accuracy after task i on the classes of task j. Everything lands in STUDY/: task manifests, one run
directory per method and task, incremental.json and incremental.html.

Methods: analytic (linear probe, then the analytic head), lwf / replay / naive (fine-tune, then extend by LwF,
LwF + K exemplars per class, or plain fine-tuning), joint (the linear probe and, when a fine-tuned method is
asked for, fine-tuning, on all the data so far).
"""
from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import TlearnError
from ..files import spreadsheet_plain, spreadsheet_row
from ..runs import layout
from .config import FINETUNED_METHODS, PROTOCOL_METHODS, RECIPES, IncrementalConfig  # noqa: F401 (re-exported)

log = logging.getLogger("tlearn")

RESULTS_JSON, RESULTS_HTML = "incremental.json", "incremental.html"


def class_tasks(classes: list[str], tasks: int, order_seed: int) -> list[list[str]]:
    """The classes in a seeded order, cut into `tasks` consecutive groups (sizes differ by at most one)."""
    if tasks >= len(classes):
        raise TlearnError(f"--tasks {tasks} with {len(classes)} classes leaves the first task one class, and a run "
                          f"needs two to start from; choose at most {len(classes) - 1} tasks.")
    order = [classes[i] for i in np.random.default_rng(order_seed).permutation(len(classes))]
    return [list(part) for part in np.array_split(np.array(order, dtype=object), tasks)]


def _write_manifest(path: Path, splits, classes: set[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [(str(s.path), splits.classes[s.label], name) for name in ("train", "val", "test")
            for s in splits.split(name) if splits.classes[s.label] in classes]
    with open(path, "w", newline="", **layout.ENCODING) as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(spreadsheet_row(r) for r in rows)


def accuracy_matrix(run_dirs: list[Path], tasks: list[list[str]], split: str) -> list[list[float | None]]:
    """A[i][j]: accuracy of run i (after task i) on the `split` images of task j's classes (None for j > i)."""
    matrix = []
    for i, run in enumerate(run_dirs):
        with open(run / layout.PREDICTIONS / f"{split}.csv", newline="", **layout.ENCODING) as f:
            rows = [(spreadsheet_plain(r["label"]), spreadsheet_plain(r["predicted"])) for r in csv.DictReader(f)]
        row = []
        for j, task in enumerate(tasks):
            hits = [label == predicted for label, predicted in rows if label in task]
            row.append(float(np.mean(hits)) if j <= i and hits else None)
        matrix.append(row)
    return matrix


def summarise(matrix: list[list[float | None]], seen_accuracy: list[float]) -> dict:
    """final and average incremental accuracy (over the images of the classes seen so far) and forgetting
    (mean over the earlier tasks of the best accuracy before the last task minus the last)."""
    last = len(matrix) - 1
    drops = [max(matrix[i][j] for i in range(j, last)) - matrix[last][j] for j in range(last)
             if matrix[last][j] is not None]
    return {"final_accuracy": seen_accuracy[-1], "average_incremental_accuracy": float(np.mean(seen_accuracy)),
            "forgetting": float(np.mean(drops)) if drops else 0.0}


class Study:
    """One protocol run: its folder, task manifests and the run directory of every (method, seed, task)."""

    def __init__(self, cfg: IncrementalConfig):
        from ..data.layout import load_splits

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.splits = load_splits(cfg.data, cfg.val_fraction, 0)
        self.tasks = class_tasks(self.splits.classes, cfg.tasks, cfg.class_order_seed)
        self.split = "test" if self.splits.test else "val"
        self.methods = cfg.method_list
        self._check_folder()

    def _check_folder(self) -> None:
        saved = self.out / "protocol.json"
        current = {k: v for k, v in self.cfg.to_dict().items() if k not in ("progress", "num_workers", "out")}
        if saved.is_file():
            before = json.loads(saved.read_text())
            changed = sorted(k for k in current if k not in ("methods", "seeds") and before.get(k) != current[k])
            if changed:
                raise TlearnError(f"{self.out} holds a study with other settings ({', '.join(changed)} differ); use a "
                                  "new --out (its finished runs are reused only with the same settings).")
        elif self.out.exists() and any(self.out.iterdir()):
            raise TlearnError(f"--out {self.out} is a folder with files that is not an incremental study; choose a "
                              "new or empty folder.")
        self.out.mkdir(parents=True, exist_ok=True)
        layout.write_json(saved, current)
        for i in range(len(self.tasks)):
            _write_manifest(self.out / "tasks" / f"task{i}.csv", self.splits, set(self.tasks[i]))
            _write_manifest(self.out / "tasks" / f"upto{i}.csv", self.splits, set(sum(self.tasks[: i + 1], [])))

    def manifest(self, kind: str, i: int) -> Path:
        return self.out / "tasks" / f"{kind}{i}.csv"

    def _fit(self, data: Path, out: Path, strategy: str, seed: int) -> Path:
        from ..fitting import fit

        if not layout.is_complete(out):
            options = dict(strategy=strategy, backbone=self.cfg.backbone, weights=self.cfg.weights, seed=seed,
                           image_size=self.cfg.image_size, device=self.cfg.device, cache_dir=self.cfg.cache_dir,
                           num_workers=self.cfg.num_workers, progress=self.cfg.progress)
            if strategy == "finetune":
                from ..strategies.recipes import FINETUNE_RECIPES

                if self.cfg.recipe != "auto":  # auto: fit picks the recipe from the data's facts
                    options.update(FINETUNE_RECIPES[self.cfg.recipe])
                if self.cfg.epochs:
                    options.update(epochs=self.cfg.epochs)
                if self.cfg.train_batch_size:
                    options.update(train_batch_size=self.cfg.train_batch_size)
            fit(data, out, overwrite=True, **options)
        return out

    def _extend(self, parent: Path, data: Path, out: Path, method: str, seed: int) -> Path:
        from .extension import extend

        if not layout.is_complete(out):
            options = dict(seed=seed, device=self.cfg.device, cache_dir=self.cfg.cache_dir, progress=self.cfg.progress)
            if method == "analytic":
                options.update(method="analytic", head=self.cfg.head)
            else:
                options.update(method="naive" if method == "naive" else "lwf", epochs=self.cfg.epochs,
                               replay=self.cfg.replay if method == "replay" else 0)
            extend(parent, data, out, overwrite=True, **options)
        return out

    def run_method(self, method: str, seed: int) -> dict[str, list[Path]]:
        """{name: run directory after each task}; joint gives one sequence per family it is compared with."""
        base = self.out / "runs" / f"seed{seed}"
        tasks = range(len(self.tasks))
        if method == "joint":
            out = {"joint": [self._fit(self.manifest("upto", i), base / "joint" / f"task{i}", "linear-probe", seed)
                             for i in tasks]}
            if any(m in FINETUNED_METHODS for m in self.methods):
                out["joint-finetune"] = [self._fit(self.manifest("upto", i), base / "joint-finetune" / f"task{i}",
                                                   "finetune", seed) for i in tasks]
            return out
        first = (self._fit(self.manifest("task", 0), base / "joint" / "task0", "linear-probe", seed)
                 if method == "analytic" else
                 self._fit(self.manifest("task", 0), base / "joint-finetune" / "task0", "finetune", seed))
        runs = [first]
        for i in tasks[1:]:
            runs.append(self._extend(runs[-1], self.manifest("task", i), base / method / f"task{i}", method, seed))
        return {method: runs}

    def run(self) -> dict:
        start = time.perf_counter()
        results: dict[str, list[dict]] = {}
        for seed in range(self.cfg.seeds):
            for method in self.methods:
                for name, runs in self.run_method(method, seed).items():
                    results.setdefault(name, []).append(self._measure(runs, seed))
        study = {"data": {"root": self.splits.root, "classes": self.splits.classes, "counts": self.splits.counts(),
                          "val_source": self.splits.val_source},
                 "config": {k: v for k, v in self.cfg.to_dict().items() if k != "progress"},
                 "class_order": sum(self.tasks, []), "tasks": self.tasks, "split": self.split,
                 "results": results, "summary": self.summary(results),
                 "seconds": round(time.perf_counter() - start, 1)}
        layout.write_json(self.out / RESULTS_JSON, study)
        from .report import write_report

        write_report(study, self.out / RESULTS_HTML)
        return study

    def _measure(self, runs: list[Path], seed: int) -> dict:
        matrix = accuracy_matrix(runs, self.tasks, self.split)
        metrics = [layout.read_metrics(r) for r in runs]
        seen = [m[self.split]["accuracy"] for m in metrics]
        return {"seed": seed, "runs": [str(r) for r in runs], "matrix": matrix, "seen_accuracy": seen,
                "seconds": [m.get("train_seconds") for m in metrics], **summarise(matrix, seen)}

    def summary(self, results: dict[str, list[dict]]) -> dict:
        """Per method, the mean (and sd) over seeds, and the final accuracy against its joint upper bound."""
        out = {}
        for name, per_seed in results.items():
            row = {}
            for key in ("final_accuracy", "average_incremental_accuracy", "forgetting"):
                values = [r[key] for r in per_seed]
                row[key], row[f"{key}_sd"] = float(np.mean(values)), float(np.std(values))
            row["seconds_per_step"] = float(np.mean([s for r in per_seed for s in r["seconds"][1:]]))
            out[name] = row
        for name, row in out.items():
            joint = "joint" if name in ("analytic", "joint") else "joint-finetune"
            if joint in out:
                row["vs_joint"] = joint
                row["final_minus_joint"] = row["final_accuracy"] - out[joint]["final_accuracy"]
                row["joint_seconds_per_step"] = out[joint]["seconds_per_step"]
        return out


def run_incremental(cfg: IncrementalConfig) -> dict:
    return Study(cfg).run()
