"""Reading and writing images: every file becomes a float tensor [C,H,W] in [-1, 1], and back.

Reading is defensive because user folders hold every kind of PNG/JPEG there is (palette, alpha,
16-bit, CMYK, EXIF-rotated phone photos, half-copied files). Any file that cannot be read is a
UserError that names it, so a training run on a bad folder stops with one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from vqi2i.errors import UserError
from vqi2i.fileio import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def _high_depth_to_unit(img: Image.Image) -> np.ndarray:
    """16/32-bit or float grayscale as float32 [H,W] in [0,1], scaled (not clipped) by its bit depth."""
    a = np.asarray(img).astype(np.float32)
    if img.mode.startswith("I;16"):
        return a / 65535.0
    peak = float(a.max()) if a.size else 0.0
    if img.mode == "F" and peak <= 1.0:  # float images are usually already in [0, 1]
        return np.clip(a, 0.0, 1.0)
    # mode "I" (or "F" above 1): 32-bit containers mostly carry 8- or 16-bit data
    scale = 255.0 if peak <= 255.0 else 65535.0 if peak <= 65535.0 else peak
    return np.clip(a / scale, 0.0, 1.0)


def _to_unit_array(img: Image.Image, channels: int) -> np.ndarray:
    """Convert any PIL mode to float32 [H,W,channels] in [0,1]."""
    if img.mode in _HIGH_DEPTH_MODES:
        gray = _high_depth_to_unit(img)[..., None]
        return gray if channels == 1 else np.repeat(gray, 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")  # keeps a palette's transparency
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    target = "L" if channels == 1 else "RGB"
    if img.mode != target:
        img = img.convert(target)  # 1, L, RGB, CMYK, YCbCr, LAB, HSV
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a


def load_image(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """Read an image file as a float tensor [channels,H,W] in [-1,1] (channels 1 = gray, 3 = RGB).

    EXIF orientation is applied, transparency is composited on white, 16-bit gray is scaled.
    A missing, truncated, corrupt or non-image file raises UserError naming the file.
    """
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now, inside the try, so a truncated file is caught here
            img = ImageOps.exif_transpose(img)
            a = _to_unit_array(img, channels)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ... for bad files
        reason = str(e) or type(e).__name__
        raise UserError(f"cannot read image {path}: {reason}") from e
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).mul_(2.0).sub_(1.0)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside `folder`, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    files = sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )
    if not files:
        raise UserError(f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def from_uint8(a: np.ndarray) -> torch.Tensor:
    """uint8 images [N,H,W,C] (numpy, as the synthetic data sets draw them) -> float [N,C,H,W] in [-1,1]."""
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    """[C,H,W] float in [-1,1] (C = 1 or 3) -> uint8 tensor [C,H,W] in [0,255] on the CPU."""
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor [1 or 3, H, W], got shape {tuple(t.shape)}")
    t = t.detach().float().cpu()
    return ((t.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def to_pil(t: torch.Tensor) -> Image.Image:
    """[C,H,W] in [-1,1] -> a PIL image, mode L for one channel and RGB for three."""
    a = to_uint8(t).permute(1, 2, 0).numpy()
    return Image.fromarray(a[..., 0], mode="L") if a.shape[2] == 1 else Image.fromarray(a, mode="RGB")


def _pil_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise UserError(f"cannot write {path}: unknown image extension '{path.suffix}' (use .png or .jpg)")
    return fmt


def save_pil(img: Image.Image, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a PIL image atomically; the format comes from the extension of `path`."""
    path = Path(path)
    fmt = _pil_format(path)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "JPEG" and img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    with atomic_path(path, overwrite=overwrite) as tmp:  # the temp name ends in .tmp: give the format
        img.save(tmp, format=fmt, **options)
    return path


def save_image(t: torch.Tensor, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a [C,H,W] tensor in [-1,1] as an image file (atomic; refuses to replace unless overwrite)."""
    return save_pil(to_pil(t), path, overwrite=overwrite)


GRID_BACKGROUND = (64, 64, 64)
LABEL_COLOR = (255, 255, 255)


def _row_images(row: torch.Tensor | Sequence[torch.Tensor]) -> list[Image.Image]:
    if isinstance(row, torch.Tensor):
        if row.dim() == 3:
            row = [row]
        elif row.dim() != 4:
            raise ValueError(f"a grid row must be [B,C,H,W] or a list of [C,H,W], got {tuple(row.shape)}")
    return [to_pil(t).convert("RGB") for t in row]


def make_grid(
    rows: torch.Tensor | Sequence[torch.Tensor | Sequence[torch.Tensor]],
    *,
    pad: int = 2,
    labels: Sequence[str] | None = None,
) -> Image.Image:
    """A contact sheet: one line of cells per row, each cell as large as the largest image in its
    column and row (images are centred in their cell), gray images shown as gray, optional labels
    at the left of each row. A [B,C,H,W] tensor alone is one row."""
    if isinstance(rows, torch.Tensor):
        rows = [rows]
    grid = [_row_images(r) for r in rows]
    if not grid or not any(grid):
        raise ValueError("save_grid needs at least one image")
    if labels is not None and len(labels) != len(grid):
        raise ValueError(f"{len(labels)} labels for {len(grid)} rows")
    n_cols = max(len(r) for r in grid)
    col_w = [max((r[j].width for r in grid if j < len(r)), default=0) for j in range(n_cols)]
    row_h = [max((im.height for im in r), default=0) for r in grid]

    font = ImageFont.load_default()
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w, boxes = 0, []
    if labels:
        boxes = [draw_probe.multiline_textbbox((0, 0), str(s), font=font) for s in labels]
        label_w = max(b[2] for b in boxes) + 2 * pad + 4

    width = label_w + sum(col_w) + pad * (n_cols + 1)
    height = sum(row_h) + pad * (len(grid) + 1)
    sheet = Image.new("RGB", (width, height), GRID_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = pad
    for i, row in enumerate(grid):
        if labels:
            text_top = y + (row_h[i] - boxes[i][3]) // 2
            draw.multiline_text((pad + 2, text_top), str(labels[i]), fill=LABEL_COLOR, font=font)
        x = label_w + pad
        for j, im in enumerate(row):
            sheet.paste(im, (x + (col_w[j] - im.width) // 2, y + (row_h[i] - im.height) // 2))
            x += col_w[j] + pad
        y += row_h[i] + pad
    return sheet


def save_grid(
    rows: torch.Tensor | Sequence[torch.Tensor | Sequence[torch.Tensor]],
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    pad: int = 2,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write a contact sheet of image tensors in [-1,1] (see make_grid) atomically to `path`."""
    return save_pil(make_grid(rows, pad=pad, labels=labels), path, overwrite=overwrite)
