"""The browser check of the built site (tools/check_site.py) finds what it must, on pages made here.

Needs the system chromium (`make test-site` installs it); skipped where there is none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import check_site
from tools.browser import find_chromium

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no chromium (make test-site installs it)")

HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<script>window.MathJax = {{tex: {{inlineMath: [["\\\\(", "\\\\)"]]}}}};</script>
<script defer src="mathjax/es5/tex-mml-chtml.js"></script>
<style>main {{ max-width: 600px; }} .solution .body {{ display: none; }}
.solution.open .body {{ display: block; }}</style>
</head><body><main>{body}</main>
<script>document.querySelectorAll('.solution .admonition-title').forEach(
  (t) => t.addEventListener('click', () => t.parentElement.classList.toggle('open')));</script>
</body></html>"""
GOOD = r"""<p>Inline \(a_t = e^{-t}\) and a display</p>
<div class="math" id="equation-short">\[ s_t^2 = 1 - e^{-2t} \]</div>
<div class="solution admonition"><p class="admonition-title">Solution</p><div class="body">x</div></div>"""


def write_site(tmp: Path, pages: dict[str, str]) -> Path:
    tmp.mkdir(parents=True)
    (tmp / "mathjax").symlink_to(ROOT / "_vendor" / "mathjax", target_is_directory=True)
    for name, body in pages.items():
        (tmp / name).write_text(HEAD.format(title=name, body=body), encoding="utf-8")
    return tmp


def problems_of(results, page: str, mode: str = "1280-light") -> list[str]:
    return next(r.problems for r in results if r.page == page and r.mode == mode)


def test_clean_page_passes_and_each_fault_is_reported(tmp_path):
    long_sum = " + ".join(f"x_{{{i}}}^{{2}}" for i in range(80))
    site = write_site(tmp_path / "site", {
        "index.html": GOOD,
        "console.html": GOOD + "<script>console.error('boom'); undefinedFunction();</script>",
        "external.html": GOOD + '<img src="https://example.invalid/x.png" alt="">',
        "missing.html": GOOD + '<img src="nowhere.png" alt=""><a href="notebooks/none.ipynb">.ipynb</a>',
        "rawtex.html": GOOD + r"<p class='mathjax_ignore'>Nearly $d$-linear and \(\gamma\) left raw</p>"
                       + '<pre class="output">a $[-1,1]^d$ cube</pre>',
        "overflow.html": GOOD + f'<div class="math" id="equation-wide">\\[ {long_sum} \\]</div>',
        "visible.html": GOOD.replace('class="solution admonition"', 'class="solution admonition open"'),
        "mathjax-error.html": GOOD + r"<p>\(x^1^2\)</p>",
        "wide-table.html": GOOD + '<table id="cut" style="width:700px"><tr><td>x</td></tr></table>',
        "wide-scrolls.html": GOOD + '<div style="overflow-x:auto"><table style="width:700px"><tr><td>x</td></tr>'
                             '</table></div><pre style="overflow-x:auto">' + "x " * 200 + "</pre>"
                             '<div style="overflow:hidden"><div style="visibility:hidden"><table style="width:700px">'
                             '<tr><td>a closed drawer</td></tr></table></div></div>',
        "sideways.html": GOOD + '<div style="width:700px">a row of text wider than a phone</div>',
    })
    out = tmp_path / "shots"
    results = check_site.run(site, out)
    assert problems_of(results, "index.html") == []
    assert all(problems_of(results, "index.html", mode) == [] for mode in ("1280-dark", "390-light", "390-dark"))
    console = problems_of(results, "console.html")
    assert any("boom" in p for p in console) and any("undefinedFunction" in p for p in console)
    assert any(p.startswith("request outside the site: https://example.invalid") for p in
               problems_of(results, "external.html"))
    missing = problems_of(results, "missing.html")
    assert any("HTTP 404" in p and "nowhere.png" in p for p in missing)
    assert any(p.startswith("image not loaded") for p in missing)
    assert "download link to a missing file: /notebooks/none.ipynb" in missing
    raw = problems_of(results, "rawtex.html")
    assert any("$d$" in p for p in raw) and any("\\(\\gamma" in p for p in raw) and any("[-1,1]" in p for p in raw)
    over = problems_of(results, "overflow.html")
    assert len(over) == 1 and "#equation-wide" in over[0] and "x_{0}^{2} + x_{1}^{2}" in over[0]
    assert (out / "overflow.overflow-1.png").stat().st_size > 0
    assert not any("overflows" in p for p in problems_of(results, "overflow.html", "390-light"))  # desktop only
    # On a phone: content wider than the screen must scroll in its own box, and the page must not scroll
    phone = problems_of(results, "overflow.html", "390-light")
    assert any("cut off: mjx-container" in p and "x_{0}^{2}" in p for p in phone), phone
    cut = [p for p in problems_of(results, "wide-table.html", "390-light") if "cut off" in p]
    assert len(cut) == 1 and cut[0].startswith("wider than the 390 px screen and cut off: table#cut (700 px"), cut
    assert problems_of(results, "wide-table.html") == [] and problems_of(results, "wide-scrolls.html", "390-dark") == []
    assert any(p.startswith("page scrolls sideways") for p in problems_of(results, "sideways.html", "390-light"))
    assert problems_of(results, "sideways.html") == []
    assert any("solution visible before it is opened" in p for p in problems_of(results, "visible.html"))
    assert any(p.startswith("MathJax error") for p in problems_of(results, "mathjax-error.html"))
    assert (out / "index.1280-dark.png").stat().st_size > 0 and (out / "index.390-light.png").exists()


def test_site_pages_skip_assets(tmp_path):
    for rel in ("index.html", "book/a.html", "_static/x.html", "_sources/y.html", "notebooks/z.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<html></html>")
    (tmp_path / "redirect.html").write_text('<meta http-equiv="Refresh" content="0; url=book/a.html" />')
    assert check_site.site_pages(tmp_path) == ["book/a.html", "index.html"]


def test_missing_site_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        check_site.main([str(tmp_path), "--out", str(tmp_path / "o")])
    assert "no built site" in capsys.readouterr().err



def test_summary_lists_each_problem_once_with_its_modes():
    page = check_site.PageResult
    bad = [page("a.html", "1280-light", ["x", "y"]), page("a.html", "1280-dark", ["x"]),
           page("b.html", "390-light", ["z"])]
    assert check_site.summary(bad) == ["FAIL a.html", "    [1280-light, 1280-dark] x", "    [1280-light] y",
                                       "FAIL b.html", "    [390-light] z"]
