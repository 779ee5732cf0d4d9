"""`vqi2i app`: a local web app in the browser (Gradio) on a translator and, optionally, its content prior.

Tabs: translate, interpolate, and with a prior extend, complete and generate. Each runs the same code as
its command (`vqi2i.apps.translate`, ...) and shows the equivalent `vqi2i ...` command line. The page is
served on 127.0.0.1 unless --host says otherwise, with Gradio's telemetry off, no share link and no
fonts from the network. Every upload is checked (size in bytes and pixels, decompression bombs, not an
image, too small) before a model sees it; a bad one is a message in the page and the app keeps serving.

The handlers below take plain values (paths, numbers) and return PIL images and the command text, so
they are tested without a browser; `build_ui` wires them to Gradio components. Each is also an endpoint of
the app's API, named after it (/translate, /interpolate, /extend, /complete, /generate), with its
parameters named as in its signature (less `app`), so `gradio_client` can script the app (README).
"""

from __future__ import annotations

import argparse
import inspect
import os
import shlex
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vqi2i.apps.common import (
    check_domain,
    check_min_size,
    decode_samples,
    decode_styles,
    encode_reference,
    fit_to_factor,
    load_inputs,
    make_generator,
    parse_direction,
    prepare_style,
    sampler_kwargs,
    unfit,
)
from vqi2i.apps.complete import complete_tokens, masked_view, rectangle_unknown
from vqi2i.apps.extend import extend_tokens
from vqi2i.apps.interpolate import read_styles, transition
from vqi2i.apps.translate import translate_images
from vqi2i.builtin import available, get
from vqi2i.checkpoint import load_model
from vqi2i.data.transforms import resize_shorter
from vqi2i.device import select_device, set_threads
from vqi2i.errors import UserError
from vqi2i.images import list_images, load_image, to_pil
from vqi2i.inference import open_prior_with_codec
from vqi2i.sampling import generate_grids, known_region

DEFAULT_MODEL = "scenes"
DEFAULT_PRIOR = "scenes-prior"
MAX_UPLOAD_MB = 20
MAX_PIXELS = 4_000_000
MAX_SAMPLES = 8
NEEDS_PRIOR = "Extend, complete and generate need a content prior: start the app with `--prior NAME|RUN`."
CSS = "footer {visibility: hidden} .status p {margin: 0}"


def default_spec(name: str) -> str | None:
    """`name` if it is a built-in model of this installation, else None."""
    try:
        return name if name in available() else None
    except Exception:  # noqa: BLE001 - a broken registry must not stop `vqi2i app --model RUN`
        return None


def register(sub: argparse._SubParsersAction) -> None:
    model, prior = default_spec(DEFAULT_MODEL), default_spec(DEFAULT_PRIOR)
    p = sub.add_parser(
        "app",
        help="a local web app in the browser: translate, interpolate, extend, complete, generate",
        description="Serve a web page (Gradio, `pip install -e \".[app]\"`) for trying a translator and its "
        "content prior on your own images; it shows the equivalent command of every result.",
    )
    p.add_argument("--model", "-c", default=model, required=model is None,
                   help=f"translator: a run folder or a built-in model's name (default: {model or 'none'})")
    p.add_argument("--prior", "-p", default=prior,
                   help=f"content prior for extend/complete/generate: run folder or built-in name "
                   f"(default: {prior or 'none'})")
    p.add_argument("--no-prior", action="store_true", help="no prior tabs, even if a default prior exists")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"upload limit (default {MAX_UPLOAD_MB})")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"largest image accepted, in pixels (default {MAX_PIXELS})")
    p.set_defaults(func=run)


# -- uploads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_UPLOAD_MB * 1024 * 1024
    max_pixels: int = MAX_PIXELS


