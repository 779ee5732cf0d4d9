"""Evaluation metrics on tensors: paired scores, distribution distances, diversity and codebook usage.

Images are [B,C,H,W] in [-1,1] as everywhere in vqi2i; pixel scores are computed on [0,1].
Well-kept implementations are used where they exist: torchmetrics for PSNR, SSIM and the KID
kernel MMD. The Fréchet distance is a few lines of linear algebra, checked against scipy in the tests.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image.kid import poly_mmd
from torchvision.transforms.functional import gaussian_blur

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; cap it so means and JSON stay finite
COARSE_CELLS = 8  # coarse_l1 compares images average-pooled to this many cells a side (8 px cells at 64 px)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1,1] -> [0,1] in float32, clamped."""
    return ((x.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0)


def paired_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L1 (mean absolute error), PSNR (dB, capped), SSIM and coarse L1 of pred against target,
    both in [-1,1].

    Returns {"l1": [B], "psnr": [B], "ssim": [B], "coarse_l1": [B]} on the [0,1] scale. SSIM uses torchmetrics'
    Gaussian window (11 px, sigma 1.5), shrunk to fit images smaller than 11 px. coarse_l1 is the L1 after
    average-pooling both images to COARSE_CELLS x COARSE_CELLS: the colour and layout error, blind to stroke
    detail and to high-frequency noise.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be [B,C,H,W] of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    p, t = to_unit(pred), to_unit(target)
    l1 = (p - t).abs().flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    psnr = torch.nan_to_num(psnr, posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB)
    kernel = min(11, (min(p.shape[-2:]) - 1) // 2 * 2 + 1)  # odd, no larger than the image
    ssim = structural_similarity_index_measure(p, t, data_range=1.0, kernel_size=kernel, reduction="none")
    cells = min(COARSE_CELLS, *p.shape[-2:])
    coarse = (F.adaptive_avg_pool2d(p, cells) - F.adaptive_avg_pool2d(t, cells)).abs().flatten(1).mean(1)
    return {"l1": l1, "psnr": psnr, "ssim": ssim, "coarse_l1": coarse}


def nearer_than_input(pred_scores: dict[str, torch.Tensor], identity_scores: dict[str, torch.Tensor]) -> float:
    """The share of translations whose SSIM to the ground truth beats their own input's: the outputs that moved
    toward the target. Both arguments are `paired_scores` results for the same images (output vs target and
    input vs target); a tie (an output equal to its input) does not count as nearer."""
    return float((pred_scores["ssim"] > identity_scores["ssim"]).float().mean())


def retrieval_accuracy(pred: torch.Tensor, targets: torch.Tensor, sigma: float = 1.5) -> float:
    """Content kept, in a way texture cannot fake: the share of outputs whose most correlated image among all
    the ground truths is their own (pred[i]'s is targets[i]).

    Correlation is Pearson's over the pixels of both images blurred with a Gaussian of `sigma` px, so a small
    shift or a change of stroke width still matches its own item, while a well-styled output of another item
    (a different character, another emoji) does not. Both are [N, C, H, W] in [-1, 1], N >= 2.
    """
    if pred.shape != targets.shape or pred.dim() != 4 or len(pred) < 2:
        raise ValueError(f"pred and targets must both be [N>=2,C,H,W] of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(targets.shape)}")
    k = 2 * math.ceil(3 * sigma) + 1

    def unit_rows(x: torch.Tensor) -> torch.Tensor:
        v = gaussian_blur(x.detach().float(), [k, k], [sigma, sigma]).flatten(1)
        v = v - v.mean(1, keepdim=True)
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-8)  # a blank image correlates with nothing

    corr = unit_rows(pred) @ unit_rows(targets).T  # [N, N]
    others = corr.masked_fill(torch.eye(len(corr), dtype=torch.bool), float("-inf")).amax(1)
    return float((corr.diagonal() > others).float().mean())  # strictly: a tie (a blank output) is not kept


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and covariance [D,D] (unbiased) of features [N,D], in float64."""
    f = features.detach().double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"need features [N>=2, D], got {tuple(f.shape)}")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def frechet_distance_from_stats(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) between two Gaussians.

    tr((S1 S2)^1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    S1^1/2 S2 S1^1/2 (same spectrum as S1 S2), which stays real and stable for singular covariances.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    evals, evecs = torch.linalg.eigh(sigma1)
    root1 = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    middle = root1 @ sigma2 @ root1
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_covmean
    return max(float(value), 0.0)


def frechet_distance(features_real: torch.Tensor, features_fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N,D] and [M,D] (FID's formula).

    With fewer samples than dimensions (a test set of 200 in Inception's 2048-d space) the covariances
    are S = A^T A with A the centred features / sqrt(n - 1), and tr((S1 S2)^1/2) is the nuclear norm of
    A1 A2^T: an n x m problem instead of two eigendecompositions of D x D matrices.
    """
    mu1, sigma1 = gaussian_stats(features_real)
    mu2, sigma2 = gaussian_stats(features_fake)
    n, m, d = len(features_real), len(features_fake), features_real.shape[1]
    if min(n, m) >= d:
        return frechet_distance_from_stats(mu1, sigma1, mu2, sigma2)
    a1 = (features_real.double() - mu1) / math.sqrt(n - 1)
    a2 = (features_fake.double() - mu2) / math.sqrt(m - 1)
    tr_covmean = torch.linalg.matrix_norm(a1 @ a2.T, ord="nuc")
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_covmean
    return max(float(value), 0.0)


def kernel_inception_distance(
    features_real: torch.Tensor,
    features_fake: torch.Tensor,
    subsets: int = 50,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, averaged over random equal-size subsets.

    Returns (mean, std) over the subsets; the subset size is capped by the smaller set.
    """
    n = min(len(features_real), len(features_fake), subset_size)
    if n < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {len(features_real)} "
                         f"and {len(features_fake)}")
    gen = torch.Generator().manual_seed(seed)
    real, fake = features_real.detach().double(), features_fake.detach().double()
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=gen)[:n]]
        f = fake[torch.randperm(len(fake), generator=gen)[:n]]
        values.append(poly_mmd(r, f))
    values = torch.stack(values)
    return float(values.mean()), float(values.std(unbiased=False))


def mean_pairwise_distance(samples: torch.Tensor, kind: str = "l1") -> float:
    """Diversity of several outputs for one input: mean distance over all pairs of samples [N, ...].

    kind "l1": mean absolute difference of images (in [0,1] units, so 0 = identical, 1 = opposite);
    kind "l2": Euclidean distance of feature vectors.
    """
    if len(samples) < 2:
        raise ValueError("diversity needs at least 2 samples per input")
    s = samples.detach().double().flatten(1)
    if kind == "l1":
        s = (s + 1) / 2  # images: [-1,1] -> [0,1]
    dists = []
    for i, j in combinations(range(len(s)), 2):
        d = s[i] - s[j]
        dists.append(d.abs().mean() if kind == "l1" else d.norm())
    return float(torch.stack(dists).mean())


def codebook_usage(tokens: torch.Tensor, n_embed: int) -> dict[str, float | int]:
    """How many of the K codes the tokens use, and the perplexity exp(H) of their histogram.

    Perplexity is the effective number of codes: K when all are used equally often, 1 when one code is.
    """
    flat = tokens.detach().flatten().long().cpu()
    if flat.numel() == 0:
        raise ValueError("no tokens")
    if flat.min() < 0 or flat.max() >= n_embed:
        raise ValueError(f"token ids must lie in [0, {n_embed}), got [{int(flat.min())}, {int(flat.max())}]")
    counts = torch.bincount(flat, minlength=n_embed).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return {"codes_used": used, "n_embed": n_embed, "usage": used / n_embed,
            "perplexity": math.exp(float(entropy))}
