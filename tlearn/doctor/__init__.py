"""tlearn doctor: duplicates (also across splits), label issues, outliers and odd files of a dataset."""
from .diagnose import DoctorReport, diagnose
from .page import write_doctor

__all__ = ["DoctorReport", "diagnose", "write_doctor"]
