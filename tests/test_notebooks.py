"""The notebooks in notebooks/ run from top to bottom (so they cannot rot), and are committed
without outputs."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need `pip install nbformat nbclient ipykernel`")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need `pip install nbclient ipykernel`")
pytest.importorskip("panel", reason="the notebooks show the dashboard (panel)")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "01_quickstart.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom(path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    mimetypes = {m for c in nb.cells if c.cell_type == "code" for o in c.outputs for m in o.get("data", {})}
    plots = [m for m in mimetypes if "holoviews_exec" in m or "bokehjs_exec" in m]  # Panel or Bokeh output
    assert plots, f"no plot or dashboard was rendered: {sorted(mimetypes)}"
