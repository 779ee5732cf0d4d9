"""Image-folder data sets: unpaired (CycleGAN layout) and paired (matched folders or pix2pix side-by-side).

Each item is {"a": [C,H,W], "b": [C,H,W], "path_a": str, "path_b": str} in [-1, 1]. Every random
choice (crop, flip, which B goes with which A) comes from a generator seeded by (seed, epoch, index),
so after `set_epoch(e)`, `dataset[i]` is a pure function of (seed, e, i): a resumed run sees exactly
the batches it would have seen, whatever the worker count.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vqi2i.data.transforms import PairTransform, item_generator
from vqi2i.errors import UserError
from vqi2i.images import list_images, load_image

ITEM_STREAM, PERMUTATION_STREAM = 0, 1
MAKE_DATA_HINT = (
    "expected the CycleGAN layout trainA/ trainB/ testA/ testB/; "
    "make a synthetic data set with `vqi2i data scenes DIR`"
)


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data root {root} does not exist ({MAKE_DATA_HINT})")
    if not root.is_dir():
        raise UserError(f"data root {root} is not a folder ({MAKE_DATA_HINT})")
    return root


def _phase_folder(root: Path, name: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "no sub-folders"
        raise UserError(f"{folder} is not a folder (found {present} in {root}; {MAKE_DATA_HINT})")
    return folder


class _FolderDataset(Dataset):
    """What both kinds share: the transform, the epoch, and seeding."""

    aligned = False

    def __init__(self, size: int | None, crop: int | None, flip: bool, channels: int, seed: int, train: bool):
        if channels not in (1, 3):
            raise UserError(f"data.channels must be 1 or 3, got {channels}")
        if int(seed) < 0:
            raise UserError(f"the data seed must be >= 0, got {seed}")
        if size is not None and crop is not None and crop > size:
            raise UserError(f"data.crop ({crop}) cannot be larger than data.size ({size})")
        self.channels, self.seed, self.train = channels, int(seed), train
        self.transform = PairTransform(size=size, crop=crop, flip=flip, train=train)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops, flips and A/B pairing __getitem__ returns."""
        self.epoch = int(epoch)

    def _generator(self, index: int) -> torch.Generator:
        return item_generator(self.seed, self.epoch, index, ITEM_STREAM)

    def _index(self, i: int) -> int:
        return range(len(self))[i]  # negative indices, and IndexError past the end


class UnpairedFolders(_FolderDataset):
    """Two unrelated image folders `root/{phase}A` and `root/{phase}B`.

    Training: A is `i % len(A)`, B comes from a permutation of B drawn per (seed, epoch), so the
    domains are unpaired and every B is seen once per len(B) items. Evaluation (train=False): centre
    crop, no flip, and B is `i % len(B)`, so same-named test files (synthetic scenes) line up."""

    def __init__(
        self,
        root: str | os.PathLike,
        phase: str = "train",
        size: int | None = 64,
        crop: int | None = 64,
        flip: bool = True,
        channels: int = 3,
        seed: int = 0,
        train: bool | None = None,
    ):
        super().__init__(size, crop, flip, channels, seed, phase == "train" if train is None else train)
        root = _check_root(root)
        self.root, self.phase = root, phase
        folder_a, folder_b = _phase_folder(root, f"{phase}A"), _phase_folder(root, f"{phase}B")
        self.paths_a, self.paths_b = list_images(folder_a), list_images(folder_b)
        self._perm_epoch: int | None = None
        self._perm = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def b_index(self, i: int) -> int:
        """Which B file goes with item i in the current epoch."""
        n = len(self.paths_b)
        if not self.train:
            return i % n
        if self._perm_epoch != self.epoch:  # computed lazily so it also works inside DataLoader workers
            g = item_generator(self.seed, self.epoch, 0, PERMUTATION_STREAM)
            self._perm, self._perm_epoch = torch.randperm(n, generator=g), self.epoch
        return int(self._perm[i % n])

    def __getitem__(self, i: int) -> dict:
        i = self._index(i)
        path_a, path_b = self.paths_a[i % len(self.paths_a)], self.paths_b[self.b_index(i)]
        g = self._generator(i)
        (a,) = self.transform([load_image(path_a, self.channels)], [path_a], g)
        (b,) = self.transform([load_image(path_b, self.channels)], [path_b], g)
        return {"a": a, "b": b, "path_a": str(path_a), "path_b": str(path_b)}


class PairedFolders(_FolderDataset):
    """Aligned pairs, with the same crop and flip applied to both images.

    layout="folders": `root/{phase}A/x.png` goes with `root/{phase}B/x.*` (matched by file stem).
    layout="side_by_side": pix2pix style, each `root/{phase}/x.png` holds A on the left half and B
    on the right half."""

    aligned = True

    def __init__(
        self,
        root: str | os.PathLike,
        phase: str = "train",
        size: int | None = 64,
        crop: int | None = 64,
        flip: bool = True,
        channels: int = 3,
        seed: int = 0,
        layout: str = "folders",
        train: bool | None = None,
    ):
        super().__init__(size, crop, flip, channels, seed, phase == "train" if train is None else train)
        root = _check_root(root)
        self.root, self.phase, self.layout = root, phase, layout
        self.unmatched: dict[str, list[str]] = {"a": [], "b": []}
        if layout == "folders":
            self.pairs = self._match(_phase_folder(root, f"{phase}A"), _phase_folder(root, f"{phase}B"))
        elif layout == "side_by_side":
            self.pairs = [(p, p) for p in list_images(_phase_folder(root, phase))]
        else:
            raise UserError(f"data.layout={layout!r} is not one of folders, side_by_side")

    def _match(self, folder_a: Path, folder_b: Path) -> list[tuple[Path, Path]]:
        by_stem = []
        for folder in (folder_a, folder_b):
            stems: dict[str, Path] = {}
            for p in list_images(folder):
                if p.stem in stems:
                    raise UserError(f"{stems[p.stem]} and {p} have the same name; pairs are matched by name")
                stems[p.stem] = p
            by_stem.append(stems)
        a, b = by_stem
        common = sorted(a.keys() & b.keys())
        self.unmatched = {"a": sorted(a.keys() - b.keys()), "b": sorted(b.keys() - a.keys())}
        if not common:
            raise UserError(
                f"no file in {folder_a} has a same-named partner in {folder_b} "
                f"(e.g. {next(iter(sorted(a)))} vs {next(iter(sorted(b)))}); paired files are matched by name"
            )
        for side, folder, other in (("a", folder_a, folder_b), ("b", folder_b, folder_a)):
            names = self.unmatched[side]
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                warnings.warn(
                    f"{len(names)} file(s) in {folder} have no partner in {other} and are skipped: {shown}",
                    stacklevel=3,
                )
        return [(a[s], b[s]) for s in common]

    def __len__(self) -> int:
        return len(self.pairs)

    def _load_pair(self, path_a: Path, path_b: Path) -> tuple[torch.Tensor, torch.Tensor]:
        if self.layout == "folders":
            return load_image(path_a, self.channels), load_image(path_b, self.channels)
        both = load_image(path_a, self.channels)
        half = both.shape[-1] // 2
        if half < 1:
            raise UserError(f"side-by-side image {path_a} is too narrow to split into A and B")
        return both[..., :half], both[..., half : 2 * half]

    def __getitem__(self, i: int) -> dict:
        i = self._index(i)
        path_a, path_b = self.pairs[i]
        a, b = self._load_pair(path_a, path_b)
        a, b = self.transform([a, b], [path_a, path_b], self._generator(i))
        return {"a": a, "b": b, "path_a": str(path_a), "path_b": str(path_b)}
