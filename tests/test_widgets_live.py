"""Widgets and figures in a real kernel run without a front end (papermill, no BOOK_WIDGETS).

One small notebook checks three things a chapter relies on: ``lib.explore`` draws its
static figure and never waits on a front end; a ``LiveView`` update replaces its output in
place; and the book's figure style narrows a figure too wide for the text column.
"""

from __future__ import annotations

import base64
import io
import os

import matplotlib.image as mpimg
import nbformat
import papermill
import pytest

from lib.plotting import MAX_WIDTH_IN

CELLS = [
    "import matplotlib.pyplot as plt\nimport lib\nlib.use_style()",
    "def draw(t):\n    fig, ax = plt.subplots(figsize=(13, 3))\n    ax.plot([0, 1], [0, t], label='line')\n"
    "    ax.legend(fontsize=6)\n    plt.show()\n\nlib.explore(draw, {'t': (0.0, 1.0, 0.1, 0.5)})",
    "view = lib.widgets.LiveView(lambda a: print(f'a = {a}'))\nview.show(a=1)",
    "view.update(a=2)",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nbformat.write(nb, tmp / "in.ipynb")
    env_before = os.environ.pop("BOOK_WIDGETS", None)  # the run must not need it
    try:
        papermill.execute_notebook(str(tmp / "in.ipynb"), str(tmp / "out.ipynb"), kernel_name="python3",
                                   execution_timeout=120, progress_bar=False)
    finally:
        if env_before is not None:
            os.environ["BOOK_WIDGETS"] = env_before
    return nbformat.read(tmp / "out.ipynb", as_version=4)


def test_explore_draws_the_static_figure_and_shows_sliders(executed):
    outputs = executed.cells[1].outputs
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1, "the static figure is drawn in a run without a front end"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    width = mpimg.imread(io.BytesIO(base64.b64decode(pngs[0].data["image/png"]))).shape[1]
    dpi, pad = 110, 0.1  # the style's dpi; the tight save pads each side
    assert width <= (MAX_WIDTH_IN + 2 * pad) * dpi + 1, "a 13-inch figure is narrowed to the book's maximum width"
    assert width < 13 * dpi


def test_live_view_updates_its_output_in_place(executed):
    texts = [o.data["text/plain"] for o in executed.cells[2].outputs if "data" in o]
    assert texts == ["a = 2"]
    assert executed.cells[3].outputs == []
