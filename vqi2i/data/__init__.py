"""Data: image-folder data sets and the synthetic data builders (`vqi2i data ...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqi2i.data.folders import MAKE_DATA_HINT, PairedFolders, UnpairedFolders
from vqi2i.data.transforms import parse_size
from vqi2i.errors import UserError, did_you_mean

KINDS = ("unpaired", "paired")
LAYOUTS = ("folders", "side_by_side")


def build_dataset(
    data_cfg: Any, phase: str, train: bool, seed: int | None = None
) -> UnpairedFolders | PairedFolders:
    """The data set a config's `data` node describes, for `phase` ("train" or "test").

    data_cfg is a dict or DictConfig with kind, root, size, crop, flip, channels, layout (paired
    only) and optionally seed; an explicit `seed` argument wins over data_cfg.seed."""
    kind = str(data_cfg.get("kind", "unpaired"))
    if kind not in KINDS:
        raise UserError(f"data.kind={kind!r} is not one of {', '.join(KINDS)}{did_you_mean(kind, KINDS)}")
    root = data_cfg.get("root")
    if root is None or str(root).strip() == "":
        raise UserError(f"data.root is not set ({MAKE_DATA_HINT})")
    root = Path(str(root)).expanduser()
    if not root.exists():
        raise UserError(
            f"data root {root} does not exist; make a synthetic data set with `vqi2i data scenes {root}` "
            "or set data.root to a folder with trainA/ trainB/ testA/ testB/"
        )
    common = dict(
        phase=phase,
        size=parse_size(data_cfg.get("size", 64), "size"),
        crop=parse_size(data_cfg.get("crop", 64), "crop"),
        flip=bool(data_cfg.get("flip", True)),
        channels=int(data_cfg.get("channels", 3)),
        seed=int(data_cfg.get("seed", 0) if seed is None else seed),
        train=train,
    )
    if kind == "unpaired":
        return UnpairedFolders(root, **common)
    layout = str(data_cfg.get("layout", "folders"))
    if layout not in LAYOUTS:
        hint = did_you_mean(layout, LAYOUTS)
        raise UserError(f"data.layout={layout!r} is not one of {', '.join(LAYOUTS)}{hint}")
    return PairedFolders(root, layout=layout, **common)


__all__ = ["PairedFolders", "UnpairedFolders", "build_dataset"]
