#!/usr/bin/env python
"""Take the README's screenshot of `vqi2i app` (docs/app.png): the app on a built-in model, one example
uploaded and translated, in Debian's chromium driven by Playwright (nothing downloaded).

    python scripts/app_screenshot.py                         # the default: scenes + scenes-prior
    python scripts/app_screenshot.py --model glyphs --no-prior --out /tmp/app.png
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from vqi2i.builtin import get

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="scenes")
    p.add_argument("--no-prior", action="store_true")
    p.add_argument("--n", type=int, default=4, help="random styles to show")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "app.png")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright  # optional: the dev extra

    example = get(args.model).examples("a")[0]
    port = free_port()
    cmd = [sys.executable, "-m", "vqi2i.cli", "app", "--model", args.model, "--port", str(port), "--device", "cpu",
           *(["--no-prior"] if args.no_prior else [])]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GRADIO_TEMP_DIR=str(Path(tmp) / "gradio"), NO_PROXY="*")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(360):
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    time.sleep(0.5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"), executable_path=str(CHROMIUM), args=ARGS, headless=True,
                    viewport={"width": 1100, "height": 1000})
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector("#translate-button", timeout=120_000)
                page.locator("#input-file input[type=file]").set_input_files(str(example))
                page.wait_for_function("document.querySelector('#input-status').innerText.includes(' px')",
                                       timeout=120_000)
                page.locator("#translate-n input[type=number]").fill(str(args.n))
                page.locator("#translate-n input[type=number]").press("Enter")
                page.click("#translate-button")
                page.wait_for_function(f"document.querySelectorAll('#translate-gallery img').length === {args.n}",
                                       timeout=120_000)
                time.sleep(1.0)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
