"""tlearn.train: the fine-tuning loop that every gradient-based strategy (and distillation, and the study) uses.

Public API
----------
train(model, phases, train_samples, val_samples, data_config, options, *, loss=None, num_classes=None,
      on_epoch=None) -> TrainResult
    Trains a TransferModel through a list of Phase objects. Images are decoded once into the on-disk
    decoded-image cache (tlearn.data.decoded_cache), augmented per options.augment, and the best epoch on
    val (accuracy, then loss) is kept. Works unchanged under torchrun (DDP; rank 0 writes checkpoints).
Phase(name, epochs, lrs={group: peak_lr}, warmup_epochs=0, final_lr_ratio=0.01)
    What trains in a stretch of epochs: layer groups not in lrs are frozen (BatchNorm in inference mode).
    discriminative_lrs(group_names, top_lr, ratio) gives rates growing from stem to head.
TrainOptions(...)
    Loop hyper-parameters: batch_size, optimizer (adamw|sgd), weight_decay, label_smoothing, grad_clip,
    accumulation, augment (none|crop|light|medium|strong), class_weights (auto), sampler (balanced), freeze_bn,
    patience, max_seconds (wall-clock budget), max_epochs, seed, precision, checkpoint_dir, resume, ...
TrainResult(model, history, best_epoch, stopped, skipped, seconds, decode_seconds, details)
    history rows: epoch, lr, train_loss, val_loss, val_accuracy, seconds, phase, val_balanced_accuracy,
    val_macro_f1 (the run directory's history.csv).
Batch(images, labels, indices, targets, mix) and LossFn
    A loss is any callable loss(model, batch) -> scalar tensor. batch.indices are positions in
    train_samples, so distillation can look up cached teacher outputs per sample; batch.mix = (perm, lam)
    when mixup/cutmix mixed the batch. The default is CrossEntropy(class_weights, label_smoothing).
on_epoch(row) -> bool | None
    Called after every epoch with its history row; return True to stop (e.g. a study's own budget).
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import DistEnv, dist_env
from .losses import Batch, CrossEntropy, LossFn, inverse_frequency_weights
from .loop import TrainResult, evaluate_decoded, train, train_precision
from .options import TrainOptions
from .phases import Phase, discriminative_lrs, lr_at

__all__ = [
    "train", "TrainResult", "TrainOptions", "Phase", "discriminative_lrs", "lr_at", "Batch", "LossFn",
    "CrossEntropy", "inverse_frequency_weights", "evaluate_decoded", "train_precision", "DistEnv", "dist_env",
    "save_checkpoint", "load_checkpoint",
]
