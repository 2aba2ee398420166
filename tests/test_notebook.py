"""The example notebook runs from top to bottom (nbclient) and computes the right traces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import nbclient
import nbformat
import numpy as np

NOTEBOOK = Path(__file__).parents[1] / "examples" / "cube_delay_scan.ipynb"


def roi_trace(path: str, roi: list[int]) -> np.ndarray:
    """Return the per-frame ROI sum per bin of a cube, computed with h5py and numpy."""
    r0, r1, c0, c1 = roi
    with h5py.File(path, "r") as f:
        data, frames = f["jungfrau1M_data"][()], f["jungfrau1M_nEntries"][()]
    sums = data[:, r0:r1, c0:c1].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(frames > 0, sums / frames, np.nan)


def test_example_notebook_executes_and_its_traces_are_right(tmp_path, monkeypatch):
    monkeypatch.delenv("MPICUBE_EXAMPLE_CUBES", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute(env={**os.environ, "TMPDIR": str(tmp_path)})
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # image + traces
    summary = json.loads(outputs[-1]["text"])
    on = roi_trace(summary["cube_on"], summary["roi"])
    off = roi_trace(summary["cube_off"], summary["roi"])
    assert np.isfinite(on).sum() >= 8
    np.testing.assert_allclose(summary["trace_on"], np.nan_to_num(on, nan=-1.0), rtol=1e-9)
    difference = np.nan_to_num(on - off, nan=-1.0)
    np.testing.assert_allclose(summary["difference"], difference, rtol=1e-9, atol=1e-6)
    assert min(summary["difference"]) < 0  # the pump lowers the Bragg peak after time zero
