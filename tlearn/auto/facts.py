"""The data facts the search's rules read: defined in tlearn.features.facts (shared with finetune's recipe choice
and the probe's advice); re-exported here for the search."""
from __future__ import annotations

from ..features.facts import PIXEL_SAMPLE, SIZE_SAMPLE, DataFacts, batchnorm_shift, measure_facts

__all__ = ["DataFacts", "measure_facts", "batchnorm_shift", "PIXEL_SAMPLE", "SIZE_SAMPLE"]
