"""Evaluation metrics on tensors and the domain classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch

from vqi2i.eval import classifier as clf
from vqi2i.eval import metrics
from vqi2i.images import save_image


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Blurry random images in [-1,1]: structure for SSIM to see."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 4, size // 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def test_identical_images_score_perfectly():
    x = smooth_images(4)
    s = metrics.paired_scores(x, x.clone())
    assert torch.all(s["l1"] == 0)
    assert torch.all(s["psnr"] == metrics.PSNR_CAP_DB)
    assert torch.allclose(s["ssim"], torch.ones(4))
    assert torch.all(s["coarse_l1"] == 0)


def test_coarse_l1_sees_colour_and_layout_not_fine_noise():
    x = smooth_images(4, size=32).expand(-1, 3, -1, -1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2 - 1).float() * 0.3
    tinted = (x + torch.tensor([0.3, 0.0, -0.3])[:, None, None]).clamp(-1, 1)  # a colour shift
    shifted = x.roll(16, dims=-1)  # a layout change
    for fine in ((x + 0.3 * noise).clamp(-1, 1), (x + checker).clamp(-1, 1)):
        s = metrics.paired_scores(fine, x)
        assert float(s["coarse_l1"].mean()) < 0.25 * float(s["l1"].mean())  # pixel error, little coarse error
    for coarse in (tinted, shifted):
        s = metrics.paired_scores(coarse, x)
        assert float(s["coarse_l1"].mean()) > 0.5 * float(s["l1"].mean())
    flat = metrics.paired_scores(torch.zeros(1, 1, 16, 16), torch.full((1, 1, 16, 16), 0.5))
    assert float(flat["coarse_l1"][0]) == pytest.approx(0.25)  # on the [0, 1] scale, as l1


def test_known_degradations_are_ordered():
    x = smooth_images(6)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    scores = [metrics.paired_scores((x + sigma * noise).clamp(-1, 1), x) for sigma in (0.02, 0.1, 0.4)]
    l1, psnr, ssim = ([float(s[k].mean()) for s in scores] for k in ("l1", "psnr", "ssim"))
    assert l1[0] < l1[1] < l1[2]
    assert psnr[0] > psnr[1] > psnr[2]
    assert ssim[0] > ssim[1] > ssim[2]
    # PSNR on [0,1]: a uniform error of 0.1 (0.2 in [-1,1] units) is exactly 20 dB
    s = metrics.paired_scores(torch.full((1, 1, 16, 16), 0.2), torch.zeros(1, 1, 16, 16))
    assert float(s["psnr"][0]) == pytest.approx(20.0, abs=1e-4)
    assert float(s["l1"][0]) == pytest.approx(0.1, abs=1e-6)


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n,d", [(200, 8), (60, 16), (30, 40)])  # the last: fewer samples than dimensions
def test_frechet_distance_matches_scipy(n, d):
    rng = np.random.default_rng(n)
    mix1, mix2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ mix1 + 0.5
    y = rng.normal(size=(n + 13, d)) @ mix2 - 0.3
    ours = metrics.frechet_distance(torch.from_numpy(x), torch.from_numpy(y))
    assert ours == pytest.approx(scipy_frechet(x, y), rel=1e-6)
    assert metrics.frechet_distance(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0.0, abs=1e-6)
    # float32 features give the same answer (the math runs in float64)
    as_float = metrics.frechet_distance(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert as_float == pytest.approx(ours, rel=1e-4)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 16, generator=g)
    same = torch.randn(300, 16, generator=g)
    shifted = torch.randn(300, 16, generator=g) + 0.5
    far = torch.randn(300, 16, generator=g) + 1.5
    k_same, _ = metrics.kernel_inception_distance(real, same, subsets=20, subset_size=100)
    k_shift, std = metrics.kernel_inception_distance(real, shifted, subsets=20, subset_size=100)
    k_far, _ = metrics.kernel_inception_distance(real, far, subsets=20, subset_size=100)
    assert abs(k_same) < k_shift < k_far
    assert std > 0
    kid = metrics.kernel_inception_distance
    assert kid(real, shifted, subsets=5, seed=3) == kid(real, shifted, subsets=5, seed=3)


def test_diversity():
    same = torch.zeros(4, 1, 8, 8).expand(4, 1, 8, 8)
    assert metrics.mean_pairwise_distance(same, "l1") == 0.0
    opposite = torch.stack([-torch.ones(1, 8, 8), torch.ones(1, 8, 8)])
    assert metrics.mean_pairwise_distance(opposite, "l1") == pytest.approx(1.0)
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert metrics.mean_pairwise_distance(feats, "l2") == pytest.approx((5 + 0 + 5) / 3)


def test_codebook_usage_and_perplexity():
    uniform4 = torch.arange(4).repeat(25)
    u = metrics.codebook_usage(uniform4, n_embed=8)
    assert u["codes_used"] == 4 and u["usage"] == 0.5 and u["perplexity"] == pytest.approx(4.0)
    one = metrics.codebook_usage(torch.full((3, 4, 4), 5), n_embed=8)
    assert one["codes_used"] == 1 and one["perplexity"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.codebook_usage(torch.tensor([9]), n_embed=8)


def stripes(n: int, vertical: bool, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Two toy domains: horizontal or vertical stripes with random period, phase and noise."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size).float()
    out = []
    for _ in range(n):
        period = 3 + 4 * torch.rand(1, generator=g)
        phase = 6.28 * torch.rand(1, generator=g)
        wave = torch.sin(coords * 6.28 / period + phase)
        img = wave[None, :].expand(size, size) if vertical else wave[:, None].expand(size, size)
        out.append((img + 0.2 * torch.randn(size, size, generator=g)).clamp(-1, 1)[None])
    return torch.stack(out)


SETTINGS = clf.ClassifierSettings(channels=1, image_size=16, width=8, feature_dim=16, steps=60, batch_size=32)


def test_classifier_learns_two_domains_and_repeats_by_seed():
    a, b = stripes(64, False), stripes(64, True, seed=1)
    model = clf.train_classifier(a, b, SETTINGS, progress=False)
    test_a, test_b = stripes(32, False, seed=2), stripes(32, True, seed=3)
    assert clf.domain_accuracy(model, test_a, test_b) > 0.9
    assert clf.extract_features(model, test_a).shape == (32, 16)
    again = clf.train_classifier(a, b, SETTINGS, progress=False)
    assert torch.equal(clf.classify(model, test_b), clf.classify(again, test_b))


def write_domains(root, n=24):
    domains = (("trainA", False, 0), ("trainB", True, 1), ("testA", False, 2), ("testB", True, 3))
    for sub, vertical, seed in domains:
        (root / sub).mkdir(parents=True)
        for i, img in enumerate(stripes(n if sub.startswith("train") else 8, vertical, seed=seed)):
            save_image(img, root / sub / f"{i:03d}.png")


def test_classifier_cache_beside_the_data(tmp_path):
    write_domains(tmp_path)
    assert clf.load_cached(tmp_path, SETTINGS)[0] is None
    model, scores = clf.fit_for_data(tmp_path, SETTINGS, progress=False)
    assert scores["test_accuracy"] > 0.9 and scores["num_train"] == [24, 24]
    clf.save_cached(tmp_path, model, SETTINGS, scores)
    meta = json.loads(clf.cache_paths(tmp_path)[1].read_text())
    assert meta["settings"]["steps"] == 60 and meta["test_accuracy"] == scores["test_accuracy"]
    cached, why = clf.load_cached(tmp_path, SETTINGS)
    x = stripes(4, True, seed=9)
    assert why == "" and torch.equal(clf.classify(cached, x), clf.classify(model, x))
    # other settings or changed training data make the cache stale; it is never silently replaced
    other = clf.ClassifierSettings(**{**SETTINGS.__dict__, "steps": 61})
    assert "settings" in clf.load_cached(tmp_path, other)[1]
    save_image(stripes(1, False, seed=7)[0], tmp_path / "trainA" / "zzz.png")
    assert "changed" in clf.load_cached(tmp_path, SETTINGS)[1]
    with pytest.raises(Exception, match="--overwrite"):
        clf.save_cached(tmp_path, model, SETTINGS, scores)


def discs(n: int, domain: str, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Two toy emoji styles on white: A soft-edged light-cyan discs, B flat blue discs with a dark outline.
    B's sharp edges are high-frequency detail that A lacks, a cue noise imitates."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    base = torch.tensor([-0.6, 0.6, 0.8] if domain == "a" else [-0.5, 0.05, 0.5])
    out = []
    for _ in range(n):
        cy, cx = (size / 2 + (torch.rand(2, generator=g) * 2 - 1) * size / 6).tolist()
        radius = float(size / 4 + torch.rand(1, generator=g) * size / 6)
        dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
        colour = (base + 0.1 * (torch.rand(3, generator=g) * 2 - 1)).view(3, 1, 1)
        if domain == "a":
            alpha = ((radius - dist) / 3 + 0.5).clamp(0, 1)  # soft edge, no outline
            img = alpha * colour + (1 - alpha)
        else:
            inside = (dist <= radius).float()
            ring = ((dist > radius - 1.5) & (dist <= radius)).float()
            img = inside * colour + (1 - inside)
            img = ring * -0.8 + (1 - ring) * img
        out.append(img.clamp(-1, 1))
    return torch.stack(out)


def test_classifier_is_not_fooled_by_noise():
    """Style accuracy must measure the style, not texture: colour noise on images of A must not make the
    judge call them B (the first classifier called noisy emoji translations Twemoji), nor noise on B A."""
    settings = clf.ClassifierSettings(channels=3, image_size=24, width=8, feature_dim=16, steps=80, batch_size=32)
    model = clf.train_classifier(discs(48, "a"), discs(48, "b", seed=1), settings, progress=False)
    test_a, test_b = discs(32, "a", seed=2), discs(32, "b", seed=3)
    assert clf.domain_accuracy(model, test_a, test_b) > 0.9
    g = torch.Generator().manual_seed(4)
    noisy_a = (test_a + 0.3 * torch.randn(test_a.shape, generator=g)).clamp(-1, 1)
    noisy_b = (test_b + 0.3 * torch.randn(test_b.shape, generator=g)).clamp(-1, 1)
    assert (clf.classify(model, noisy_a) < 0.5).float().mean() >= 0.9
    assert (clf.classify(model, noisy_b) >= 0.5).float().mean() >= 0.9


def test_histogram_counts_only_non_white_pixels():
    hist = clf.ColorHistogram(channels=3, bins=4)
    x = torch.ones(2, 3, 8, 8)  # white
    x[0, :, :4] = torch.tensor([-1.0, 1 / 3, -1 / 3]).view(3, 1, 1)  # top half of the first image coloured
    h = hist(x)
    assert h.shape == (2, 3 * 4 + 1)
    first = (h[0, :12].view(3, 4) ** 2) / 4  # back to normalised histograms
    assert torch.allclose(first, torch.eye(4)[[0, 2, 1]], atol=1e-5) and abs(h[0, 12] - 0.5) < 1e-6
    assert torch.all(h[1] == 0)  # all white: nothing counted


def test_classifier_step_defaults_agree():
    from vqi2i.eval import command
    from vqi2i.eval.evaluate import EvalOptions

    assert command.DEFAULT_CLASSIFIER_STEPS == clf.DEFAULT_STEPS == EvalOptions().classifier_steps


def test_nearer_than_input_counts_outputs_that_moved_toward_the_target():
    torch.manual_seed(0)
    source, target = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    identity = metrics.paired_scores(source, target)
    assert metrics.nearer_than_input(metrics.paired_scores(target, target), identity) == 1.0
    assert metrics.nearer_than_input(metrics.paired_scores(source, target), identity) == 0.0  # a tie is not nearer
    half = torch.cat([target[:2], source[2:]])  # two outputs hit the target, two stay put
    assert metrics.nearer_than_input(metrics.paired_scores(half, target), identity) == 0.5


def test_retrieval_accuracy_tells_its_own_item_from_a_well_styled_other_one():
    torch.manual_seed(0)
    targets = torch.rand(6, 3, 32, 32) * 2 - 1
    assert metrics.retrieval_accuracy(targets, targets) == 1.0
    shifted = torch.roll(targets, shifts=1, dims=-1) * 0.5  # moved a pixel, contrast halved: still its own
    assert metrics.retrieval_accuracy(shifted, targets) == 1.0
    swapped = targets[[1, 0, 2, 3, 4, 5]]  # two outputs are real images, but of each other's item
    assert metrics.retrieval_accuracy(swapped, targets) == pytest.approx(4 / 6)
    blank = torch.ones(6, 3, 32, 32)  # a blank output correlates with nothing: never counted as kept
    blank[1] = targets[1]
    assert metrics.retrieval_accuracy(blank, targets) == pytest.approx(1 / 6)
    with pytest.raises(ValueError):
        metrics.retrieval_accuracy(targets[:1], targets[:1])