def check_upload(path: str | os.PathLike | None, limits: Limits, what: str = "input") -> tuple[int, int]:
    """Check an uploaded file before anything decodes it fully -> its (width, height). A missing file, one
    over the byte or pixel limit, a decompression bomb, a non-image or a corrupt image is a UserError."""

    if not path:
        raise UserError(f"{what}: no image uploaded (upload one or pick an example)")
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UserError(f"{what} is too large: {size / 2**20:.1f} MB (the limit is {limits.max_bytes / 2**20:.0f} MB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > limits.max_pixels:
                    raise UserError(f"{what} is too large: {w}x{h} px = {w * h / 1e6:.1f} MP "
                                    f"(the limit is {limits.max_pixels / 1e6:.1f} MP)")
                img.load()
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{what} is refused as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise UserError(f"{what} is not an image (PNG, JPEG, WebP, BMP or TIFF): {path.name}") from None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise UserError(f"{what} cannot be read: {e or type(e).__name__}") from None
    return w, h


# -- the models ---------------------------------------------------------------------------------------


@dataclass
class AppModels:
    """What the page serves: the translator and, optionally, a prior with its codec."""

    model: Any
    cfg: Any
    model_spec: str
    device: torch.device
    prior: Any = None
    codec: Any = None
    codec_cfg: Any = None
    prior_spec: str | None = None
    limits: Limits = field(default_factory=Limits)
    examples: list[Path] = field(default_factory=list)


def load_models(model_spec: str, prior_spec: str | None, device: str = "auto", threads: int | None = None,
                limits: Limits | None = None) -> AppModels:

    set_threads(threads)
    dev = select_device(device)
    model, cfg = load_model(model_spec, dev)
    app = AppModels(model, cfg, str(model_spec), dev, limits=limits or Limits())
    if prior_spec:

        app.prior, _, app.codec, app.codec_cfg = open_prior_with_codec(prior_spec, None, dev)
        app.prior_spec = str(prior_spec)
    app.examples = find_examples(str(model_spec), cfg)
    return app


def find_examples(spec: str, cfg, per_domain: int = 3) -> list[Path]:
    """Example inputs: a built-in model's shipped examples, else the first test images of the run's data."""

    try:

        if spec in available() and not Path(spec).exists():
            model = get(spec)
            return [p for d in ("a", "b") for p in model.examples(d)[:per_domain]]
    except (ImportError, UserError):
        pass
    root = Path(str(cfg.data.get("root", "") or ""))
    found: list[Path] = []
    for split in ("testA", "testB"):
        try:
            found += list_images(root / split)[:per_domain]
        except (UserError, OSError):
            pass
    return found


# -- the handlers: plain values in, (images, command) out ---------------------------------------------


Result = tuple[list[tuple[Any, str]], str, str]  # ([(PIL image, caption)], command text, status)


def command(*argv: Any) -> str:
    return shlex.join(["vqi2i", *(str(a) for a in argv)])


def _pil(t: torch.Tensor):

    return to_pil(t)


def _load(app: AppModels, path: str | None, what: str, channels: int) -> torch.Tensor:

    check_upload(path, app.limits, what)
    return load_image(path, channels)


def translate(app: AppModels, image: str | None, direction: str, style: str, num_samples: int,
              exemplar: str | None = None, intra: bool = False, seed: int = 0) -> Result:
    """`num_samples` random styles, or (style 'exemplar') the style of an exemplar, as `vqi2i translate`."""

    model, seed, n = app.model, int(seed), int(num_samples)
    src, dst = parse_direction(direction)
    dst = src if intra else dst
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"the number of styles must be 1 to {MAX_SAMPLES}, got {n}")
    x = _load(app, image, "input", model.in_channels)
    check_min_size(fit_to_factor(x[None], model.factor, "pad")[0], 2 * model.factor, "input")
    argv = ["translate", "-c", app.model_spec, "-i", Path(image).name, "-d", direction]
    exemplar_style, notes = None, []
    if not model.multimodal:
        n, notes = 1, ["this model is unimodal: one fixed style per domain"]
    elif style == "exemplar":
        check_upload(exemplar, app.limits, "style exemplar")
        exemplar_style = encode_reference(model, app.cfg, Path(exemplar), dst, app.device).cpu()
        n = 1
        argv += ["--style", Path(exemplar).name]
    else:
        argv += ["-n", n]
    argv += ["--intra"] * intra + ["--seed", seed, "-o", "out/"]
    t0 = time.perf_counter()
    ys = translate_images(model, [x], src, dst, style=exemplar_style, num_samples=n, generator=make_generator(seed),
                          batch_size=MAX_SAMPLES, fit="pad", device=app.device)[0]
    label = "exemplar style" if exemplar_style is not None else "random style"
    images = [(_pil(y), f"{src}2{dst}, {label} {k + 1}") for k, y in enumerate(ys)]
    return images, command(*argv), _done(len(images), t0, notes)


