"""Built-in trained models, shipped inside the package and used by name.

    vqi2i/builtin/models/NAME/
        model.safetensors   the weights inference uses (byte for byte those of the training run, so the
                            checkpoint id is the run's)
        config.yaml         the resolved training config
        card.yaml           the model card: kind, domains, how it was trained (script, command, steps, data),
                            its evaluation figures, license and attribution, checkpoint id
        examples/a/*.png    a few held-out test images of each domain (translators), for the demo, the app
        examples/b/*.png    and the test that checks each model still gives its recorded result
        reference/*.png     that recorded result (`vqi2i.apps.builtin_reference` computes it)

Every command that takes a run folder (`--checkpoint`, `--prior`, `--codec`) also takes one of these
names; a run or checkpoint folder of that name in the working directory wins. `scripts/train_builtin.py` trains and
packages them; `vqi2i models` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from vqi2i.errors import UserError

MODELS_DIR = Path(__file__).resolve().parent / "models"
CARD_FILE = "card.yaml"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    path: Path

    @cached_property
    def card(self) -> dict[str, Any]:
        try:
            card = yaml.safe_load((self.path / CARD_FILE).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f"built-in model {self.name}: {CARD_FILE} is unreadable ({type(e).__name__})") from None
        if not isinstance(card, dict):
            raise UserError(f"built-in model {self.name}: {CARD_FILE} is not a mapping")
        return card

    @property
    def kind(self) -> str:
        """'translator' or 'prior'."""
        return str(self.card.get("kind", "translator"))

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def examples(self, domain: str) -> list[Path]:
        """The shipped example images of domain 'a' or 'b' (sorted; empty for a prior)."""
        folder = self.path / "examples" / domain
        return sorted(folder.glob("*.png")) if folder.is_dir() else []


def available() -> list[str]:
    """Names of the built-in models shipped with this installation (sorted)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / CARD_FILE).is_file())


def get(name: str) -> BuiltinModel:
    """The built-in model `name`; an unknown name is a UserError listing the known ones."""
    if name not in available():
        known = ", ".join(available()) or "none are installed"
        raise UserError(f"no built-in model named '{name}' (built-in models: {known})")
    return BuiltinModel(name, MODELS_DIR / name)


def _holds_checkpoint(path: Path) -> bool:
    return (path / "model.safetensors").is_file() or (path / "checkpoints" / "latest").is_file()


def locate(spec: str | Path) -> Path:
    """A run/checkpoint path, or a built-in model's name -> the path to load. A run or checkpoint folder
    of that name wins over a built-in model (any other file or folder of that name does not); anything
    else is returned as a path, for the loader to say what is wrong with it."""
    path = Path(spec)
    if str(spec) in available() and not _holds_checkpoint(path):
        return MODELS_DIR / str(spec)
    return path
