"""The bibliography's links: every ``doi`` and ``eprint`` (arXiv) field of references.bib is
well-formed, so the References page links each to a real address pattern (doi.org, arxiv.org)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pybtex.database import parse_file

BIB = Path(__file__).resolve().parents[1] / "references.bib"
# Crossref's DOI syntax: "10." + registrant code of 4-9 digits + "/" + a suffix without spaces.
DOI = re.compile(r"10\.\d{4,9}/[^\s{}]+")
# arXiv identifiers since 2007: YYMM.NNNN (to 2014) or YYMM.NNNNN (from 2015), optional version.
ARXIV = re.compile(r"(?P<yy>\d{2})(?P<mm>\d{2})\.(?P<num>\d{4,5})(v\d+)?")


@pytest.fixture(scope="module")
def entries():
    return parse_file(str(BIB), bib_format="bibtex").entries


def test_doi_fields_are_well_formed(entries):
    dois = {key: e.fields["doi"] for key, e in entries.items() if "doi" in e.fields}
    assert dois, "no entry carries a doi"
    bad = {key: doi for key, doi in dois.items() if not DOI.fullmatch(doi)}
    assert not bad, f"malformed doi (want 10.NNNN/suffix, no https://doi.org/ prefix): {bad}"


def test_eprint_fields_are_arxiv_identifiers_not_newer_than_the_entry(entries):
    eprints = {key: e for key, e in entries.items() if "eprint" in e.fields}
    assert eprints, "no entry carries an eprint"
    for key, e in eprints.items():
        ident = e.fields["eprint"]
        m = ARXIV.fullmatch(ident)
        assert m, f"{key}: eprint {ident!r} is not an arXiv identifier YYMM.NNNNN"
        year, month = 2000 + int(m["yy"]), int(m["mm"])
        assert 1 <= month <= 12, f"{key}: eprint {ident!r} has month {month}"
        # Five-digit numbers started in January 2015; four digits ended with December 2014.
        assert (len(m["num"]) == 5) == (year >= 2015), f"{key}: eprint {ident!r} has the wrong number width"
        # A preprint comes before (or in the year of) the publication it is cited as.
        assert year <= int(e.fields["year"]), f"{key}: eprint {ident!r} is later than the entry's year"


def test_each_link_identifies_one_entry(entries):
    seen: dict[str, str] = {}
    for key, e in entries.items():
        for field in ("doi", "eprint"):
            if field in e.fields:
                ident = e.fields[field].lower()
                assert ident not in seen, f"{key} and {seen[ident]} share {field} {ident}"
                seen[ident] = key
