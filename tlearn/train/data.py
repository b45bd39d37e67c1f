"""Training and validation batches from the decoded-image cache; every random choice is a pure function of
(seed, epoch, sample), so a resumed run and a run on any number of processes or workers see the same data."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.decoded_cache import DecodedImages


def epoch_seed(seed: int, epoch: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + salt * 104_729) % (2**31 - 1)


class AugmentedImages(Dataset):
    """(index in the original sample list, augmented image, label); augmentation seeded per (epoch, item)."""

    def __init__(self, decoded: DecodedImages, transform, seed: int = 0):
        self.decoded = decoded
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.labels = decoded.labels

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, k: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(self.seed, self.epoch, k + 1))
            image = self.transform(self.decoded.square(k))
        return self.decoded.rows[k], image, int(self.labels[k])


def epoch_order(labels: np.ndarray, epoch: int, seed: int, balanced: bool, rank: int = 0,
                world: int = 1) -> list[int]:
    """This process's item order for an epoch: a permutation, or class-balanced draws with replacement.

    Under DDP each process takes every world-th item of the shared order (padded to equal length).
    """
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    n = len(labels)
    if balanced:
        counts = np.bincount(labels)
        weights = torch.tensor(1.0 / counts[labels], dtype=torch.double)
        order = torch.multinomial(weights, n, replacement=True, generator=g).tolist()
    else:
        order = torch.randperm(n, generator=g).tolist()
    if world > 1:
        per_rank = -(-n // world)
        order = (order * 2)[: per_rank * world]
        order = order[rank::world]
    return order


def default_train_workers() -> int:
    """One augmentation process from 4 cores up; below that it only competes with the training threads (2 cores:
    epochs no faster, and the forked process adds its own resident memory: docs/results.md#speed-and-memory)."""
    return 1 if (os.cpu_count() or 1) >= 4 else 0


def collate(batch):
    index = torch.tensor([b[0] for b in batch], dtype=torch.long)
    images = torch.stack([b[1] for b in batch])
    labels = torch.tensor([b[2] for b in batch], dtype=torch.long)
    return index, images, labels


def train_loader(dataset: AugmentedImages, order: list[int], batch_size: int, num_workers: int) -> DataLoader:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < max(2, batch_size // 4):  # a tiny last batch upsets BatchNorm
        batches[-2].extend(batches.pop())
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=collate,
                      prefetch_factor=4 if num_workers else None, persistent_workers=False)


class EvalImages(Dataset):
    def __init__(self, decoded: DecodedImages, transform):
        self.decoded, self.transform, self.labels = decoded, transform, decoded.labels

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, k: int):
        return k, self.transform(self.decoded.square(k)), int(self.labels[k])