def interpolate(app: AppModels, image: str | None, direction: str, styles: str, steps: int, mode: str = "steps",
                exemplar1: str | None = None, exemplar2: str | None = None, seed: int = 0) -> Result:
    """A style changing from left to right and the strip of whole-image interpolations, as `vqi2i interpolate`:
    between two random styles, or (styles 'exemplars') the styles of two exemplars."""

    model, steps = app.model, int(steps)
    src, dst = parse_direction(direction)
    if not model.multimodal:
        raise UserError("this model is the unimodal variant: one fixed style per domain, nothing to interpolate")
    if steps < 2 or steps > 16:
        raise UserError(f"steps must be 2 to 16, got {steps}")
    image_t = _load(app, image, "input", model.in_channels)
    x, size = fit_to_factor(image_t[None], model.factor, "pad")
    check_min_size(x, 2 * model.factor, "input")
    argv = ["interpolate", "-c", app.model_spec, "-i", Path(image).name, "-d", direction]
    if styles == "exemplars":
        for ref, what in ((exemplar1, "style 1"), (exemplar2, "style 2")):
            check_upload(ref, app.limits, what)
        s1, s2 = (encode_reference(model, app.cfg, Path(r), dst, app.device)[0] for r in (exemplar1, exemplar2))
        argv += ["--styles", f"{Path(exemplar1).name},{Path(exemplar2).name}"]
    else:
        s1, s2 = read_styles("random", model, app.cfg, dst, app.device, int(seed))
        argv += ["--seed", int(seed)]
    argv += ["--steps", steps, "--mode", mode, "-o", "out/"]
    t0 = time.perf_counter()
    y, strip = transition(model, x.to(app.device), s1, s2, dst, steps, mode)
    y, strip = unfit(y, size).cpu(), unfit(strip, size).cpu()
    images = [(_pil(y[0]), f"transition ({mode})")]
    images += [(_pil(s), f"t = {k / (steps - 1):.2f}") for k, s in enumerate(strip)]
    return images, command(*argv), _done(len(images), t0)


def _need_prior(app: AppModels) -> None:
    if app.prior is None:
        raise UserError(NEEDS_PRIOR)


def _sampling(app: AppModels, seed: int) -> dict:

    options = argparse.Namespace(temperature=1.0, top_k=None, top_p=None, stride=None, seed=int(seed),
                                 no_progress=True)
    return sampler_kwargs(options, app.device)


def _prior_input(app: AppModels, image: str | None, src: str, dst: str):
    """(input [1, C, H, W] as `vqi2i extend/complete` load it, style spec) for domains src -> dst."""

    _need_prior(app)
    check_domain(src, "from")
    check_domain(dst, "to")
    check_upload(image, app.limits, "input")
    [(_, x)] = load_inputs(Path(image), app.codec, app.codec_cfg, None)
    style = prepare_style(app.codec, app.codec_cfg, "own" if dst == src else "random", dst, app.device, own_domain=src)
    return x, style


def _prior_argv(app: AppModels, name: str, image: str, src: str, dst: str) -> list[Any]:
    return [name, "-p", app.prior_spec, "-i", Path(image).name, "--from", src] + (["--to", dst] if dst != src else [])


