"""Self-contained HTML reports of runs (RUN/report.html) and side-by-side comparisons of runs."""
from .build import build_report, write_report, write_report_safely

__all__ = ["build_report", "write_report", "write_report_safely"]
