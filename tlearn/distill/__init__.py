"""Knowledge distillation: a large teacher run teaches a small, fast student (Hinton et al. 2015).

distill(data, teacher, out, **options) -> Run   the student run directory (metrics.json has a distillation block)
DistillConfig                                   every setting of a distillation, saved in RUN/config.yaml
distillation_loss / DistillationLoss            the KD loss, and its hook for the tlearn.train loop
Teacher                                         a trained run that teaches; its outputs cached on disk
compare_costs                                   parameters, MB and CPU ms per image of models side by side
"""
from .config import DistillConfig
from .distill import ALONE_DIR, distill, distill_config, unlabeled_samples
from .loss import DistillationLoss, distillation_loss, soft_loss, soft_targets
from .measure import compare_costs, compare_latency
from .teacher import Teacher

__all__ = ["DistillConfig", "ALONE_DIR", "distill", "distill_config", "unlabeled_samples", "DistillationLoss",
           "distillation_loss", "soft_loss", "soft_targets", "compare_costs", "compare_latency", "Teacher"]
