"""A small CNN that tells domain A from domain B: the judge of style accuracy, and a feature space.

Unpaired translation has no ground truth in general, so `vqi2i eval` asks a classifier trained on the
real training images of both domains which domain a translation looks like, and measures Fréchet
distance, KID and diversity in its penultimate features (always available, nothing to download).
It is trained once per data set and cached beside the data (`DATA/domain_classifier.safetensors`
with a JSON sidecar); the cache is used only while the data and settings it was trained with match.

A judge trained on whole images alone learns whatever separates the two training sets most cheaply,
which can be texture: the first version called noisy, blurry emoji translations Twemoji because of
their high-frequency colour noise. So the judge looks at two things that a domain's style consists
of, and that noise does not fake:
- the palette: per-channel soft histograms of the non-white pixels (the gray histogram for gray
  data) and the share of non-white pixels, concatenated with the conv features;
- the local drawing: during training it sees random windows (side `min_crop`..1 of the image,
  resized back to `image_size`), so every part of an image has to look like its domain, not just
  some global statistic; at evaluation it sees the whole image.
Half the training images of both domains get colour noise, so that noise itself points to neither.
BatchNorm, a cosine learning-rate schedule and more steps make the training converge reliably.
"""

from __future__ import annotations

import hashlib
import json
import math
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
CACHE_VERSION = 2  # 2: colour histograms, random-window and noise training, BatchNorm, cosine schedule
DEFAULT_STEPS = 800


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything a trained classifier depends on besides the data; part of the cache key."""

    channels: int = 1
    image_size: int = 64         # inputs are resized to this side (domain style shows at 64 px)
    width: int = 16
    feature_dim: int = 64
    steps: int = DEFAULT_STEPS
    batch_size: int = 64
    lr: float = 2e-3             # peak; cosine decay to 0 over the steps
    seed: int = 0
    max_images: int = 2000       # per domain
    hist_bins: int = 16          # per channel, over the non-white pixels
    min_crop: float = 0.5        # training windows have a side of min_crop..1 of the image
    noise: float = 0.3           # half the training images get colour noise of std up to this (both labels)


class ColorHistogram(nn.Module):
    """Per-channel soft histograms of the non-white pixels, plus the share of non-white pixels.

    Images in [-1,1]; a pixel counts by how far its darkest channel is below white (fully from 0.7 down,
    not at all above 0.9), and adds to the two nearest of `bins` evenly spaced bins (linear weights).
    Returns [B, C*bins + 1]: square roots of the normalised histograms (scaled so a flat one is 1), and
    the ink share."""

    def __init__(self, channels: int, bins: int):
        super().__init__()
        if bins < 2:
            raise ValueError(f"a histogram needs at least 2 bins, got {bins}")
        self.bins, self.out_dim = bins, channels * bins + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins = self.bins
        weight = ((0.9 - x.amin(dim=1, keepdim=True)) / 0.2).clamp(0, 1)          # [B,1,H,W]
        pos = (x.clamp(-1, 1) + 1) * ((bins - 1) / 2)                               # bin coordinate
        lo = pos.floor().clamp(max=bins - 2)
        frac = pos - lo
        w = weight.expand_as(x)
        hist = x.new_zeros(x.shape[0], x.shape[1], bins)
        hist.scatter_add_(2, lo.long().flatten(2), (w * (1 - frac)).flatten(2))
        hist.scatter_add_(2, lo.long().flatten(2) + 1, (w * frac).flatten(2))
        mass = weight.flatten(1).sum(1)                                              # [B]
        hist = hist / (mass.view(-1, 1, 1) + 1e-6)
        ink = mass / weight[0].numel()
        return torch.cat([(hist.flatten(1) * bins).sqrt(), ink[:, None]], dim=1)


class DomainClassifier(nn.Module):
    """Four strided convs with BatchNorm and global average pooling, joined by a colour histogram, then a
    feature layer and a 2-way head (0 = A, 1 = B)."""

    def __init__(self, channels: int = 1, image_size: int = 64, width: int = 16, feature_dim: int = 64,
                 hist_bins: int = 16):
        super().__init__()
        self.image_size = image_size
        layers, c_in = [], channels
        for mult in (1, 2, 4, 4):
            layers += [nn.Conv2d(c_in, width * mult, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width * mult), nn.LeakyReLU(0.2)]
            c_in = width * mult
        self.convs = nn.Sequential(*layers)
        self.histogram = ColorHistogram(channels, hist_bins)
        self.to_features = nn.Linear(c_in + self.histogram.out_dim, feature_dim)
        self.head = nn.Linear(feature_dim, 2)

    @classmethod
    def from_settings(cls, settings: ClassifierSettings) -> DomainClassifier:
        return cls(settings.channels, settings.image_size, settings.width, settings.feature_dim, settings.hist_bins)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.image_size and x.shape[-2] == self.image_size:
            return x
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                             align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B,C,H,W] in [-1,1] -> features [B, feature_dim]."""
        x = self.resize(x)
        h = torch.cat([self.convs(x).mean(dim=(2, 3)), self.histogram(x)], dim=1)
        return F.leaky_relu(self.to_features(h), 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def random_windows(x: torch.Tensor, min_crop: float, gen: torch.Generator) -> torch.Tensor:
    """A random square window of each image (side min_crop..1 of the image, anywhere inside it), resized
    back to the image's size."""
    n = len(x)
    side = min_crop + (1 - min_crop) * torch.rand(n, generator=gen)
    centre = (1 - side)[:, None] * (2 * torch.rand(n, 2, generator=gen) - 1)  # keeps the window inside
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = centre
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def add_noise(x: torch.Tensor, max_std: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise, independent per pixel and channel, on a random half of the images (std uniform in
    0..max_std): noise is then no evidence for either domain, so noisy translations are judged by palette
    and drawing rather than called whichever domain looks busier."""
    n = len(x)
    std = max_std * torch.rand(n, generator=gen) * (torch.rand(n, generator=gen) < 0.5)
    return (x + std.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


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
    """Train on random windows of real images of A (label 0) and B (label 1) in balanced batches, with a
    cosine learning-rate schedule; repeatable by the seed."""
    if len(images_a) == 0 or len(images_b) == 0:
        raise UserError("the domain classifier needs training images of both domains")
    gen = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)  # the initial weights
    model = DomainClassifier.from_settings(settings).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / settings.steps)))
    half = max(1, settings.batch_size // 2)
    labels = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)]).to(device)
    model.train()
    bar = tqdm(range(settings.steps), desc="training domain classifier", unit="step", disable=not progress)
    for _ in bar:
        ia = torch.randint(len(images_a), (half,), generator=gen)
        ib = torch.randint(len(images_b), (half,), generator=gen)
        x = model.resize(torch.cat([images_a[ia], images_b[ib]]))
        if settings.min_crop < 1:
            x = random_windows(x, settings.min_crop, gen)
        if settings.noise > 0:
            x = add_noise(x, settings.noise, gen)
        loss = F.cross_entropy(model(x.to(device)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
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
    model = DomainClassifier.from_settings(settings)
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