def extend(app: AppModels, image: str | None, input_domain: str, render_in: str, side: str, pixels: int,
           num_samples: int, seed: int = 0) -> Result:
    """Outpainting with the prior, as `vqi2i extend`: the input (of `input_domain`) continued to the `side`
    by `pixels`, rendered in domain `render_in`."""

    src, dst, pixels, n, seed = input_domain, render_in, int(pixels), int(num_samples), int(seed)
    x, style = _prior_input(app, image, src, dst)
    factor = app.codec.factor
    if pixels < factor or pixels % factor:
        raise UserError(f"pixels must be a positive multiple of the codec's factor {factor}, got {pixels}")
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"samples must be 1 to {MAX_SAMPLES}, got {n}")
    kwargs = _sampling(app, seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        grid, _, _, _ = extend_tokens(app.codec, app.prior, x, src, side, pixels // factor, n, **kwargs)
        ys = decode_samples(app.codec, grid, style, x, src, dst, kwargs["generator"], app.device)
    argv = _prior_argv(app, "extend", image, src, dst) + ["--side", side, "--pixels", pixels, "-n", n,
                                                           "--seed", seed, "-o", "out/"]
    images = [(_pil(x[0].cpu()), "input (as the prior sees it)")]
    images += [(_pil(y), f"extended {side}, sample {k + 1}") for k, y in enumerate(ys)]
    return images, command(*argv), _done(n, t0)


def mask_rectangle(mask, codec_cfg, factor: int) -> str:
    """A drawn mask [H, W] (bool, on the uploaded image) -> 'X0,Y0,X1,Y1': the rectangle around it on the
    image as `vqi2i complete` resizes it, i.e. its --mask."""

    m = torch.as_tensor(mask, dtype=torch.float32)[None] * 2 - 1
    target = codec_cfg.data.get("size")
    m = resize_shorter(m, int(target) if isinstance(target, int) else None)
    m, _ = fit_to_factor(m[None], factor, "crop")
    ys, xs = torch.nonzero(m[0, 0] > 0, as_tuple=True)
    if len(ys) == 0:
        raise UserError("the drawn mask is empty (or outside the image once resized): paint over the part to redo")
    return f"{int(xs.min())},{int(ys.min())},{int(xs.max()) + 1},{int(ys.max()) + 1}"


def editor_mask(value: dict | None, size: tuple[int, int]):
    """The painted pixels of an image-editor value (its layers' alpha) -> bool array [H, W]; `size` is
    the input's (W, H), which the editor's background must have."""

    layers = [np.asarray(layer) for layer in (value or {}).get("layers") or [] if layer is not None]
    if not layers:
        raise UserError("draw a mask first: paint over the part to re-sample in the mask editor")
    w, h = size
    mask = np.zeros((h, w), dtype=bool)
    for layer in layers:
        if layer.shape[:2] != (h, w):
            raise UserError("the mask was drawn on another image: load the input again and redraw")
        painted = layer[..., 3] if layer.ndim == 3 and layer.shape[2] == 4 else layer.reshape(h, w, -1).max(-1)
        mask |= painted > 0
    return mask


def complete(app: AppModels, image: str | None, input_domain: str, render_in: str, keep: str, num_samples: int,
             seed: int = 0, mask: dict | None = None) -> Result:
    """Keep a quarter, a half or (keep 'mask') all but the painted `mask` (an image-editor value); the prior
    samples the rest, rendered in domain `render_in`, as `vqi2i complete`."""

    src, dst, n, seed = input_domain, render_in, int(num_samples), int(seed)
    x, style = _prior_input(app, image, src, dst)
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"samples must be 1 to {MAX_SAMPLES}, got {n}")
    factor = app.codec.factor
    H, W = x.shape[-2:]
    argv = _prior_argv(app, "complete", image, src, dst)
    if keep == "mask":
        rect = mask_rectangle(editor_mask(mask, check_upload(image, app.limits)), app.codec_cfg, factor)
        known = rectangle_unknown(rect, H, W, factor)
        argv += ["--mask", rect]
    else:
        known = known_region(keep, H // factor, W // factor)
        argv += ["--keep", keep]
    argv += ["-n", n, "--seed", seed, "-o", "out/"]
    kwargs = _sampling(app, seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        grid, _, _ = complete_tokens(app.codec, app.prior, x, known, n, **kwargs)
        ys = decode_samples(app.codec, grid, style, x, src, dst, kwargs["generator"], app.device)
    images = [(_pil(masked_view(x[0].cpu(), known, factor)), "kept (the rest is sampled)")]
    images += [(_pil(y), f"completion {k + 1}") for k, y in enumerate(ys)]
    return images, command(*argv), _done(n, t0)


def generate(app: AppModels, domain: str, num_samples: int, seed: int = 0) -> Result:
    """New scenes from the prior, decoded in domain a, b or both with random styles, as `vqi2i generate`."""

    _need_prior(app)
    n, seed = int(num_samples), int(seed)
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"samples must be 1 to {MAX_SAMPLES}, got {n}")
    domains = ["a", "b"] if domain == "both" else [domain]
    if not set(domains) <= {"a", "b"}:
        raise UserError(f"domain must be a, b or both, got '{domain}'")
    rows, cols = app.prior.cfg.block_rows, app.prior.cfg.block_cols
    kwargs = _sampling(app, seed)
    t0 = time.perf_counter()
    images = []
    with torch.no_grad():
        grids = generate_grids(app.prior, n, rows, cols, allow_window=False, **kwargs)
        for d in domains:
            style = decode_styles(app.codec, "random", n, kwargs["generator"], app.device)
            ys = app.codec.decode(grids, style, d).float().cpu()
            images += [(_pil(y), f"sample {k + 1} in {d.upper()}") for k, y in enumerate(ys)]
    argv = ["generate", "-p", app.prior_spec, "-n", n, "--domain", domain, "--seed", seed, "-o", "out/"]
    return images, command(*argv), _done(len(images), t0)


def _done(count: int, t0: float, notes: list[str] | None = None) -> str:
    return "  \n".join([f"{count} image(s) in {time.perf_counter() - t0:.1f} s", *(notes or [])])


def guarded(fn, app: AppModels):
    """A Gradio callback around handler `fn`: a UserError (or any failure) becomes a message in the page
    -> (gallery, command, status); the app keeps serving. It bears `fn`'s name, docstring and parameters
    (less `app`): Gradio names the API endpoint's parameters after them."""

    def callback(*values):
        try:
            images, cmd, status = fn(app, *values)
            return images, cmd, status
        except UserError as e:
            return [], "", f"**Error:** {e}"
        except Exception as e:  # noqa: BLE001 - never take the server down for one request
            traceback.print_exc()
            return [], "", f"**Error:** {type(e).__name__}: {e}"

    params = list(inspect.signature(fn).parameters.values())[1:]
    callback.__signature__ = inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in params])
    callback.__name__, callback.__doc__ = fn.__name__, fn.__doc__
    return callback


