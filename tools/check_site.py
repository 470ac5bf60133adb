"""Load every page of the built book in headless Chromium and report what a reader sees wrong.

Usage: ``python -m tools.check_site [_build/html] [--out _build/site-check]``.

Each page is served over HTTP from a local server (as a reader's browser would get it) and
loaded at 1280 px and 390 px, in the light and dark colour scheme. Failures: a console
error or uncaught exception; a request leaving the site; a failed request or an HTTP error
status; a MathJax error; raw TeX (``$...$``, ``\\(``) in the text; a display equation wider than
its box at 1280 px; at 390 px, a page that scrolls sideways or content (figures, tables,
equations, code) wider than the screen that no scrolling box of its own holds; an image
that did not load; a solution visible before it is opened or that cannot be opened; raw TeX
in the search page's snippets. A screenshot of each page in each mode, and of each
overflowing equation, goes to ``--out``, with ``report.json``.
Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .browser import CDPError, Chromium, Tab

PROBE = (Path(__file__).with_name("site_probe.js")).read_text()
MODES = [(1280, "light"), (1280, "dark"), (390, "light"), (390, "dark")]
SKIP_DIRS = {"_static", "_sources", "_images", "reports", "mathjax", "notebooks", "_downloads"}
SEARCH_QUERY = "gamma"


@dataclass
class PageResult:
    page: str
    mode: str
    problems: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)


def site_pages(root: Path) -> list[str]:
    """Every HTML page of the built site, relative to its root (redirect stubs left out:
    the page they lead to is checked itself)."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        if 'http-equiv="Refresh"' in path.read_text(encoding="utf-8", errors="replace")[:2000]:
            continue
        pages.append(rel.as_posix())
    return pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the report lists failed requests itself
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def prepare(tab: Tab, width: int, scheme: str) -> None:
    tab.send("Emulation.setDeviceMetricsOverride", width=width, height=900 if width > 600 else 844,
             deviceScaleFactor=1, mobile=width <= 600)
    tab.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])


def load(tab: Tab, url: str) -> int:
    """Navigate and wait for the load event; return the index of the first event of this load."""
    tab.send("Page.navigate", url="about:blank")
    time.sleep(0.05)
    start = len(tab.events)
    tab.send("Page.navigate", url=url)
    tab.wait_for("Page.loadEventFired", since=start)
    return start


