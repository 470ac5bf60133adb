"""A small headless-Chromium driver over the DevTools protocol (CDP).

Only what the site check needs: open a tab, set the viewport and colour scheme, load a
page, evaluate JavaScript, collect console and network events, take screenshots. The
browser is the operating system's ``chromium`` (no browser download at run time); the
protocol runs over one WebSocket per tab (``websocket-client``).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import websocket

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-allow-origins=*", "--remote-debugging-port=0"]


def find_chromium() -> str | None:
    """Path of the system Chromium, or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Tab:
    """One page target: send commands, wait for events, keep every event seen."""

    def __init__(self, ws_url: str, timeout: float):
        self._ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True,
                                               enable_multithread=False)
        self._ids = itertools.count(1)
        self.timeout = timeout
        self.events: list[dict] = []

    def _recv(self, deadline: float) -> dict:
        self._ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            msg = json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException as exc:
            raise CDPError("no message from the browser in time") from exc
        if "method" in msg:
            self.events.append(msg)
        return msg

    def send(self, method: str, **params) -> dict:
        """Run one CDP command and return its result (events arriving meanwhile are kept)."""
        cid = next(self._ids)
        self._ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._recv(deadline)
            if msg.get("id") == cid:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def wait_for(self, method: str, timeout: float | None = None, since: int = 0) -> dict:
        """Wait for an event named ``method`` (one already seen after index ``since`` counts)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = since
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {method}")
            self._recv(deadline)

    def evaluate(self, expression: str, *, await_promise: bool = True):
        """Evaluate JavaScript in the page and return its JSON value."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=await_promise)
        if "exceptionDetails" in res:
            raise CDPError(f"page script failed: {res['exceptionDetails'].get('exception', {}).get('description')}")
        return res["result"].get("value")

    def screenshot(self, path: Path, *, clip: dict | None = None, full_page: bool = False) -> None:
        params: dict = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
            params["captureBeyondViewport"] = True
        elif full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000),
                              "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self._ws.close()


class Chromium:
    """A headless Chromium process with a fresh profile, closed on exit."""

    def __init__(self, binary: str | None = None, *, timeout: float = 60.0):
        binary = binary or find_chromium()
        if not binary:
            raise FileNotFoundError("no chromium on PATH (Debian/Ubuntu: apt-get install chromium)")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="site-check-", ignore_cleanup_errors=True)
        self._proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = self._read_port()

    def _read_port(self) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise CDPError(f"chromium exited with code {self._proc.returncode} at start")
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise CDPError("chromium did not open its DevTools port in time")

    def new_tab(self) -> Tab:
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            info = json.load(resp)
        return Tab(info["webSocketDebuggerUrl"], self.timeout)

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