def describe_input(app: AppModels, path: str | None) -> tuple[str | None, str, Any]:
    """On a new input: (preview path or None, status, the mask editor's value)."""
    if not path:
        return None, "", None
    try:
        w, h = check_upload(path, app.limits)
    except UserError as e:
        return None, f"**Error:** {e}", None
    return path, f"input: {Path(path).name}, {w}x{h} px", {"background": path, "layers": [], "composite": path}


# -- the page ---------------------------------------------------------------------------------------------


def _outputs(gr, name: str):
    gallery = gr.Gallery(label="results", elem_id=f"{name}-gallery", columns=4, height="auto", allow_preview=False,
                         format="png", interactive=False)
    status = gr.Markdown(label="status", elem_id=f"{name}-status", elem_classes=["status"], latex_delimiters=[])
    cmd = gr.Textbox(label="the same from the command line", elem_id=f"{name}-command", interactive=False,
                     buttons=["copy"])
    return [gallery, cmd, status]


def _title(app: AppModels) -> str:
    prior = f" and prior **{app.prior_spec}**" if app.prior is not None else ""
    lines = [f"# vqi2i\nTranslator **{app.model_spec}** ({app.model.variant}, f = {app.model.factor}){prior}, "
             f"on {app.device.type}. Uploads: up to {app.limits.max_bytes / 2**20:.0f} MB and "
             f"{app.limits.max_pixels / 1e6:.1f} MP."]
    if app.prior is None:
        lines.append(NEEDS_PRIOR)
    return "  \n".join(lines)


