"""Names and defaults that argument parsing, scripts and the library share; torch-free, so `--help` stays fast."""
from __future__ import annotations

DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_STRATEGY = "linear-probe"
STRATEGY_NAMES = ("linear-probe", "finetune", "gradual", "lp-ft", "scratch", "auto")  # tlearn.strategies registers these
AUGMENT_PRESETS = ("none", "flip", "crop", "light", "medium", "strong")  # tlearn.data.augment's presets
PRECISIONS = ("auto", "bf16", "fp32")
OPTIMIZERS = ("adamw", "sgd")
RANK_METRICS = ("logme", "leep", "nce", "hscore")  # tlearn.rank.metrics implements these
DEFAULT_RANK_METRIC = "logme"
DEFAULT_VAL_FRACTION = 0.2  # held out of train for model selection when DATA has no val/
DEFAULT_AUTO_BUDGET_MINUTES = 15.0  # fit --strategy auto: the probe plus a halving over 2-4 fine-tunes of ~1000 images at 224 px
DEFAULT_DISTILL_BUDGET_MINUTES = 25.0  # distill --recipe stored without --epochs: flowers' 2000 images, 2 cores
AUTO_STRATEGY = "auto"  # fit --strategy auto: tlearn.auto searches the other strategies
AUTO_BACKBONE = "auto"  # fit --backbone auto: rank the candidate sources first, fit from the winner

DEFAULT_STUDENT = "compact_cnn"
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.9
ALONE_DIR = "student-alone"  # RUN/student-alone/: the same student trained without the teacher

# training-loop defaults shared by FitConfig, TrainOptions and the strategies
DEFAULT_WEIGHT_DECAY = 0.01
DEFAULT_TRAIN_BATCH_SIZE = 32
DEFAULT_BATCH_SIZE = 64  # images per forward pass for extraction / evaluation
DEFAULT_GRAD_CLIP = 1.0

MAX_LABELS = 100  # labels of one multi-label task: each gets its own cross-validated probe
MAX_FEATURE_DIM = 65536  # a run's recorded backbone feature_dim beyond this is an edited config.yaml, not a network

# the run report's "Where the model looks" gallery: at most this many images get heatmaps (0: no gallery), and
# heatmaps stop being added after this many seconds, so a report stays quick to write at the end of every fit
REPORT_HEATMAPS = 24
REPORT_HEATMAP_SECONDS = 60.0

# bootstrap confidence intervals of the headline metrics (tlearn.evaluate.intervals)
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed, so `tlearn evaluate` reproduces the intervals `fit` wrote

INT8_MAX_ACCURACY_DROP = 0.02  # tlearn export --int8 refuses a model whose val accuracy drops by more

LABEL_RANKINGS = ("self_confidence", "normalized_margin")  # how tlearn doctor ranks label issues
# --finetune-recipe: auto (chosen from the data's facts) or one of tlearn.strategies.recipes.FINETUNE_RECIPES
FINETUNE_RECIPE_NAMES = ("auto", "finetune", "train-bn", "small-images")
CACHE_DIR_HELP = ("cache folder for features, decoded images and other reusable results (default TLEARN_CACHE or "
                  "~/.cache/tlearn; `tlearn cache` shows and clears it)")
