"""`vqi2i app`: the upload checks, the handlers (same results as the commands they name), the API (named
endpoints; the README's gradio_client call against a served app), and the page in
a real browser: Debian's chromium driven by Playwright, nothing downloaded, nothing fetched from the network.

The browser test needs /usr/bin/chromium (scripts/setup.sh installs it) and fails, not skips, without it.
"""

from __future__ import annotations

import os
import shlex
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqi2i.apps import webapp
from vqi2i.cli import build_parser, main
from vqi2i.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height pixels and holds none: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def app(tiny_run):
    return webapp.load_models(str(tiny_run), None, "cpu")


@pytest.fixture(scope="module")
def prior_app(tmp_path_factory, tiny_run):
    prior = tmp_path_factory.mktemp("webapp") / "prior"
    rc = main(["train-prior", str(CONFIGS / "prior_tiny.yaml"), "--codec", str(tiny_run), "--out", str(prior),
               "--no-progress", "train.max_steps=2", "train.eval_every=2", "train.ckpt_every=2",
               "train.log_every=2", "train.num_samples=1"])
    assert rc == 0
    return webapp.load_models(str(tiny_run), str(prior), "cpu")


def test_uploads_are_checked(tmp_path, scenes_dir):
    good = scenes_dir / "testA" / "0000.png"
    assert webapp.check_upload(good, webapp.Limits()) == (32, 32)
    cases = {
        "not an image": tmp_path / "notes.png",
        "too large: 1.0 MB": tmp_path / "big.png",
        "decompression bomb": png_header_only(tmp_path / "bomb.png", 50_000, 50_000),
        "cannot be read": tmp_path / "cut.png",
    }
    cases["not an image"].write_text("hello")
    cases["too large: 1.0 MB"].write_bytes(b"\0" * 2**20)
    cases["cannot be read"].write_bytes(good.read_bytes()[:200])
    for message, path in cases.items():
        with pytest.raises(UserError, match=message):
            webapp.check_upload(path, webapp.Limits(max_bytes=2**19))
    with pytest.raises(UserError, match="too large: 32x32 px"):
        webapp.check_upload(good, webapp.Limits(max_pixels=1000))
    with pytest.raises(UserError, match="no image uploaded"):
        webapp.check_upload(None, webapp.Limits())


def test_command_defaults_and_missing_gradio(monkeypatch, tiny_run):
    args = build_parser().parse_args(["app", "--model", str(tiny_run)])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 7860, webapp.run)
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(UserError, match=r'pip install -e "\.\[app\]"'):
        webapp.import_gradio()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_translate_and_interpolate_match_their_commands(app, tmp_path, scenes_dir):
    src = scenes_dir / "testA" / "0000.png"
    images, cmd, status = webapp.translate(app, str(src), "a2b", "random", 3, seed=5)
    assert len(images) == 3 and "3 image(s)" in status
    assert cmd == f"vqi2i translate -c {shlex.quote(app.model_spec)} -i 0000.png -d a2b -n 3 --seed 5 -o out/"
    argv = shlex.split(cmd)[1:]
    argv[argv.index("0000.png")], argv[-1] = str(src), str(tmp_path / "cli")
    assert main(argv) == 0
    for k, (image, _) in enumerate(images):
        assert np.array_equal(np.asarray(image), np.asarray(Image.open(tmp_path / "cli" / f"0000_a2b_{k}.png")))

    ref = scenes_dir / "testA" / "0001.png"
    images, cmd, _ = webapp.translate(app, str(src), "a2b", "exemplar", 3, exemplar=str(ref), intra=True)
    assert len(images) == 1 and "--style 0001.png --intra" in cmd
    images, cmd, _ = webapp.interpolate(app, str(src), "b2a", "random", 4, "smooth", seed=1)
    assert len(images) == 5 and cmd.endswith("-d b2a --seed 1 --steps 4 --mode smooth -o out/")


def test_handler_errors_become_messages(app, tmp_path, scenes_dir):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    callback = webapp.guarded(webapp.translate, app)
    gallery, cmd, status = callback(str(tiny), "a2b", "random", 2, None, False, 0)
    assert (gallery, cmd) == ([], "") and "too small" in status and status.startswith("**Error:**")
    assert "cannot be read" in callback(str(scenes_dir / "testA"), "a2b", "random", 2, None, False, 0)[2]  # a folder
    status = callback(str(scenes_dir / "testA" / "0000.png"), "a2b", "exemplar", 2, None, False, 0)[2]
    assert "style exemplar: no image uploaded" in status
    assert "need a content prior" in webapp._title(app)
    assert "--prior" in webapp.guarded(webapp.generate, app)("both", 2, 0)[2]
    preview, status, _ = webapp.describe_input(app, str(tiny))
    assert preview == str(tiny) and "4x4 px" in status  # too small is only known once a model is chosen


def test_prior_handlers(prior_app, scenes_dir):
    src = str(scenes_dir / "testA" / "0000.png")
    images, cmd, _ = webapp.extend(prior_app, src, "a", "b", "right", 8, 2, seed=3)
    assert len(images) == 3 and images[1][0].size == (40, 32)
    assert "--from a --to b --side right --pixels 8 -n 2 --seed 3" in cmd
    images, cmd, _ = webapp.complete(prior_app, src, "a", "a", "quarter", 2)
    assert len(images) == 3 and "--keep quarter" in cmd
    mask = np.zeros((32, 32, 4), np.uint8)
    mask[4:10, 20:30, 3] = 255
    _, cmd, _ = webapp.complete(prior_app, src, "a", "a", "mask", 1, mask={"layers": [mask]})
    assert "--mask 20,4,30,10" in cmd
    assert "draw a mask" in webapp.guarded(webapp.complete, prior_app)(src, "a", "a", "mask", 1, 0, None)[2]
    images, cmd, _ = webapp.generate(prior_app, "both", 2)
    assert len(images) == 4 and cmd.startswith("vqi2i generate -p ")