def build_ui(app: AppModels):
    """The Gradio page for `app` (not launched)."""
    import gradio as gr  # an optional extra (pip install -e ".[app]"), and seconds to import

    with gr.Blocks(title="vqi2i", analytics_enabled=False) as page:
        gr.Markdown(_title(app), elem_id="title", latex_delimiters=[])
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.File(label="input image", elem_id="input-file", type="filepath", height=150)
                input_status = gr.Markdown(elem_id="input-status", elem_classes=["status"], latex_delimiters=[])
            preview = gr.Image(label="input", type="filepath", interactive=False, elem_id="input-preview", height=200)
            if app.examples:
                examples = gr.Gallery([str(p) for p in app.examples], label="examples (click to use)",
                                      columns=3, height=200, allow_preview=False, interactive=False)

                def pick(evt) -> str:
                    return str(app.examples[evt.index])

                pick.__annotations__["evt"] = gr.SelectData  # Gradio passes the selection by this type
                examples.select(pick, None, image, api_visibility="private")  # page plumbing, not an API
        direction = gr.Radio(["a2b", "b2a"], value="a2b", label="direction (translate, interpolate)")
        seed = gr.Number(0, label="seed", precision=0, minimum=0)
        mask_editor = None
        with gr.Tabs():
            with gr.Tab("translate", id="translate"):
                with gr.Row():
                    style_mode = gr.Radio(["random", "exemplar"], value="random", label="styles")
                    n = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="N random styles", elem_id="translate-n")
                    intra = gr.Checkbox(label="intra-domain (re-render in the input's own domain)")
                exemplar = gr.File(label="style exemplar (an image of the target domain)", type="filepath", height=120)
                run_t = gr.Button("Translate", variant="primary", elem_id="translate-button")
                out_t = _outputs(gr, "translate")
                run_t.click(guarded(translate, app), [image, direction, style_mode, n, exemplar, intra, seed], out_t,
                            api_name="translate")
            with gr.Tab("interpolate", id="interpolate"):
                with gr.Row():
                    styles_mode = gr.Radio(["random", "exemplars"], value="random", label="two styles")
                    steps = gr.Slider(2, 16, value=5, step=1, label="steps")
                    mode = gr.Radio(["steps", "smooth"], value="steps", label="transition")
                with gr.Row():
                    ref1 = gr.File(label="style 1 exemplar", type="filepath", height=120)
                    ref2 = gr.File(label="style 2 exemplar", type="filepath", height=120)
                run_i = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
                out_i = _outputs(gr, "interpolate")
                run_i.click(guarded(interpolate, app), [image, direction, styles_mode, steps, mode, ref1, ref2, seed],
                            out_i, api_name="interpolate")
            if app.prior is not None:
                mask_editor = _prior_tabs(gr, app, image, seed)
        change_outputs = [preview, input_status] + ([mask_editor] if mask_editor is not None else [])

        def on_input(path):
            shown, status, editor = describe_input(app, path)
            return (shown, status, editor) if mask_editor is not None else (shown, status)

        image.change(on_input, image, change_outputs, api_visibility="private")
    return page


