"""The book's Sphinx additions (tools/sphinx_ext.py) that need no build to test."""

from __future__ import annotations

import pytest
from docutils import nodes

from tools import sphinx_ext


def test_repository_url_setting(monkeypatch):
    monkeypatch.setenv("BOOK_REPO_URL", "https://github.com/Owner/learning-the-score/")
    assert sphinx_ext.repo_url() == "https://github.com/Owner/learning-the-score"
    assert sphinx_ext.pages_url(sphinx_ext.repo_url()) == "https://owner.github.io/learning-the-score/"
    monkeypatch.setenv("BOOK_REPO_URL", "")
    assert sphinx_ext.repo_url() == ""
    monkeypatch.setenv("BOOK_REPO_URL", "github.com/owner")
    with pytest.raises(ValueError, match="BOOK_REPO_URL"):
        sphinx_ext.repo_url()


def test_dollar_math_in_bibliography_becomes_math_nodes():
    doc = nodes.document(None, None)
    cit = nodes.citation()
    para = nodes.paragraph()
    para += nodes.Text("Nearly $d$-linear bounds for $\\mathbb R^d$ data.")
    cit += para
    doc += cit
    sphinx_ext.bibliography_math(None, doc, "book/references")
    maths = [m.astext() for m in doc.findall(nodes.math)]
    assert maths == ["d", "\\mathbb R^d"]
    assert para.astext() == "Nearly d-linear bounds for \\mathbb R^d data."
    assert not any("$" in str(t) for t in doc.findall(nodes.Text))


def test_a_notebook_beside_a_chapter_is_not_a_second_source():
    import yaml
    from sphinx.util.matching import Matcher

    config = yaml.safe_load((sphinx_ext.Path(__file__).resolve().parents[1] / "_config.yml").read_text())
    excluded = Matcher(config["exclude_patterns"])
    assert excluded("book/score_matching.ipynb") and excluded("book/sub/x.ipynb")
    assert not excluded("book/score_matching.md")