def test_the_api_names_each_endpoint_and_parameter(prior_app):
    """The API (what gradio_client calls): one endpoint per tab, named after it, whose parameters bear the
    handler's names, and which returns the gallery, the command and the status; the page's own plumbing
    (input preview, example picking) is not part of it."""
    import inspect

    info = webapp.build_ui(prior_app).get_api_info()
    assert not info.get("unnamed_endpoints")
    handlers = {f"/{fn.__name__}": fn for fn in (webapp.translate, webapp.interpolate, webapp.extend,
                                                  webapp.complete, webapp.generate)}
    assert set(info["named_endpoints"]) == set(handlers)
    for name, endpoint in info["named_endpoints"].items():
        params = [p["parameter_name"] for p in endpoint["parameters"]]
        assert params == list(inspect.signature(handlers[name]).parameters)[1:], name
        assert [r["label"] for r in endpoint["returns"]] == ["results", "the same from the command line", "status"]
    translate = {p["parameter_name"]: p for p in info["named_endpoints"]["/translate"]["parameters"]}
    assert translate["num_samples"]["parameter_default"] == 4 and not translate["image"]["parameter_has_default"]


# -- the page in a real browser -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_served(url: str, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"vqi2i app exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"vqi2i app did not serve {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    """`vqi2i app` on the tiny run, no prior, on a free port -> (url, process)."""
    port = free_port()
    gradio_tmp = tmp_path_factory.mktemp("gradio")
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_TEMP_DIR=str(gradio_tmp), NO_PROXY="*")
    cmd = [sys.executable, "-m", "vqi2i.cli", "app", "--model", str(tiny_run), "--no-prior", "--port", str(port),
           "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_served(url, proc, timeout=180)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def launch_chromium(playwright, profile: Path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's chromium (apt-get install chromium, "
                    "as scripts/setup.sh does)")
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1200, "height": 1000})


def upload(page, path: Path) -> None:
    clear = page.locator("#input-file button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#input-file input[type=file]").set_input_files(str(path))


def test_app_in_a_real_browser(served, tmp_path, scenes_dir):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('playwright is missing: pip install -e ".[dev]" (scripts/setup.sh does)')
    url, proc = served
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    requested: list[str] = []
    timeout = 90_000  # ms; seconds on an idle machine
    with sync_playwright() as pw:
        browser = launch_chromium(pw, tmp_path / "profile")
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.goto(url)
            page.wait_for_selector("#translate-button", timeout=timeout)
            assert "need a content prior" in page.locator("#title").inner_text()
            assert page.get_by_role("tab", name="extend").count() == 0

            upload(page, scenes_dir / "testA" / "0000.png")
            page.wait_for_function("document.querySelector('#input-status').innerText.includes('32x32 px')",
                                   timeout=timeout)
            page.locator("#translate-n input[type=number]").fill("3")
            page.locator("#translate-n input[type=number]").press("Enter")
            page.click("#translate-button")
            page.wait_for_function("document.querySelectorAll('#translate-gallery img').length === 3", timeout=timeout)
            command = page.locator("#translate-command textarea").input_value()
            assert command.startswith("vqi2i translate -c ") and "-i 0000.png -d a2b -n 3" in command

            upload(page, not_an_image)
            page.wait_for_function("document.querySelector('#input-status').innerText.includes('not an image')",
                                   timeout=timeout)
            page.click("#translate-button")
            page.wait_for_function("document.querySelector('#translate-status').innerText.includes('not an image')",
                                   timeout=timeout)
            assert page.locator("#translate-gallery img").count() == 0

            upload(page, scenes_dir / "testB" / "0001.png")  # and it keeps serving
            page.wait_for_function("document.querySelector('#input-status').innerText.includes('32x32 px')",
                                   timeout=timeout)
            page.click("#translate-button")
            page.wait_for_function("document.querySelectorAll('#translate-gallery img').length === 3", timeout=timeout)
        finally:
            browser.close()
    assert proc.poll() is None, "the app stopped serving"
    hosts = {u.split("/")[2] for u in requested if u.startswith("http")}
    assert hosts == {url.split("/")[2]}, f"the page fetched from elsewhere: {hosts}"


def test_the_readme_script_calls_the_served_app(served, app, tmp_path, scenes_dir, monkeypatch):
    """The README's gradio_client call, run as written against `vqi2i app` (its address and input image
    replaced): the same images and command as the translate handler."""
    pytest.importorskip("gradio_client")
    url, proc = served
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    script = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'api_name="/translate"' in script
    src = scenes_dir / "testA" / "0000.png"
    script = script.replace('"http://127.0.0.1:7860/"', repr(url)).replace('"summer.png"', repr(str(src)))
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "client"))
    namespace: dict = {}
    exec(script, namespace)  # the README's own example
    images, cmd, status = webapp.translate(app, str(src), "a2b", "random", 4, seed=0)
    assert namespace["command"] == cmd and "4 image(s)" in namespace["status"]
    gallery = namespace["gallery"]
    assert [item["caption"] for item in gallery] == [caption for _, caption in images]
    for item, (image, _) in zip(gallery, images):
        assert np.array_equal(np.asarray(Image.open(item["image"]).convert("RGB")), np.asarray(image.convert("RGB")))
    assert proc.poll() is None
