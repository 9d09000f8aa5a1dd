"""Load a local HTML file in a real headless Chromium (Debian's ``chromium``) over the DevTools
protocol and say what a reader would see: each image's rendered size, the requests that failed,
the console errors.  aiohttp (a Ray dependency) speaks the protocol's websocket."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

IMAGES_JS = ("JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
             "width: i.naturalWidth, height: i.naturalHeight})))")


def chromium() -> Optional[str]:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


async def _inspect(ws_url: str, url: str, timeout: float) -> Dict[str, Any]:
    import aiohttp

    failed, errors = [], []
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        counter = 0

        async def call(method: str, **params) -> Dict[str, Any]:
            nonlocal counter
            counter += 1
            await ws.send_json({"id": counter, "method": method, "params": params})
            while True:
                msg = json.loads((await ws.receive(timeout=timeout)).data)
                if msg.get("id") == counter:
                    return msg.get("result", {})
                _event(msg)

        def _event(msg: Dict[str, Any]) -> None:
            if msg.get("method") == "Network.loadingFailed":
                failed.append(msg["params"].get("errorText", "failed"))
            elif msg.get("method") == "Runtime.exceptionThrown":
                errors.append(msg["params"]["exceptionDetails"].get("text", "exception"))
            elif msg.get("method") == "Log.entryAdded" and msg["params"]["entry"].get("level") == "error":
                errors.append(msg["params"]["entry"].get("text", "error"))
            elif msg.get("method") == "Page.loadEventFired":
                loaded.append(True)

        loaded: list = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            await call(f"{domain}.enable")
        await call("Page.navigate", url=url)
        deadline = time.time() + timeout
        while not loaded and time.time() < deadline:
            _event(json.loads((await ws.receive(timeout=timeout)).data))
        result = await call("Runtime.evaluate", expression=IMAGES_JS, returnByValue=True)
        title = await call("Runtime.evaluate", expression="document.title", returnByValue=True)
        return {"loaded": bool(loaded), "images": json.loads(result["result"]["value"]),
                "title": title["result"]["value"], "failed_requests": failed, "errors": errors}


def inspect_page(path: Path, timeout: float = 60.0) -> Dict[str, Any]:
    """Open ``path`` in headless Chromium; ``{"loaded", "title", "images": [{alt, complete, width,
    height}], "failed_requests", "errors"}``."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="bdray-chromium-") as profile:
        proc = subprocess.Popen([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                                 f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.time() + timeout
            while not port_file.exists() or len(port_file.read_text().split()) < 2:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as reply:
                targets = json.loads(reply.read().decode())
            page = next(t for t in targets if t.get("type") == "page")
            return asyncio.run(_inspect(page["webSocketDebuggerUrl"], path.resolve().as_uri(), timeout))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
