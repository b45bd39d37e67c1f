"""docs/quickstart.ipynb runs top to bottom in a fresh kernel, in an empty working folder, on the demo's images
(what a fresh machine has). A failing cell fails the test with that cell's source and output."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "quickstart.ipynb"
CELL_TIMEOUT = 600  # seconds per cell; the fit and the explanation take well under a minute on 2 cores
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours of IPython's tracebacks


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return ANSI.sub("", "\n".join(output.get("traceback", [])))
    return "".join(output.get("data", {}).get("text/plain", ""))


def run_notebook(path: Path, workdir: Path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        failing = next((c for c in nb.cells if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        if failing is None:
            pytest.fail(f"{path.name} failed:\n{ANSI.sub('', str(exc))}", pytrace=False)
        output = "".join(_text(o) for o in failing.outputs)
        pytest.fail(f"{path.name} failed at cell {nb.cells.index(failing)}:\n{failing.source}\n--- output ---\n"
                    f"{output}", pytrace=False)
    except nbclient.exceptions.CellTimeoutError as exc:
        pytest.fail(f"{path.name}: a cell ran longer than {CELL_TIMEOUT} s: {exc}", pytrace=False)
    return nb


def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    workdir = tmp_path / "work"
    workdir.mkdir()
    # the kernel imports this checkout's tlearn and keeps its caches in the test's folder
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path / "cache"))
    nb = run_notebook(NOTEBOOK, workdir)

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)  # every cell ran
    texts = ["".join(_text(o) for o in c.outputs) for c in code]
    assert "test accuracy" in texts[1] and "95% interval" in texts[1]
    report = [o for o in code[2].outputs if "text/html" in o.get("data", {})]
    assert report and "<iframe srcdoc=" in report[0]["data"]["text/html"]
    assert "PIL image" in texts[3] and "NumPy array" in texts[3] and "with probability" in texts[3]
    assert any("image/png" in o.get("data", {}) for o in code[4].outputs)  # the heatmap is shown
    assert (workdir / "quickstart-run" / "report.html").is_file()  # written where the notebook runs
    assert not (ROOT / "docs" / "quickstart-run").exists()


def test_notebook_is_stored_without_outputs():
    """Outputs hold machine paths and figures that change with every run: the notebook is kept clean."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