def brush_size(codec_cfg) -> int:
    """The mask brush in image pixels: a sixteenth of the codec's training size."""
    size = codec_cfg.data.get("size")
    return max(1, int(size) // 16) if isinstance(size, int) else 8


def _prior_tabs(gr, app: AppModels, image, seed):
    """The extend, complete and generate tabs -> the mask editor (filled with each new input)."""
    factor = app.codec.factor
    domains = dict(choices=["a", "b"], value="a")
    with gr.Tab("extend", id="extend"):
        with gr.Row():
            src_e = gr.Radio(label="input domain", **domains)
            dst_e = gr.Radio(label="render in", **domains)
            side = gr.Radio(["right", "left", "both"], value="right", label="side")
            pixels = gr.Slider(factor, 32 * factor, value=8 * factor, step=factor, label="pixels")
            n_e = gr.Slider(1, MAX_SAMPLES, value=2, step=1, label="samples")
        run_e = gr.Button("Extend", variant="primary", elem_id="extend-button")
        run_e.click(guarded(extend, app), [image, src_e, dst_e, side, pixels, n_e, seed], _outputs(gr, "extend"),
                    api_name="extend")
    with gr.Tab("complete", id="complete"):
        with gr.Row():
            src_c = gr.Radio(label="input domain", **domains)
            dst_c = gr.Radio(label="render in", **domains)
            keep = gr.Radio(["quarter", "left", "top", "mask"], value="left", label="keep",
                            info="quarter = top-left, left / top half, or all but the drawn mask")
            n_c = gr.Slider(1, MAX_SAMPLES, value=2, step=1, label="samples")
        editor = gr.ImageEditor(label="mask: paint over what to re-sample (keep = mask)", type="numpy",
                                sources=[], elem_id="mask-editor", height=320,
                                brush=gr.Brush(default_size=brush_size(app.codec_cfg), colors=["#ff00ff"],
                                               color_mode="fixed"))
        run_c = gr.Button("Complete", variant="primary", elem_id="complete-button")
        run_c.click(guarded(complete, app), [image, src_c, dst_c, keep, n_c, seed, editor], _outputs(gr, "complete"),
                    api_name="complete")
    with gr.Tab("generate", id="generate"):
        with gr.Row():
            domain = gr.Radio(["a", "b", "both"], value="both", label="render in")
            n_g = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="samples")
        run_g = gr.Button("Generate", variant="primary", elem_id="generate-button")
        run_g.click(guarded(generate, app), [domain, n_g, seed], _outputs(gr, "generate"), api_name="generate")
    return editor


# -- the command --------------------------------------------------------------------------------------


def quiet_environment() -> None:
    """No telemetry, no update checks, nothing from the hub: set before Gradio is imported."""
    for key, value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"),
                       ("HF_HUB_DISABLE_TELEMETRY", "1"), ("DO_NOT_TRACK", "1"), ("GRADIO_SHARE", "False")):
        os.environ[key] = value


def import_gradio():
    quiet_environment()
    try:
        import gradio  # optional: the app extra
    except ImportError:
        raise UserError('the web app needs Gradio: pip install -e ".[app]"') from None
    return gradio


def theme(gr):
    """Gradio's default look with the system's fonts (the default theme fetches Google Fonts)."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def run(args: argparse.Namespace) -> int:

    gr = import_gradio()
    if not args.model:
        raise UserError("pass --model with a run folder or a built-in model's name")
    if args.max_pixels < 1 or args.max_upload_mb <= 0:
        raise UserError("--max-pixels and --max-upload-mb must be positive")
    Image.MAX_IMAGE_PIXELS = args.max_pixels  # PIL itself refuses (2x) bigger images anywhere in the process
    limits = Limits(int(args.max_upload_mb * 2**20), args.max_pixels)
    prior = None if args.no_prior else args.prior
    app = load_models(args.model, prior, args.device, args.threads, limits)
    page = build_ui(app)
    page.queue(default_concurrency_limit=1)
    print(f"vqi2i app: {app.model_spec}" + (f" + {app.prior_spec}" if app.prior_spec else "")
          + f" on http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    allowed = sorted({str(p.parent) for p in app.examples})
    try:
        page.launch(server_name=args.host, server_port=args.port, share=False, inbrowser=False, quiet=True,
                    show_error=False, max_file_size=limits.max_bytes, allowed_paths=allowed, ssr_mode=False,
                    mcp_server=False, theme=theme(gr), css=CSS, footer_links=[])
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e}") from None
    return 0
