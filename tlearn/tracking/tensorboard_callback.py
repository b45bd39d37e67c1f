"""TensorBoardCallback: the per-epoch scalars tlearn's training loop writes to RUN/tensorboard, plus the config as
text and the final metrics, through torch's SummaryWriter (needs the `tensorboard` package)."""
from __future__ import annotations

from pathlib import Path

from ..errors import TlearnError
from .base import EPOCH_METRICS, epoch_metrics, flatten_config, run_metrics

INSTALL_HINT = "pip install 'tlearn[tensorboard]'"


def summary_writer_class():
    """torch's SummaryWriter, or an error that says how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise TlearnError(f"--track tensorboard needs TensorBoard, which is not installed ({exc}); "
                          f"{INSTALL_HINT}") from exc
    return SummaryWriter


class TensorBoardCallback:
    """Scalars lr, train_loss, val_loss, val_accuracy (and seconds) at step=epoch, as the training loop logs them;
    the flattened config as a text table; metrics.json's numbers under final/ at the last epoch."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writer = None
        self._last_epoch = 0
        self._writer_class = summary_writer_class()  # checked here, before training

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self._writer_class(str(self.log_dir))
        return self._writer

    def on_run_start(self, config: dict) -> None:
        """Write the config as a markdown table (TensorBoard's Text tab)."""
        rows = "\n".join(f"| {k} | {v} |" for k, v in flatten_config(config).items())
        self.writer.add_text("config", "| option | value |\n|---|---|\n" + rows, 0)

    def on_epoch_end(self, row: dict) -> None:
        """The row's numbers at step=epoch."""
        epoch, values = epoch_metrics(row)
        step = epoch if epoch is not None else self._last_epoch + 1
        self._last_epoch = max(self._last_epoch, step)  # a resumed run's earlier epochs may come after its new ones
        for key in EPOCH_METRICS:
            if key in values:
                self.writer.add_scalar(key, values[key], step)
        self.writer.flush()

    def on_run_end(self, run_dir: Path, metrics: dict) -> None:
        """metrics.json's numbers under final/, then close the event file."""
        for key, value in run_metrics(metrics).items():
            self.writer.add_scalar(f"final/{key}", value, self._last_epoch)
        self.close()

    def on_run_failed(self, error: BaseException) -> None:
        """Close the event file."""
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
