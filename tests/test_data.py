"""vqi2i.data: folder data sets (determinism, pairing, transforms, bad input) and the synthetic scenes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from vqi2i.cli import main as cli_main
from vqi2i.data import PairedFolders, UnpairedFolders, build_dataset
from vqi2i.data.scenes import SPLITS, make_scenes, scene_images
from vqi2i.data.transforms import PairTransform, parse_size, resize_shorter
from vqi2i.errors import UserError


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _cyclegan(root: Path, n_a: int = 3, n_b: int = 5, h: int = 20, w: int = 24) -> Path:
    for phase in ("train", "test"):
        for i in range(n_a):
            _write(root / f"{phase}A" / f"a{i:02d}.png", _noise(h, w, 100 + i))
        for i in range(n_b):
            _write(root / f"{phase}B" / f"b{i:02d}.png", _noise(h, w, 200 + i))
    return root


def _same(x: dict, y: dict) -> bool:
    return torch.equal(x["a"], y["a"]) and torch.equal(x["b"], y["b"]) and x["path_b"] == y["path_b"]


def test_unpaired_items_shapes_and_b_permutation(tmp_path):
    ds = UnpairedFolders(_cyclegan(tmp_path), "train", size=20, crop=16, channels=3, seed=3)
    assert len(ds) == 5 and not ds.aligned
    item = ds[0]
    assert item["a"].shape == (3, 16, 16) and item["b"].shape == (3, 16, 16)
    assert item["a"].dtype == torch.float32 and -1 <= item["a"].min() and item["a"].max() <= 1
    names_a = [Path(ds[i]["path_a"]).name for i in range(5)]
    assert names_a == ["a00.png", "a01.png", "a02.png", "a00.png", "a01.png"]
    perms = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        names = [Path(ds[i]["path_b"]).name for i in range(5)]
        assert sorted(names) == [f"b{i:02d}.png" for i in range(5)]  # every B once per epoch
        perms.append(names)
    assert len({tuple(p) for p in perms}) > 1  # the pairing changes with the epoch
    assert ds[-1]["path_a"] == ds[4]["path_a"]
    with pytest.raises(IndexError):
        ds[5]


def test_item_is_pure_function_of_seed_epoch_index(tmp_path):
    root = _cyclegan(tmp_path)
    ds1 = UnpairedFolders(root, "train", size=20, crop=16, seed=7)
    ds1.set_epoch(2)
    torch.manual_seed(0)
    forward = [ds1[i] for i in range(5)]
    ds2 = UnpairedFolders(root, "train", size=20, crop=16, seed=7)
    ds2.set_epoch(5)
    _ = ds2[1]  # touching another epoch first must not matter
    ds2.set_epoch(2)
    torch.manual_seed(123)  # nor the global RNG
    backward = [ds2[i] for i in reversed(range(5))][::-1]
    assert all(_same(x, y) for x, y in zip(forward, backward))
    ds2.set_epoch(3)
    assert not all(torch.equal(x["a"], ds2[i]["a"]) for i, x in enumerate(forward))  # crops/flips vary
    other_seed = UnpairedFolders(root, "train", size=20, crop=16, seed=8)
    other_seed.set_epoch(2)
    assert not all(torch.equal(x["a"], other_seed[i]["a"]) for i, x in enumerate(forward))


def test_dataloader_workers_see_the_same_items(tmp_path):
    ds = UnpairedFolders(_cyclegan(tmp_path), "train", size=20, crop=16, seed=1)
    ds.set_epoch(4)
    serial = list(DataLoader(ds, batch_size=2, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert all(torch.equal(x["a"], y["a"]) and torch.equal(x["b"], y["b"]) for x, y in zip(serial, parallel))


def test_eval_mode_centre_crop_no_flip_aligned_b(tmp_path):
    root = _cyclegan(tmp_path, n_a=4, n_b=4)
    ds = UnpairedFolders(root, "test", size=None, crop=16, train=False)
    assert [Path(ds[i]["path_b"]).name for i in range(4)] == ["b00.png", "b01.png", "b02.png", "b03.png"]
    full = torch.from_numpy(_noise(20, 24, 100)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(ds[0]["a"], full[:, 2:18, 4:20])
    ds.set_epoch(9)
    assert torch.equal(ds[0]["a"], full[:, 2:18, 4:20])


def test_resize_keeps_aspect_and_range():
    img = torch.rand(3, 32, 48) * 2 - 1
    out = resize_shorter(img, 16)
    assert out.shape == (3, 16, 24) and out.min() >= -1 and out.max() <= 1
    assert resize_shorter(img, 32) is img and resize_shorter(img, None) is img
    tall = resize_shorter(torch.zeros(1, 50, 10), 20)
    assert tall.shape == (1, 100, 20)


def test_parse_size():
    assert parse_size(64, "size") == 64 and parse_size("64", "size") == 64
    assert parse_size(None, "size") is None and parse_size("none", "size") is None
    for bad in (0, -3, "big", 1.5, True):
        with pytest.raises(UserError, match="data.size"):
            parse_size(bad, "size")


def test_flip_and_crop_shared_across_a_pair():
    t = PairTransform(size=None, crop=8, flip=True, train=True)
    seen_flip = set()
    for k in range(12):
        a = torch.rand(3, 12, 12) * 2 - 1
        out_a, out_b = t([a, -a], ["a.png", "b.png"], torch.Generator().manual_seed(k))
        assert torch.equal(out_b, -out_a)
        (alone,) = t([a], ["a.png"], torch.Generator().manual_seed(k))
        assert torch.equal(alone, out_a)
        seen_flip.add(any(torch.equal(out_a, a[:, i : i + 8, j : j + 8]) for i in range(5) for j in range(5)))
    assert seen_flip == {True, False}  # both flipped and unflipped crops occur


def test_paired_folders_same_crop_and_flip(tmp_path):
    for i in range(4):
        a = _noise(20, 20, i)
        _write(tmp_path / "trainA" / f"{i}.png", a)
        _write(tmp_path / "trainB" / f"{i}.png", 255 - a)  # B is A inverted: -A in [-1, 1]
    ds = PairedFolders(tmp_path, "train", size=None, crop=12, seed=0)
    assert ds.aligned and len(ds) == 4
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(4):
            item = ds[i]
            assert Path(item["path_a"]).stem == Path(item["path_b"]).stem
            assert torch.allclose(item["b"], -item["a"], atol=1e-6)


def test_paired_unmatched_names_are_reported_and_none_matching_is_an_error(tmp_path):
    for name in ("x", "y", "only_a"):
        _write(tmp_path / "trainA" / f"{name}.png", _noise(8, 8, 0))
    for name in ("x", "y", "only_b"):
        _write(tmp_path / "trainB" / f"{name}.jpg", _noise(8, 8, 1))
    with pytest.warns(UserWarning) as caught:
        ds = PairedFolders(tmp_path, "train", size=8, crop=8)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and "only_a" in messages[0] and "only_b" in messages[1]
    assert "trainA have no partner in" in messages[0]
    assert len(ds) == 2 and ds.unmatched == {"a": ["only_a"], "b": ["only_b"]}
    _write(tmp_path / "testA" / "p.png", _noise(8, 8, 0))
    _write(tmp_path / "testB" / "q.png", _noise(8, 8, 0))
    with pytest.raises(UserError, match=r"no file in .*testA.* same-named partner"):
        PairedFolders(tmp_path, "test", size=8, crop=8)
    _write(tmp_path / "testA" / "q.jpg", _noise(8, 8, 0))
    _write(tmp_path / "testA" / "q.png", _noise(8, 8, 0))
    with pytest.raises(UserError, match=r"q\.jpg and .*q\.png have the same name"):
        PairedFolders(tmp_path, "test", size=8, crop=8)


def test_paired_side_by_side(tmp_path):
    for i in range(3):
        a = _noise(16, 16, i)
        _write(tmp_path / "train" / f"{i}.png", np.concatenate([a, 255 - a], axis=1))
    ds = PairedFolders(tmp_path, "train", size=None, crop=12, layout="side_by_side")
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        assert item["a"].shape == (3, 12, 12) and torch.allclose(item["b"], -item["a"], atol=1e-6)


def test_paired_images_of_different_sizes_are_rejected(tmp_path):
    _write(tmp_path / "trainA" / "x.png", _noise(16, 16, 0))
    _write(tmp_path / "trainB" / "x.png", _noise(16, 20, 0))
    ds = PairedFolders(tmp_path, "train", size=16, crop=16)
    with pytest.raises(UserError, match=r"trainA/x\.png is 16x16 but .*trainB/x\.png is 20x16"):
        ds[0]


def test_image_smaller_than_crop_without_resize(tmp_path):
    root = _cyclegan(tmp_path)
    _write(root / "trainA" / "a99_small.png", _noise(10, 30, 0))
    ds = UnpairedFolders(root, "train", size=None, crop=16)
    with pytest.raises(UserError, match=r"a99_small\.png is 30x10, smaller than the crop 16x16"):
        ds[3]
    ds_resized = UnpairedFolders(root, "train", size=16, crop=16)
    assert ds_resized[3]["a"].shape == (3, 16, 16)
    with pytest.raises(UserError, match=r"crop \(32\) cannot be larger than data.size \(16\)"):
        UnpairedFolders(root, "train", size=16, crop=32)


@pytest.mark.parametrize("content", ["truncated", "not_an_image"])
def test_bad_file_in_a_data_set_names_the_file(tmp_path, content):
    root = _cyclegan(tmp_path)
    bad = root / "trainB" / "b01.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if content == "truncated" else b"<html>not an image</html>")
    ds = UnpairedFolders(root, "train", size=20, crop=16, train=False)
    with pytest.raises(UserError, match=r"trainB/b01\.png"):
        ds[1]


def test_odd_image_files_load_through_the_data_set(tmp_path):
    root = tmp_path / "odd"
    _write(root / "trainA" / "deep.png", (np.arange(16 * 16).reshape(16, 16) * 200).astype(np.uint16))
    pal = Image.fromarray(_noise(16, 16, 0)).convert("P")
    pal.save(_write(root / "trainA" / "pal.png", _noise(2, 2, 0)))
    rgba = np.dstack([_noise(16, 16, 1), np.full((16, 16), 128, np.uint8)])
    _write(root / "trainB" / "rgba.png", rgba)
    ds = UnpairedFolders(root, "train", size=16, crop=16, channels=1)
    for i in range(len(ds)):
        item = ds[i]
        assert item["a"].shape == (1, 16, 16) and item["b"].shape == (1, 16, 16)
        assert item["a"].min() >= -1 and item["a"].max() <= 1
    deep = next(ds[i]["a"] for i in range(2) if ds[i]["path_a"].endswith("deep.png"))
    assert deep.min() == -1 and abs(deep.max() - (255 * 200 / 65535 * 2 - 1)) < 1e-4  # scaled, not clipped


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match=r"nothing.*does not exist.*vqi2i data scenes"):
        UnpairedFolders(tmp_path / "nothing")
    (tmp_path / "trainA").mkdir()
    with pytest.raises(UserError, match=r"trainB is not a folder \(found trainA"):
        UnpairedFolders(tmp_path)
    (tmp_path / "trainB").mkdir()
    _write(tmp_path / "trainB" / "x.png", _noise(8, 8, 0))
    with pytest.raises(UserError, match=r"no images in .*trainA"):
        UnpairedFolders(tmp_path)


def test_build_dataset_from_config(tmp_path):
    root = _cyclegan(tmp_path / "data")
    cfg = OmegaConf.create({"kind": "unpaired", "root": str(root), "size": 20, "crop": 16, "flip": True,
                            "channels": 1, "layout": "folders", "num_workers": 0})
    ds = build_dataset(cfg, "train", train=True, seed=5)
    assert isinstance(ds, UnpairedFolders) and ds.seed == 5 and ds.train and ds[0]["a"].shape == (1, 16, 16)
    test = build_dataset(dict(cfg, size="none"), "test", train=False)
    assert not test.train and test.transform.size is None and test.seed == 0
    with pytest.raises(UserError, match=r"vqi2i data scenes .*missing"):
        build_dataset(dict(cfg, root=str(tmp_path / "missing")), "train", train=True)
    with pytest.raises(UserError, match=r"did you mean 'paired'"):
        build_dataset(dict(cfg, kind="pairedd"), "train", train=True)
    with pytest.raises(UserError, match=r"data.layout"):
        build_dataset(dict(cfg, kind="paired", layout="sidebyside"), "train", train=True)
    with pytest.raises(UserError, match=r"data.crop"):
        build_dataset(dict(cfg, crop="huge"), "train", train=True)


# ----------------------------------------------------------------------------- synthetic scenes

def _edges(a: np.ndarray) -> np.ndarray:
    lum = a.astype(np.float32).mean(axis=2)
    return (np.abs(np.diff(lum, axis=1))[:-1] + np.abs(np.diff(lum, axis=0))[:, :-1]).ravel()


def _edge_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_edges(a), _edges(b))[0, 1])


def test_make_scenes_layout_and_byte_identical_by_seed(tmp_path):
    first = make_scenes(tmp_path / "one", n_train=4, n_test=3, size=32, seed=11, progress=False)
    second = make_scenes(tmp_path / "two", n_train=4, n_test=3, size=32, seed=11, progress=False)
    other = make_scenes(tmp_path / "three", n_train=4, n_test=3, size=32, seed=12, progress=False)
    assert sorted(p.name for p in first.iterdir()) == sorted([*SPLITS, "scenes.json"])
    for split, count in zip(SPLITS, (4, 4, 3, 3)):
        names = sorted(p.name for p in (first / split).iterdir())
        assert names == [f"{i:04d}.png" for i in range(count)]
        for name in names:
            assert (first / split / name).read_bytes() == (second / split / name).read_bytes()
        assert any((first / split / n).read_bytes() != (other / split / n).read_bytes() for n in names)
        img = Image.open(first / split / names[0])
        assert img.mode == "RGB" and img.size == (32, 32)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_scenes_share_structure_only_in_the_test_split():
    def corr(split_a: str, split_b: str, shift: int = 0) -> list[float]:
        pairs = [(scene_images(0, split_a, i, 32), scene_images(0, split_b, i + shift, 32)) for i in range(6)]
        return [_edge_corr(a, b) for a, b in pairs]

    same, shifted, train = corr("testA", "testB"), corr("testA", "testB", shift=1), corr("trainA", "trainB")
    assert min(same) > 0.4  # testA/i and testB/i are the same landscape
    assert max(shifted) < 0.3 and max(train) < 0.3  # train domains come from independent scenes
    assert min(same) > max(shifted) + 0.15


def test_shared_train_scenes_pair_the_train_split(tmp_path):
    """--shared-train (the paired ceiling's data): trainA/i and trainB/i are one landscape, each with its own look;
    the test split and trainA stay what the unpaired set writes."""
    shared = [_edge_corr(scene_images(0, "trainA", i, 32, shared_train=True),
                         scene_images(0, "trainB", i, 32, shared_train=True)) for i in range(6)]
    assert min(shared) > 0.4
    for split in ("trainA", "testA", "testB"):
        assert np.array_equal(scene_images(0, split, 2, 32, shared_train=True), scene_images(0, split, 2, 32))
    pair = [scene_images(0, s, 1, 32, shared_train=True) for s in ("trainA", "trainB")]
    assert np.abs(pair[0].astype(np.float32) - pair[1]).mean() > 30  # two seasons, not one picture
    out = make_scenes(tmp_path / "p", n_train=2, n_test=1, size=32, progress=False, shared_train=True)
    assert json.loads((out / "scenes.json").read_text())["train_split"] == "shared"
    assert cli_main(["data", "scenes", str(tmp_path / "q"), "--n-train", "2", "--n-test", "1", "--size", "32",
                     "--shared-train"]) == 0
    for split in SPLITS:
        assert (out / split / "0000.png").read_bytes() == (tmp_path / "q" / split / "0000.png").read_bytes()


def test_scene_domains_differ_in_style_and_vary_within():
    summer = np.stack([scene_images(3, "trainA", i, 32) for i in range(8)]).astype(np.float32)
    winter = np.stack([scene_images(3, "trainB", i, 32) for i in range(8)]).astype(np.float32)
    assert winter.mean() > summer.mean() + 30  # snow is bright
    greenness = [float((d[:, -8:, :, 1] - d[:, -8:, :, [0, 2]].mean(-1)).mean()) for d in (summer, winter)]
    assert greenness[0] > 40 and greenness[1] < 30  # green meadows vs white snow
    for domain in (summer, winter):  # time of day and colour jitter change the look per image
        sky = domain[:, :4].mean(axis=(1, 2))  # [8, 3] mean colour of the top rows
        assert sky.std(axis=0).max() > 10


def test_scenes_refuse_non_empty_folder_unless_overwrite(tmp_path):
    out = make_scenes(tmp_path / "s", n_train=2, n_test=1, size=16, progress=False)
    before = (out / "trainA" / "0000.png").read_bytes()
    with pytest.raises(UserError, match="already exists and is not empty"):
        make_scenes(out, n_train=2, n_test=1, size=16, progress=False)
    make_scenes(out, n_train=1, n_test=1, size=16, seed=5, overwrite=True, progress=False)
    assert [p.name for p in (out / "trainA").iterdir()] == ["0000.png"]  # old splits replaced, not merged
    assert (out / "trainA" / "0000.png").read_bytes() != before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a scenes data set"):
        make_scenes(tmp_path / "mine", n_train=1, n_test=1, size=16, overwrite=True, progress=False)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"
    for kwargs, pattern in ((dict(n_train=0), "n-train"), (dict(size=8), "size"), (dict(seed=-1), "seed")):
        with pytest.raises(UserError, match=pattern):
            make_scenes(tmp_path / "bad", **{"n_test": 1, "progress": False, **kwargs})


def test_scenes_cli_and_script_feed_the_data_set(tmp_path, capsys):
    small = ["--n-train", "3", "--n-test", "2", "--size", "24"]
    assert cli_main(["data", "scenes", str(tmp_path / "s"), *small]) == 0
    assert cli_main(["data", "scenes", str(tmp_path / "s"), "--n-train", "3"]) == 2
    assert "vqi2i data: error:" in capsys.readouterr().err
    assert cli_main(["data"]) == 2

    script_path = Path(__file__).parents[1] / "scripts" / "make_scenes.py"
    spec = importlib.util.spec_from_file_location("make_scenes", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(tmp_path / "t"), *small]) == 0
    for split in SPLITS:
        for name in (tmp_path / "s" / split).iterdir():
            assert name.read_bytes() == (tmp_path / "t" / split / name.name).read_bytes()

    cfg = {"kind": "unpaired", "root": str(tmp_path / "s"), "size": 24, "crop": 16, "channels": 3}
    train = build_dataset(cfg, "train", train=True)
    assert len(train) == 3 and train[2]["a"].shape == (3, 16, 16)
    test = build_dataset(cfg, "test", train=False)
    assert [Path(test[i]["path_a"]).name == Path(test[i]["path_b"]).name for i in range(2)] == [True, True]
    paired = build_dataset(dict(cfg, kind="paired"), "test", train=False)
    assert len(paired) == 2 and paired.aligned
