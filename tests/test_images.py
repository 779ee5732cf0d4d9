"""vqi2i.images: every kind of image file reads correctly, or fails with a message naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vqi2i.errors import UserError
from vqi2i.images import list_images, load_image, make_grid, save_grid, save_image, to_pil, to_uint8


def _rgb_array(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _as_uint8(t):
    return ((t + 1) * 127.5).round().to(torch.uint8)


def test_rgb_png_round_trip_and_range(tmp_path):
    a = _rgb_array()
    Image.fromarray(a).save(tmp_path / "x.png")
    t = load_image(tmp_path / "x.png", channels=3)
    assert t.dtype == torch.float32 and t.shape == (3, 12, 16)
    assert t.min() >= -1 and t.max() <= 1
    assert torch.equal(_as_uint8(t).permute(1, 2, 0), torch.from_numpy(a))
    save_image(t, tmp_path / "y.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png")), a)


def test_channels_convert_both_ways(tmp_path):
    Image.fromarray(np.full((5, 7), 200, np.uint8), mode="L").save(tmp_path / "g.png")
    rgb = load_image(tmp_path / "g.png", channels=3)
    assert rgb.shape == (3, 5, 7) and torch.allclose(rgb, torch.full_like(rgb, 200 / 127.5 - 1))
    Image.fromarray(_rgb_array(5, 7)).save(tmp_path / "c.png")
    assert load_image(tmp_path / "c.png", channels=1).shape == (1, 5, 7)
    with pytest.raises(UserError, match="channels"):
        load_image(tmp_path / "c.png", channels=2)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    t = load_image(tmp_path / "deep.png", channels=1)
    expected = torch.tensor([0, 64, 128, 255], dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(t[0, 0], expected, atol=1e-5)
    assert load_image(tmp_path / "deep.png", channels=3).shape == (3, 1, 4)


def test_palette_png_with_transparency_is_white_behind(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 0, 1, 1, 0, 1, 0, 1])
    img.info["transparency"] = 1  # palette entry 1 (blue) is transparent
    img.save(tmp_path / "pal.png", transparency=1)
    t = _as_uint8(load_image(tmp_path / "pal.png", channels=3))
    assert t[:, 0, 0].tolist() == [255, 0, 0]
    assert t[:, 0, 2].tolist() == [255, 255, 255]


def test_rgba_and_la_composite_on_white(tmp_path):
    a = np.zeros((1, 3, 4), np.uint8)
    a[0, 0] = [255, 0, 0, 255]  # opaque red
    a[0, 1] = [0, 0, 0, 0]  # fully transparent black -> white
    a[0, 2] = [0, 0, 0, 128]  # half transparent black -> mid gray
    Image.fromarray(a, mode="RGBA").save(tmp_path / "rgba.png")
    t = _as_uint8(load_image(tmp_path / "rgba.png", channels=3))
    assert t[:, 0, 0].tolist() == [255, 0, 0]
    assert t[:, 0, 1].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in t[:, 0, 2].tolist())
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), mode="LA")
    la.save(tmp_path / "la.png")
    assert _as_uint8(load_image(tmp_path / "la.png", channels=1))[0, 0].tolist() == [255, 0]


def test_cmyk_and_bilevel_images(tmp_path):
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    r, g, b = _as_uint8(load_image(tmp_path / "cmyk.jpg", channels=3))[:, 1, 1].tolist()
    assert r > 200 and g < 60 and b < 60
    one = Image.new("1", (4, 1))
    one.putdata([0, 1, 0, 1])
    one.save(tmp_path / "one.png")
    assert _as_uint8(load_image(tmp_path / "one.png", channels=1))[0, 0].tolist() == [0, 255, 0, 255]


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)  # stored 20 wide, 10 high: left half red, right half blue
    a[:, :10] = [255, 0, 0]
    a[:, 10:] = [0, 0, 255]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(a).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    t = _as_uint8(load_image(tmp_path / "phone.jpg", channels=3))
    assert t.shape == (3, 20, 10)  # displayed upright: 10 wide, 20 high
    top, bottom = t[:, 2, 5].tolist(), t[:, 17, 5].tolist()
    assert top[0] > 200 and top[2] < 60  # the stored left (red) is now at the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_truncated_image_is_a_user_error_naming_the_file(tmp_path):
    Image.fromarray(_rgb_array(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png", channels=3)
    Image.fromarray(_rgb_array(64, 64)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.jpg"):
        load_image(tmp_path / "cut.jpg", channels=3)


@pytest.mark.parametrize("content", [b"this is not an image", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_non_image_with_image_extension_is_a_user_error(tmp_path, content):
    (tmp_path / "fake.png").write_bytes(content)
    with pytest.raises(UserError, match=r"fake\.png"):
        load_image(tmp_path / "fake.png", channels=3)


def test_missing_file_and_folder_named_like_image(tmp_path):
    with pytest.raises(UserError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png", channels=3)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(UserError, match=r"dir\.png"):
        load_image(tmp_path / "dir.png", channels=3)


def test_list_images_sorted_case_insensitive_and_errors(tmp_path):
    names = ["b.PNG", "a.jpg", "c.JpEg", "d.webp", "e.tif", "f.tiff", "g.bmp", "notes.txt", ".hidden.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == [
        "a.jpg", "b.PNG", "c.JpEg", "d.webp", "e.tif", "f.tiff", "g.bmp",
    ]
    with pytest.raises(UserError, match=r"missing.*does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(UserError, match=r"notes\.txt is not a folder"):
        list_images(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no images here")
    with pytest.raises(UserError, match=r"no images in .*empty"):
        list_images(tmp_path / "empty")


def test_to_uint8_and_to_pil():
    t = torch.tensor([[[-1.0, 0.0, 1.0, 3.0]]])
    assert to_uint8(t).tolist() == [[[0, 128, 255, 255]]]
    assert to_pil(t).mode == "L" and to_pil(t.repeat(3, 1, 1)).mode == "RGB"
    with pytest.raises(ValueError, match="shape"):
        to_uint8(torch.zeros(2, 4, 4))


def test_save_image_atomic_no_overwrite_and_format_from_extension(tmp_path):
    t = torch.rand(3, 8, 8) * 2 - 1
    save_image(t, tmp_path / "out" / "x.jpg")
    assert (tmp_path / "out" / "x.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG, not PNG
    with pytest.raises(UserError, match="already exists"):
        save_image(t, tmp_path / "out" / "x.jpg")
    save_image(t[:1], tmp_path / "out" / "x.jpg", overwrite=True)
    assert Image.open(tmp_path / "out" / "x.jpg").mode == "L"
    with pytest.raises(UserError, match="extension"):
        save_image(t, tmp_path / "out" / "x.xyz")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpg"]  # no temp files left


def test_grid_mixed_sizes_gray_and_labels(tmp_path):
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 8, 8)
    small = torch.ones(3, 4, 6)
    gray = torch.zeros(2, 1, 8, 8)  # a batch of gray images as one row
    sheet = make_grid([[red, small], gray], pad=2)
    assert sheet.size == (2 + 8 + 2 + 8 + 2, 2 + 8 + 2 + 8 + 2)
    px = np.asarray(sheet)
    assert px[2, 2].tolist() == [255, 0, 0]
    assert px[2 + 2, 12 + 1].tolist() == [255, 255, 255]  # the 4x6 image centred in its 8x8 cell
    assert px[12, 2].tolist() == [128, 128, 128]  # gray shown as gray
    labelled = make_grid([[red, small], gray], pad=2, labels=["summer", "winter"])
    assert labelled.size[0] > sheet.size[0] and labelled.size[1] == sheet.size[1]
    save_grid([[red, small], gray], tmp_path / "grid.png", labels=["a", "b"])
    written = Image.open(tmp_path / "grid.png")
    assert written.size[1] == sheet.size[1] and written.size[0] > sheet.size[0]
    with pytest.raises(UserError, match="already exists"):
        save_grid(gray, tmp_path / "grid.png")
    with pytest.raises(ValueError, match="labels"):
        make_grid([gray], labels=["a", "b"])


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from vqi2i.fileio import atomic_write_text

    atomic_write_text(tmp_path / "x.txt", "hi")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_checkpoint_and_data_set_folders_follow_the_umask(tmp_path):
    """Folders built under a temporary name and renamed into place (checkpoints, data sets) get the mode mkdir
    gives under the umask, not mkdtemp's private 0700: a run shared with a group can be read by the group."""
    import os

    import torch
    from omegaconf import OmegaConf

    from vqi2i.checkpoint import save_checkpoint
    from vqi2i.data.glyphs import write_dataset

    mask = os.umask(0o027)
    try:
        ckpt = save_checkpoint(tmp_path / "run", 1, OmegaConf.create({"name": "x"}), {"model": torch.nn.Linear(2, 2)})
        write_dataset(tmp_path / "data", {"trainA": {}}, "manifest.json", {})
    finally:
        os.umask(mask)
    for folder in (tmp_path / "run" / "checkpoints", ckpt, tmp_path / "data", tmp_path / "data" / "trainA"):
        assert folder.stat().st_mode & 0o777 == 0o750, folder
    files = [ckpt / "model.safetensors", ckpt / "config.yaml", ckpt / "state.json", ckpt.parent / "latest",
             tmp_path / "data" / "manifest.json"]
    for file in files:
        assert file.stat().st_mode & 0o777 == 0o640, file


def test_a_data_set_written_over_a_symlinked_folder_replaces_its_target(tmp_path):
    """`vqi2i data ... OUT --overwrite` where OUT is a link to a data set (as benchmark folders often are): the
    set it points to is replaced, the link stays, no traceback."""
    from vqi2i.data.glyphs import write_dataset

    target = tmp_path / "sets" / "emoji"
    write_dataset(target, {"trainA": {"old.png": Image.new("L", (4, 4))}}, "manifest.json", {"v": 1})
    link = tmp_path / "bench" / "data"
    link.parent.mkdir()
    link.symlink_to(target)
    write_dataset(link, {"trainA": {"new.png": Image.new("L", (4, 4))}}, "manifest.json", {"v": 2})
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert [f.name for f in (target / "trainA").iterdir()] == ["new.png"]
    assert json.loads((link / "manifest.json").read_text()) == {"v": 2}
