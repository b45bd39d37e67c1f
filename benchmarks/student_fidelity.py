"""How closely a student follows its teacher, and whether it fits its training images:

- agreement: the share of val images where student and teacher predict the same class (fidelity; Stanton et
  al. 2021, "Does knowledge distillation really work?"). Distillation that works should raise it above the
  student trained alone.
- train accuracy: centre crops of the training images the student gets right; far below the teacher's, the
  student underfits, and soft targets that say little beyond the label cannot help it.
- feature R^2: how much of the teacher's pooled features the student's pooled features predict, through a
  ridge regression fitted on the train images (1: everything, linearly; 0: nothing). A check for feature hints
  (`tlearn distill --feature-weight`): did the hint reach the student?

    python benchmarks/student_fidelity.py TEACHER_RUN DATA STUDENT_RUN [STUDENT_RUN ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import Ridge

from tlearn.data.layout import load_splits
from tlearn.features.extract import extract_features
from tlearn.runs.run import Run


def pooled_features(run: Run, splits) -> dict[str, np.ndarray]:
    """{"train": ..., "val": ...} pooled features, and the "train_labels" and "val_labels" of the images that
    decoded."""
    options = {"precision": "fp32", "device": "cpu", "batch_size": 64, "progress": False, "use_cache": False}
    sets = {split: extract_features(run.model.backbone, splits.split(split), run.data_config, **options)
            for split in ("train", "val")}
    return {**{split: fs.features for split, fs in sets.items()},
            "train_labels": np.array([s.label for s in sets["train"].samples]),
            "val_labels": np.array([s.label for s in sets["val"].samples])}


def predicted_classes(run: Run, features: np.ndarray) -> np.ndarray:
    """The run's head applied to pooled features: the class each image is given."""
    with torch.inference_mode():
        return run.model.head(torch.from_numpy(features).float()).argmax(dim=1).numpy()


def train_accuracy(run: Run, features: dict) -> float:
    return float(np.mean(predicted_classes(run, features["train"]) == features["train_labels"]))


def r_squared(student: dict, teacher: dict) -> float:
    """Val R^2 of teacher features regressed on student features, over all feature dimensions together."""
    fitted = Ridge(alpha=1.0).fit(student["train"], teacher["train"])
    residual = ((fitted.predict(student["val"]) - teacher["val"]) ** 2).sum()
    spread = ((teacher["val"] - teacher["train"].mean(axis=0)) ** 2).sum()
    return float(1.0 - residual / spread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher")
    parser.add_argument("data")
    parser.add_argument("students", nargs="+")
    args = parser.parse_args()
    splits = load_splits(args.data)
    teacher_run = Run(args.teacher)
    teacher = pooled_features(teacher_run, splits)
    teacher_says = predicted_classes(teacher_run, teacher["val"])
    print(f"teacher: val accuracy {np.mean(teacher_says == teacher['val_labels']):.3f}, "
          f"train accuracy {train_accuracy(teacher_run, teacher):.3f}")
    for path in args.students:
        run = Run(path)
        student = pooled_features(run, splits)
        says = predicted_classes(run, student["val"])
        print(f"{path}: val accuracy {np.mean(says == student['val_labels']):.3f}, agreement with the teacher "
              f"{np.mean(says == teacher_says):.3f}, train accuracy {train_accuracy(run, student):.3f}, "
              f"feature R^2 {r_squared(student, teacher):.3f}")


if __name__ == "__main__":
    main()
