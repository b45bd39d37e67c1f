"""How much of a teacher's pooled features a student's pooled features predict: a ridge regression fitted on
the train images, R^2 on val (1: the student's features carry everything the teacher's do, linearly; 0:
nothing). A check for feature hints (`tlearn distill --feature-weight`): did the hint reach the student?

    python benchmarks/student_feature_r2.py TEACHER_RUN DATA STUDENT_RUN [STUDENT_RUN ...]
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import Ridge

from tlearn.data.layout import load_splits
from tlearn.features.extract import extract_features
from tlearn.run import Run


def pooled_features(run: Run, splits) -> dict[str, np.ndarray]:
    options = dict(precision="fp32", device="cpu", batch_size=64, progress=False, use_cache=False)
    return {split: extract_features(run.model.backbone, splits.split(split), run.data_config, **options).features
            for split in ("train", "val")}


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
    teacher = pooled_features(Run(args.teacher), splits)
    for path in args.students:
        print(f"{path}: R^2 on val {r_squared(pooled_features(Run(path), splits), teacher):.3f}")


if __name__ == "__main__":
    main()
