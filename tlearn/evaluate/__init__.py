"""Metrics and evaluation of trained runs."""
from .metrics import classification_metrics, expected_calibration_error

__all__ = ["classification_metrics", "expected_calibration_error"]
