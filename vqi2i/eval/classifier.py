"""A small CNN that tells domain A from domain B: the judge of style accuracy, and a feature space.

Unpaired translation has no ground truth in general, so `vqi2i eval` asks a classifier trained on the
real training images of both domains which domain a translation looks like, and measures Fréchet
distance, KID and diversity in its penultimate features (always available, nothing to download).
It is trained once per data set and cached beside the data (`DATA/domain_classifier.safetensors`
with a JSON sidecar); the cache is used only while the data and settings it was trained with match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vqi2i.errors import UserError
from vqi2i.fileio import atomic_path, atomic_write_text
from vqi2i.images import list_images, load_image

CACHE_NAME = "domain_classifier"
CACHE_VERSION = 1


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything a trained classifier depends on besides the data; part of the cache key."""

    channels: int = 1
    image_size: int = 64         # inputs are resized to this side (domain style shows at 64 px)
    width: int = 16
    feature_dim: int = 64
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    max_images: int = 2000       # per domain


class DomainClassifier(nn.Module):
    """Four strided convs, global average pooling, a feature layer and a 2-way head (0 = A, 1 = B)."""

    def __init__(self, channels: int = 1, image_size: int = 64, width: int = 16, feature_dim: int = 64):
        super().__init__()
        self.image_size = image_size
        layers, c_in = [], channels
        for mult in (1, 2, 4, 4):
            layers += [nn.Conv2d(c_in, width * mult, 4, stride=2, padding=1), nn.GroupNorm(8, width * mult),
                       nn.LeakyReLU(0.2)]
            c_in = width * mult
        self.convs = nn.Sequential(*layers)
        self.to_features = nn.Linear(c_in, feature_dim)
        self.head = nn.Linear(feature_dim, 2)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.image_size and x.shape[-2] == self.image_size:
            return x
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                             align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B,C,H,W] in [-1,1] -> features [B, feature_dim]."""
        h = self.convs(self.resize(x)).mean(dim=(2, 3))
        return F.leaky_relu(self.to_features(h), 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _batches(images: torch.Tensor, batch_size: int):
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size]


@torch.no_grad()
def classify(model: DomainClassifier, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Probability [N] that each image is of domain B."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(b.to(device)).softmax(-1)[:, 1].cpu() for b in _batches(images, batch_size)])


@torch.no_grad()
def extract_features(model: DomainClassifier, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Classifier features [N, feature_dim] of images [N,C,H,W]."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.features(b.to(device)).cpu() for b in _batches(images, batch_size)])


def domain_accuracy(model: DomainClassifier, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """Share of real images of both domains that the classifier puts in their own domain."""
    correct = (classify(model, images_a) < 0.5).sum() + (classify(model, images_b) >= 0.5).sum()
    return float(correct) / (len(images_a) + len(images_b))


@torch.enable_grad()  # also when called from inside an evaluation's no_grad
def train_classifier(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    settings: ClassifierSettings,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> DomainClassifier:
    """Train on real images of A (label 0) and B (label 1) in balanced batches; repeatable by the seed."""
    if len(images_a) == 0 or len(images_b) == 0:
        raise UserError("the domain classifier needs training images of both domains")
    gen = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)  # the initial weights
    model = DomainClassifier(settings.channels, settings.image_size, settings.width, settings.feature_dim)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    half = max(1, settings.batch_size // 2)
    labels = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)]).to(device)
    model.train()
    bar = tqdm(range(settings.steps), desc="training domain classifier", unit="step", disable=not progress)
    for _ in bar:
        ia = torch.randint(len(images_a), (half,), generator=gen)
        ib = torch.randint(len(images_b), (half,), generator=gen)
        x = torch.cat([images_a[ia], images_b[ib]]).to(device)
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model


# --- loading images and the cache ------------------------------------------------------------------

def load_folder(
    folder: str | Path, channels: int, limit: int | None = None, size: int | None = None
) -> torch.Tensor:
    """The first `limit` images of a folder (sorted by name) as [N,C,H,W], resized to size x size if given."""
    paths = list_images(folder)[:limit]
    images = []
    for p in paths:
        x = load_image(p, channels)
        if size is not None and x.shape[-2:] != (size, size):
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0].clamp(-1, 1)
        elif images and x.shape != images[0].shape:
            raise UserError(f"{p} is {x.shape[-1]}x{x.shape[-2]} but {paths[0]} is "
                            f"{images[0].shape[-1]}x{images[0].shape[-2]}: "
                            "the images of a folder must share one size")
        images.append(x)
    return torch.stack(images)


def data_fingerprint(root: str | Path, max_images: int) -> str:
    """A hash of the training files the classifier would see (names and sizes)."""
    h = hashlib.sha256()
    for sub in ("trainA", "trainB"):
        for p in list_images(Path(root) / sub)[:max_images]:
            h.update(f"{sub}/{p.name}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def cache_paths(root: str | Path) -> tuple[Path, Path]:
    root = Path(root)
    return root / f"{CACHE_NAME}.safetensors", root / f"{CACHE_NAME}.json"


def load_cached(root: str | Path, settings: ClassifierSettings) -> tuple[DomainClassifier | None, str]:
    """(classifier, "") when the cache beside the data matches the data and settings, else (None, why not)."""
    weights, meta_path = cache_paths(root)
    if not weights.is_file() or not meta_path.is_file():
        return None, "no cached classifier"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return None, f"unreadable {meta_path.name} ({e})"
    if meta.get("version") != CACHE_VERSION or meta.get("settings") != asdict(settings):
        return None, "the cached classifier was trained with other settings"
    if meta.get("fingerprint") != data_fingerprint(root, settings.max_images):
        return None, "the training images changed since the cached classifier was trained"
    model = DomainClassifier(settings.channels, settings.image_size, settings.width, settings.feature_dim)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as e:  # noqa: BLE001 - a damaged cache is retrained, not fatal
        return None, f"unreadable {weights.name} ({e})"
    return model.eval(), ""


def save_cached(root: str | Path, model: DomainClassifier, settings: ClassifierSettings, metrics: dict,
                overwrite: bool = False) -> Path:
    """Write the classifier and its sidecar (settings, data fingerprint, accuracies) beside the data."""
    weights, meta_path = cache_paths(root)
    if not overwrite and (weights.exists() or meta_path.exists()):
        raise UserError(f"{weights} already exists (pass --overwrite to replace it)")
    meta = {"version": CACHE_VERSION, "settings": asdict(settings),
            "fingerprint": data_fingerprint(root, settings.max_images), **metrics}
    with atomic_path(weights, overwrite=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n", overwrite=True)
    return weights


def fit_for_data(
    root: str | Path, settings: ClassifierSettings, device: str | torch.device = "cpu", progress: bool = True
) -> tuple[DomainClassifier, dict]:
    """Train a classifier on root/trainA and root/trainB; returns it with its accuracies (train, and test
    when root/testA and root/testB exist)."""
    root = Path(root)
    size = settings.image_size
    train_a = load_folder(root / "trainA", settings.channels, settings.max_images, size)
    train_b = load_folder(root / "trainB", settings.channels, settings.max_images, size)
    model = train_classifier(train_a, train_b, settings, device, progress)
    metrics = {"train_accuracy": domain_accuracy(model, train_a, train_b),
               "num_train": [len(train_a), len(train_b)]}
    if (root / "testA").is_dir() and (root / "testB").is_dir():
        test_a = load_folder(root / "testA", settings.channels, None, size)
        test_b = load_folder(root / "testB", settings.channels, None, size)
        metrics["test_accuracy"] = domain_accuracy(model, test_a, test_b)
    return model.cpu().eval(), metrics
