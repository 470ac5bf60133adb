"""The book's own Sphinx additions (loaded from ``_config.yml``).

* ``BOOK_REPO_URL`` (environment; ``make book REPO_URL=...``) turns on the repository and
  issue buttons and an "open in Colab" button for the chapter's reader notebook.
* Each chapter page offers its executed reader notebook (``notebooks/<chapter>.ipynb``,
  written at the end of the build by :mod:`tools.export`) in the download menu, and its
  student assignment notebook (``assignments/<chapter>.ipynb``, copied into the site by
  ``make book`` from :mod:`tools.assign`), with an "open in Colab" link when the repository is set.
* "Last updated" on each page is the date of the last commit of its source file.
* ``$...$`` in bibliography entries (e.g. a title "Nearly $d$-linear") is typeset as math.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

LOG = logging.getLogger(__name__)
NOTEBOOK_DIR = "notebooks"
ASSIGNMENT_DIR = "assignments"
INLINE_MATH = re.compile(r"\$([^$]+)\$")


def repo_url() -> str:
    url = os.environ.get("BOOK_REPO_URL", "").strip().rstrip("/")
    if url and not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"BOOK_REPO_URL must look like https://github.com/OWNER/NAME, got {url!r}")
    return url


def pages_url(repo: str) -> str:
    """The GitHub Pages address of a repository: https://owner.github.io/name/."""
    owner, name = urlsplit(repo).path.strip("/").split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def build_facts(app: Sphinx, config) -> None:
    """Substitutions for the execution-statistics and how-to-cite pages."""
    import datetime
    import importlib.metadata as md
    import platform

    quick = os.environ.get("BOOK_QUICK", "0").strip().lower() in ("1", "true", "yes")
    facts = {"build_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "book_settings": "quick (BOOK_QUICK=1)" if quick else "full",
             "python_version": platform.python_version(),
             "omp_threads": os.environ.get("OMP_NUM_THREADS", "default"),
             "torch_version": _version(md, "torch"), "book_version": _version(md, "learning-the-score")}
    config.myst_substitutions = {**facts, **(config.myst_substitutions or {})}


def _version(md, dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "unknown"


def configure_repository(app: Sphinx, config) -> None:
    repo = repo_url()
    opts = dict(config.html_theme_options or {})
    # The sidebar has the search field: no second one in a header bar. An explicit colour
    # mode, else the theme logs "invalid theme mode" on a reader's first visit.
    opts.setdefault("navbar_persistent", [])
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}
    opts.update({"use_repository_button": bool(repo), "use_issues_button": bool(repo),
                 "repository_url": repo or opts.get("repository_url", ""), "path_to_docs": "",
                 "repository_branch": "main"})
    config.html_theme_options = opts
    if repo and not config.html_baseurl:
        config.html_baseurl = pages_url(repo)


def drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """No live-code (thebe) scripts: the book has no thebe button, and sphinx-thebe's inline
    script is added twice (a SyntaxError on every page)."""
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [s for s in scripts if "thebe" not in (str(s) + str(getattr(s, "attributes", "")))]


def _git_date(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=path.parent,
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    source = context.get("page_source_suffix") and Path(app.srcdir) / f"{pagename}{context['page_source_suffix']}"
    if source and source.exists():
        date = _git_date(source)
        if date:
            context["last_updated"] = date
    if not app.env.metadata.get(pagename, {}).get("kernelspec"):
        return  # not a notebook chapter
    stem = Path(pagename).name
    url = f"{context['pathto'](NOTEBOOK_DIR, 1)}/{stem}.ipynb"
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"] = [b for b in group["buttons"] if b.get("label") != "download-notebook-button"]
            group["buttons"].insert(0, {"type": "link", "url": url, "text": ".ipynb", "icon": "fas fa-code",
                                        "tooltip": "Download the executed notebook",
                                        "label": "download-notebook-button"})
            group["buttons"].insert(1, _assignment_button(context["pathto"](ASSIGNMENT_DIR, 1), stem))
    repo = repo_url()
    if repo:
        owner_name = urlsplit(repo).path.strip("/")
        for group in context.get("header_buttons", []):
            if group.get("label") == "download-buttons":
                group["buttons"].insert(2, {
                    "type": "link", "icon": "fas fa-rocket", "text": "assignment (Colab)",
                    "url": f"https://colab.research.google.com/github/{owner_name}/blob/gh-pages/"
                           f"{ASSIGNMENT_DIR}/{stem}.ipynb",
                    "tooltip": "Open the student notebook in Colab", "label": "assignment-colab-button"})
        colab = f"https://colab.research.google.com/github/{owner_name}/blob/gh-pages/{NOTEBOOK_DIR}/{stem}.ipynb"
        context.setdefault("header_buttons", []).insert(0, {
            "type": "link", "url": colab, "tooltip": "Open the notebook in Colab", "icon": "fas fa-rocket",
            "label": "colab-button", "text": "Colab"})


def _assignment_button(folder: str, stem: str) -> dict:
    return {"type": "link", "url": f"{folder}/{stem}.ipynb", "text": "assignment", "icon": "fas fa-pen",
            "tooltip": "Download the student notebook (exercises with stubs and checks, no solutions)",
            "label": "download-assignment-button"}


def bibliography_math(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Typeset ``$...$`` inside citations (BibTeX titles) as inline math."""
    for cit in doctree.findall(nodes.citation):
        for text in list(cit.findall(nodes.Text)):
            if "$" not in text or isinstance(text.parent, nodes.math):
                continue
            parts, pos, src = [], 0, str(text)
            for m in INLINE_MATH.finditer(src):
                parts += [nodes.Text(src[pos:m.start()]), nodes.math(m.group(1), m.group(1))]
                pos = m.end()
            if parts:
                parts.append(nodes.Text(src[pos:]))
                text.parent.replace(text, parts)
                if app is not None:  # so that the page loads MathJax
                    app.env.get_domain("math").data["has_equations"][docname] = True


def write_notebooks(app: Sphinx, exception) -> None:
    """Write the executed chapters as plain-Jupyter reader notebooks into the site."""
    if exception is not None or app.builder.format != "html":
        return
    from . import export

    build_dir = Path(app.outdir).parent
    repo = repo_url()
    index = export.load_index(Path(app.outdir), [Path(app.srcdir) / b for b in app.config.bibtex_bibfiles],
                              app.config.html_baseurl or "")
    chapters = [d for d in app.env.found_docs if app.env.metadata.get(d, {}).get("kernelspec")]
    install = f"git+{repo}" if repo else ""
    written = export.reader_notebooks(build_dir, index, sorted(chapters), Path(app.outdir) / NOTEBOOK_DIR,
                                      install=install)
    LOG.info(f"reader notebooks: {len(written)} written to {NOTEBOOK_DIR}/")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", configure_repository)
    app.connect("config-inited", build_facts)
    app.connect("html-page-context", page_context, priority=600)
    app.connect("html-page-context", drop_thebe, priority=600)
    app.connect("doctree-resolved", bibliography_math)
    app.connect("build-finished", write_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
