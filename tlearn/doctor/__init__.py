"""tlearn doctor: duplicates (also across splits), label issues, outliers and odd files of a dataset.

DoctorConfig is torch-free (the CLI's `--help` builds from it); diagnose, DoctorReport and write_doctor are
imported on first use, since they import torch."""
from .config import DoctorConfig

__all__ = ["DoctorConfig", "DoctorReport", "diagnose", "write_doctor"]


def __getattr__(name: str):
    if name in ("DoctorReport", "diagnose"):
        # binds the names over the submodule tlearn.doctor.diagnose, which its import set as an attribute here
        from .diagnose import DoctorReport, diagnose as _diagnose

        globals().update(DoctorReport=DoctorReport, diagnose=_diagnose)
    elif name == "write_doctor":
        from .page import write_doctor

        globals()["write_doctor"] = write_doctor
    else:
        raise AttributeError(f"module 'tlearn.doctor' has no attribute {name!r}")
    return globals()[name]
