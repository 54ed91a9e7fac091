"""A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe), for the HTML
report's end-to-end test. Standard library only: no websocket client, no chromedriver, no port to race for.

    with Browser() as b:
        b.open("file:///tmp/report.html")
        b.evaluate("document.images.length"); b.press("ArrowRight"); png = b.screenshot()
        b.errors  # console errors, uncaught exceptions and error log entries seen so far
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

KEYS = {"ArrowRight": 39, "ArrowLeft": 37, "End": 35, "Home": 36}


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Browser:
    """One headless Chromium process with one page; every command waits for its answer (`timeout` seconds)."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0):
        exe = find_chromium()
        if exe is None:
            raise FileNotFoundError("no chromium executable on PATH")
        self.timeout, self.events, self.errors, self.requests = timeout, queue.Queue(), [], []
        self._id, self._answers, self._lock = 0, {}, threading.Condition()
        to_chrome_r, self._to_chrome = os.pipe()  # Chromium reads commands on its fd 3
        self._from_chrome, from_chrome_w = os.pipe()  # and writes answers and events on its fd 4
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]  # clear of 3 and 4
        os.close(to_chrome_r), os.close(from_chrome_w)

        def child_fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._profile = tempfile.mkdtemp(prefix="gankit-chromium-")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={self._profile}",
                 f"--window-size={width},{height}", "about:blank"]
        # close_fds=False: the pipes are not inheritable (PEP 446), only the 3 and 4 that child_fds makes
        self.proc = subprocess.Popen([exe, *flags], close_fds=False, preexec_fn=child_fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in high:
            os.close(fd)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    # --- protocol ---------------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                break
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        self._answers[msg["id"]] = msg
                        self._lock.notify_all()
                else:
                    self._note(msg)
                    self.events.put(msg)
        with self._lock:
            self._answers[None] = "closed"
            self._lock.notify_all()

    def _note(self, msg: dict) -> None:
        """Keep every console error, uncaught exception, error log entry and network request."""
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append(f"log ({p['entry']['source']}): {p['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        with self._lock:
            self._id += 1
            i = self._id
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while i not in self._answers:
                if None in self._answers or not self._lock.wait(deadline - time.monotonic()):
                    raise TimeoutError(f"no answer from chromium to {method}")
            answer = self._answers.pop(i)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def send(self, method: str, params: dict | None = None) -> dict:
        """A command to the page's session."""
        return self._send(method, params, self.session)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                msg = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"chromium sent no {method}") from None
            if msg.get("method") == method:
                return msg.get("params", {})

    # --- what a test does -------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Navigate and wait for the load event (every inline image fetched)."""
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def press(self, key: str) -> None:
        """A real key press on the focused element (as a user's, firing input and change events)."""
        code = KEYS[key]
        for kind in ("rawKeyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                                 "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code})

    def screenshot(self, full_page: bool = False) -> bytes:
        """The page as PNG bytes: the viewport, or the whole page when `full_page`."""
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
