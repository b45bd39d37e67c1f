"""tlearn.run: the names that lived here before the run directory got its own package (tlearn.runs)."""
from .runs.layout import HISTORY_FIELDS, write_history, write_json, write_predictions
from .runs.run import Prediction, Run, load_run
from .runs.writer import save_model

__all__ = ["HISTORY_FIELDS", "Prediction", "Run", "load_run", "save_model", "write_history", "write_json",
           "write_predictions"]