def event_problems(events: list[dict], origin: str) -> list[str]:
    """Console errors, exceptions, requests off the site, failed requests and HTTP errors."""
    problems, urls = [], {}
    for ev in events:
        method, p = ev["method"], ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            problems.append(f"uncaught exception: {text.splitlines()[0] if text else d}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            problems.append(f"console error: {args[:200]}")
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            e = p["entry"]
            problems.append(f"console error: {e.get('text', '')[:200]} {e.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = p["request"]["url"]
            urls[p["requestId"]] = url
            scheme = urlsplit(url).scheme
            if scheme not in ("data", "blob", "about") and not url.startswith(origin):
                problems.append(f"request outside the site: {url}")
        elif method == "Network.responseReceived" and p["response"]["status"] >= 400:
            problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            problems.append(f"failed request: {urls.get(p['requestId'], '?')} ({p.get('errorText')})")
    return sorted(set(problems), key=problems.index)


def probe_problems(res: dict, width: int) -> list[str]:
    problems = [] if res["mathjaxLoaded"] else ["MathJax did not start within 15 s"]
    problems += [f"image not loaded: {src}" for src in res["brokenImages"]]
    problems += [f"download link to a missing file: {f}" for f in res["deadDownloads"]]
    problems += [f"MathJax error: {e}" for e in res["mathErrors"]]
    problems += [f"raw TeX in text: [{t}]" for t in res["rawTex"]]
    if width >= 1000:
        problems += [f"display equation overflows ({o['width']} px in {o['box']} px) near #{o['id']}: {o['tex']}"
                     for o in res["overflowing"]]
    if width < 1000:  # on a phone: nothing wider than the screen unless its own box scrolls
        if res["pageWidth"] > width + 1:  # (a page without a viewport tag is laid out 980 px wide)
            problems.append(f"page scrolls sideways: {res['pageWidth']} px wide on a {width} px screen")
        problems += [f"wider than the {width} px screen and cut off: {c}" for c in res["cutOff"]]
    problems += [f"solution visible before it is opened: {s}" for s in res["solutionsVisible"]]
    problems += [f"solution cannot be opened: {s}" for s in res["solutionsUnopenable"]]
    return problems


def check_page(tab: Tab, origin: str, page: str, width: int, scheme: str, out: Path) -> PageResult:
    result = PageResult(page, f"{width}-{scheme}")
    prepare(tab, width, scheme)
    start = load(tab, f"{origin}/{page}")
    res = tab.evaluate(PROBE)
    time.sleep(0.2)  # late console messages and requests
    tab.evaluate("0")
    result.problems = event_problems(tab.events[start:], origin) + probe_problems(res, width)
    result.notes = {k: res[k] for k in ("formulas", "images", "solutions", "downloads")}
    result.notes["overflowing"] = len(res["overflowing"])
    stem = page.replace("/", "__").removesuffix(".html")
    tab.screenshot(out / f"{stem}.{result.mode}.png")
    if width >= 1000 and scheme == "light":
        for i, o in enumerate(res["overflowing"]):
            tab.screenshot(out / f"{stem}.overflow-{i + 1}.png", clip=o["rect"])
    return result


def check_with_retry(tab: Tab, origin: str, page: str, width: int, scheme: str, out: Path) -> PageResult:
    """Check a page; a browser that did not answer in time (a busy machine) gets one retry."""
    for attempt in (1, 2):
        tab.events.clear()
        try:
            return check_page(tab, origin, page, width, scheme, out)
        except CDPError as exc:
            if attempt == 2:
                return PageResult(page, f"{width}-{scheme}", [f"page could not be checked: {exc}"])
    raise AssertionError("unreachable")


def check_search(tab: Tab, origin: str, out: Path) -> PageResult:
    """The search page's result snippets must not show raw TeX."""
    result = PageResult(f"search.html?q={SEARCH_QUERY}", "1280-light")
    prepare(tab, 1280, "light")
    start = load(tab, f"{origin}/search.html?q={SEARCH_QUERY}")
    found = tab.evaluate("""new Promise((resolve) => {
        const t0 = Date.now();
        const poll = () => {
          const items = document.querySelectorAll('#search-results li');
          const done = document.querySelector('#search-results .search-summary');
          if ((done && done.textContent.trim()) || Date.now() - t0 > 20000) {
            if (window.MathJax && MathJax.typesetPromise) {
              MathJax.startup.promise.then(() => setTimeout(() => resolve(items.length), 500));
            } else { resolve(items.length); }
          } else { setTimeout(poll, 100); }
        };
        poll();
      })""")
    res = tab.evaluate(PROBE.replace('document.querySelector("main .bd-article, article[role=main], main")',
                                     'document.querySelector("#search-results")'))
    result.problems = event_problems(tab.events[start:], origin)
    result.problems += [f"raw TeX in a search snippet: [{t}]" for t in res["rawTex"]]
    if not found:
        result.problems.append(f"search for {SEARCH_QUERY!r} found nothing")
    result.notes = {"results": found}
    tab.screenshot(out / "search-results.1280-light.png")
    return result


def run(root: Path, out: Path) -> list[PageResult]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    server, origin = serve(root)
    results = []
    try:
        with Chromium() as browser:
            tab = browser.new_tab()
            for domain in ("Page", "Runtime", "Log", "Network"):
                tab.send(f"{domain}.enable")
            tab.send("Network.setCacheDisabled", cacheDisabled=False)
            for page in site_pages(root):
                for width, scheme in MODES:
                    tab.events.clear()
                    results.append(check_with_retry(tab, origin, page, width, scheme, out))
            if (root / "search.html").exists():
                tab.events.clear()
                results.append(check_search(tab, origin, out))
            tab.close()
    finally:
        server.shutdown()
    return results


def summary(bad: list[PageResult]) -> list[str]:
    """Each distinct problem once, with its page and the modes that showed it."""
    seen: dict[tuple[str, str], list[str]] = {}
    for r in bad:
        for problem in r.problems:
            seen.setdefault((r.page, problem), []).append(r.mode)
    lines, page = [], None
    for (pg, problem), modes in seen.items():
        if pg != page:
            lines.append(f"FAIL {pg}")
            page = pg
        lines.append(f"    [{', '.join(modes)}] {problem}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--out", default=Path("_build/site-check"), type=Path)
    args = parser.parse_args(argv)
    if not (args.root / "index.html").exists():
        parser.error(f"{args.root} holds no built site (run `make book` first)")
    t0 = time.perf_counter()
    results = run(args.root, args.out)
    bad = [r for r in results if r.problems]
    (args.out / "report.json").write_text(json.dumps([r.__dict__ for r in results], indent=1))
    for line in summary(bad):
        print(line)
    formulas = sum(r.notes.get("formulas", 0) for r in results if r.mode == "1280-light")
    print(f"{len(results)} page loads ({len(site_pages(args.root))} pages x {len(MODES)} modes + search), "
          f"{formulas} formulas, {time.perf_counter() - t0:.0f} s; screenshots in {args.out}")
    print(f"site check: {len(results) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
