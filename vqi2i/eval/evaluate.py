"""Score a translator on a test set: translate testA -> B and testB -> A, then measure what can be measured.

- ground truth (file names that match across testA and testB, as in the glyph benchmark): L1, PSNR
  and SSIM of translations against it, beside the same scores for doing nothing (source vs target),
  and the share of translations nearer (SSIM) their ground truth than their own input
- style accuracy: the share of translations the domain classifier assigns to the target domain
- Fréchet distance and KID between translations and real target images, in the classifier's feature
  space (always) and in Inception's (when the user gives local weights)
- diversity: mean pairwise distance between outputs for one input with random styles
- codebook: codes used on the test set, perplexity, and (with ground truth) how often the same
  character gets the same token in both domains (content tokens are meant to be domain-invariant); on the
  synthetic scenes also how often a scene gets the same token in one season under another look (the
  control: what the looks alone take away)
- the style path: the spread of the encoded styles over the test images (0: the encoder gives every
  image one style; the random styles: 1); with ground truth, the guided score (the input's content in
  the style of its own ground truth) and the same with another ground truth's style (shuffled exemplar):
  their difference is how much the output follows its exemplar
- the codec ceiling: each domain's test images reconstructed from their own tokens and style
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from vqi2i.data.scenes import test_scenes_with_looks
from vqi2i.data.transforms import PairTransform, parse_size
from vqi2i.errors import UserError
from vqi2i.eval import classifier as clf
from vqi2i.eval import metrics
from vqi2i.eval.inception import inception_features, load_inception
from vqi2i.images import from_uint8, list_images, load_image
from vqi2i.models.style_encoder import dead_share, style_spread

DIRECTIONS = (("a", "b"), ("b", "a"))
CLASSIFIER_MAX_SIDE = 64


@dataclass
class EvalOptions:
    num_samples: int = 4            # random styles per input, for diversity and the sample sheet
    diversity_inputs: int = 32      # inputs per direction whose samples are compared
    max_images: int | None = None   # per test folder (None: all)
    batch_size: int = 32
    seed: int = 0
    sheet_rows: int = 4             # inputs per direction on the sample sheet
    kid_subsets: int = 50
    kid_subset_size: int = 1000
    inception_weights: str | None = None
    classifier_steps: int = clf.DEFAULT_STEPS
    progress: bool = True


@dataclass
class TestSet:
    paths: dict[str, list[Path]]
    images: dict[str, torch.Tensor]
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (index in a, index in b), same file stem


def load_test_set(root: str | Path, cfg, channels: int, max_images: int | None = None) -> TestSet:
    """testA and testB resized and centre-cropped as the training config's evaluation transform does."""
    root = Path(root)
    size, crop = parse_size(cfg.data.size, "size"), parse_size(cfg.data.crop, "crop")
    transform = PairTransform(size=size, crop=crop, flip=False, train=False)
    paths, images = {}, {}
    for d in ("a", "b"):
        paths[d] = list_images(root / f"test{d.upper()}")[:max_images]
        loaded = [transform([load_image(p, channels)], [p], None)[0] for p in paths[d]]
        shapes = {tuple(x.shape) for x in loaded}
        if len(shapes) > 1:
            raise UserError(f"images in {root / f'test{d.upper()}'} differ in size ({sorted(shapes)[:2]}); "
                            "set data.crop in the config to evaluate them at one size")
        images[d] = torch.stack(loaded)
    index_b = {p.stem: j for j, p in enumerate(paths["b"])}
    pairs = [(i, index_b[p.stem]) for i, p in enumerate(paths["a"]) if p.stem in index_b]
    return TestSet(paths, images, pairs)


def classifier_settings(
    root: str | Path, channels: int, steps: int = clf.DEFAULT_STEPS, seed: int = 0
) -> clf.ClassifierSettings:
    """The classifier for a data set: its channels, its images' side capped at 64 px. `vqi2i eval` and
    `vqi2i train-classifier` both call this, so the second's cache serves the first."""
    first = list_images(Path(root) / "trainA")[0]
    try:
        with Image.open(first) as im:
            side = min(im.size)
    except Exception as e:  # noqa: BLE001 - any unreadable image
        raise UserError(f"cannot read image {first}: {e}") from None
    return clf.ClassifierSettings(channels=channels, image_size=min(side, CLASSIFIER_MAX_SIDE), steps=steps,
                                  seed=seed)


def get_classifier(
    root: str | Path, settings: clf.ClassifierSettings, device, progress: bool, log: Callable[[str], None]
) -> tuple[clf.DomainClassifier, dict]:
    """The cached classifier beside the data, or a freshly trained one (cached when no cache file exists)."""
    model, why = clf.load_cached(root, settings)
    if model is not None:
        return model.to(device), {"source": "cache", "path": str(clf.cache_paths(root)[0])}
    log(f"training the domain classifier ({why}); `vqi2i train-classifier` caches it beside the data")
    model, scores = clf.fit_for_data(root, settings, device, progress)
    info = {"source": "trained", "train_accuracy": scores["train_accuracy"]}
    weights, meta = clf.cache_paths(root)
    if weights.exists() or meta.exists():
        log(f"kept the existing {weights.name} (stale); `vqi2i train-classifier --overwrite` replaces it")
    else:
        try:
            clf.save_cached(root, model, settings, scores)
            info["path"] = str(weights)
        except OSError as e:
            log(f"could not cache the classifier beside the data ({e}); it is used for this run only")
    return model.to(device), info


@torch.no_grad()
def _batched(fn, n: int, batch_size: int, desc: str, progress: bool) -> list:
    outs = []
    for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
        outs.append(fn(slice(start, min(n, start + batch_size))))
    return outs


def _mean(scores: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in scores.items()}


def _feature_distances(real: torch.Tensor, fake: torch.Tensor, source: torch.Tensor, opt: EvalOptions) -> dict:
    kid, kid_std = metrics.kernel_inception_distance(real, fake, opt.kid_subsets, opt.kid_subset_size, opt.seed)
    return {
        "fd": metrics.frechet_distance(real, fake),
        "kid": kid,
        "kid_std": kid_std,
        "fd_identity": metrics.frechet_distance(real, source),  # doing nothing: source images vs target
    }


def style_recovery(given: torch.Tensor, recovered: torch.Tensor) -> float:
    """The mean over style dimensions of the correlation between the styles images were rendered with and the
    styles encoded back from them: 1 when the style encoder reads every random style back, 0 when it reads
    nothing (the decoder ignores the style, or renders it as something real images never show)."""
    g, r = given.float() - given.float().mean(0), recovered.float() - recovered.float().mean(0)
    corr = (g * r).sum(0) / (g.norm(dim=0) * r.norm(dim=0)).clamp_min(1e-12)
    return float(corr.mean())


@torch.no_grad()
def _guided_scores(model, x: torch.Tensor, gt: torch.Tensor, src: str, dst: str, opt: EvalOptions, device) -> dict:
    """Content of x (src) rendered in dst with the style of its own ground truth (guided), and with the style
    of the next pair's ground truth (shuffled exemplar); follow = guided minus shuffled (SSIM and L1)."""
    def render(sl, shift: int):
        _, z_q = model.encode_content(x[sl].to(device))
        exemplars = gt.roll(-shift, 0)[sl].to(device)
        return model.decode(z_q, model.encode_style(exemplars, dst), dst).float().cpu()

    out = {}
    for name, shift in (("guided", 0), ("shuffled", 1)):
        fake = torch.cat(_batched(lambda sl, shift=shift: render(sl, shift), len(x), opt.batch_size,
                                  f"{name} {src}->{dst}", opt.progress)).clamp(-1, 1)
        out[name] = _mean(metrics.paired_scores(fake, gt))
    out["style_follow"] = {"ssim": out["guided"]["ssim"] - out["shuffled"]["ssim"],
                           "l1": out["shuffled"]["l1"] - out["guided"]["l1"]}
    return out


@torch.no_grad()
def evaluate(model, cfg, data_root: str | Path, opt: EvalOptions, device="cpu",
             log: Callable[[str], None] = print) -> tuple[dict, list]:
    """Run every measurement; returns (report dict, sample-sheet rows with their labels)."""
    t0 = time.time()
    data_root = Path(data_root)
    if opt.num_samples < 2:
        raise UserError(f"--num-samples must be at least 2 (diversity compares samples), got {opt.num_samples}")
    channels = model.in_channels
    test = load_test_set(data_root, cfg, channels, opt.max_images)
    skipped: list[str] = []
    if not test.pairs:
        skipped.append("ground-truth metrics (L1, PSNR, SSIM, token agreement): no file name in testA matches "
                       "one in testB, so there is no ground truth")
        log(f"skipping {skipped[-1]}")

    inception = None  # loaded before any long work, so a bad file fails fast
    if opt.inception_weights:
        inception = load_inception(opt.inception_weights, device)
    else:
        skipped.append("Inception FD/KID: no --inception-weights given (weights are never downloaded)")

    settings = classifier_settings(data_root, channels, opt.classifier_steps, opt.seed)
    judge, judge_info = get_classifier(data_root, settings, device, opt.progress, log)
    judge_info["test_accuracy"] = clf.domain_accuracy(judge, test.images["a"], test.images["b"])
    judge_info["settings"] = asdict(settings)

    feats = {d: clf.extract_features(judge, test.images[d]) for d in "ab"}
    inc_feats = {d: inception_features(inception, test.images[d]) for d in "ab"} if inception else {}
    gen = torch.Generator().manual_seed(opt.seed)
    directions, tokens, sheet_rows, sheet_labels = {}, {}, [], []
    recon = {}
    for src, dst in DIRECTIONS:
        x = test.images[src]
        n = len(x)
        styles = model.sample_style(n, gen, "cpu") if model.multimodal else None

        def step(sl, x=x, styles=styles, src=src, dst=dst):
            xb = x[sl].to(device)
            toks, z_q = model.encode_content(xb)
            s = styles[sl].to(device) if styles is not None else None
            own = model.encode_style(xb, src) if model.multimodal else None
            fake = model.decode(z_q, s, dst).float().clamp(-1, 1)
            again, _ = model.encode_content(fake)  # the translation encoded again
            return toks.cpu(), fake.cpu(), model.decode(z_q, own, src).float().cpu(), again.cpu()

        parts = _batched(step, n, opt.batch_size, f"translating {src}->{dst}", opt.progress)
        tokens[src] = torch.cat([p[0] for p in parts])
        fake = torch.cat([p[1] for p in parts])
        rec = torch.cat([p[2] for p in parts]).clamp(-1, 1)
        again = torch.cat([p[3] for p in parts])
        recon[src] = _mean(metrics.paired_scores(rec, x))
        if n >= 2:  # the codec's own bar for content kept: is a reconstruction still its own item?
            recon[src]["kept"] = metrics.retrieval_accuracy(rec, x)

        # diversity: several random styles for the first inputs (those with ground truth first)
        order = [i for i, _ in test.pairs] if src == "a" else [j for _, j in test.pairs]
        with_gt = set(order)
        order += [i for i in range(n) if i not in with_gt]
        chosen = torch.tensor(order[: min(opt.diversity_inputs, n)])
        _, z_q = model.encode_content(x[chosen].to(device))
        drawn = [model.sample_style(len(chosen), gen, device) if model.multimodal else None
                 for _ in range(opt.num_samples)]
        samples = torch.stack([model.decode(z_q, s, dst).float().cpu().clamp(-1, 1) for s in drawn],
                              dim=1)  # [M, N, C, H, W]
        sample_feats = clf.extract_features(judge, samples.flatten(0, 1)).view(len(chosen), opt.num_samples, -1)

        p_b = clf.classify(judge, fake)
        fake_feats = clf.extract_features(judge, fake)
        result = {
            "num_inputs": n,
            # the translation encoded again picks its source's token at this share of positions (1: all)
            "tokens_kept": float((again == tokens[src]).float().mean()),
            "style_accuracy": float((p_b >= 0.5).float().mean() if dst == "b" else (p_b < 0.5).float().mean()),
            "classifier_features": _feature_distances(feats[dst], fake_feats, feats[src], opt),
            "diversity": {
                "pixel_l1": sum(metrics.mean_pairwise_distance(s, "l1") for s in samples) / len(samples),
                "feature_l2": sum(metrics.mean_pairwise_distance(f, "l2") for f in sample_feats) / len(samples),
                "inputs": len(chosen), "samples": opt.num_samples,
            },
        }
        if model.multimodal:  # do random styles stay where the decoder renders them recoverably? (1: exactly)
            result["random_style_recovery"] = style_recovery(
                torch.cat(drawn).cpu(), model.encode_style(samples.transpose(0, 1).flatten(0, 1).to(device), dst).cpu())
        if inception is not None:
            result["inception"] = _feature_distances(inc_feats[dst], inception_features(inception, fake),
                                                     inc_feats[src], opt)
        gt_index = {}
        if test.pairs:
            src_idx = torch.tensor([i if src == "a" else j for i, j in test.pairs])
            dst_idx = torch.tensor([j if src == "a" else i for i, j in test.pairs])
            gt = test.images[dst][dst_idx]
            scores, identity = metrics.paired_scores(fake[src_idx], gt), metrics.paired_scores(x[src_idx], gt)
            result["ground_truth"] = {"pairs": len(test.pairs), **_mean(scores)}
            result["identity"] = _mean(identity)
            result["nearer_than_input"] = metrics.nearer_than_input(scores, identity)
            if len(test.pairs) >= 2:  # is the output still its own item? (the input's own share beside it)
                result["retrieval"] = {"output": metrics.retrieval_accuracy(fake[src_idx], gt),
                                       "identity": metrics.retrieval_accuracy(x[src_idx], gt)}
            if model.multimodal:
                result.update(_guided_scores(model, x[src_idx], gt, src, dst, opt, device))
            gt_index = dict(zip(src_idx.tolist(), dst_idx.tolist()))
        directions[f"{src}_to_{dst}"] = result

        for r in range(min(opt.sheet_rows, len(chosen))):
            i = int(chosen[r])
            row = [x[i], *samples[r]]
            if i in gt_index:
                row.append(test.images[dst][gt_index[i]])
            sheet_rows.append(row)
            sheet_labels.append(f"{src}->{dst}\n{test.paths[src][i].stem}")

    style = {}
    if model.multimodal:
        for d in "ab":
            styles = torch.cat(_batched(lambda sl, d=d: model.encode_style(test.images[d][sl].to(device), d).cpu(),
                                        len(test.images[d]), opt.batch_size, f"styles of {d}", opt.progress))
            n = len(test.images[d])
            dead = dead_share(model.style_encoders[d], (test.images[d][i:i + opt.batch_size].to(device)
                                                        for i in range(0, n, opt.batch_size)))
            style[d] = {"spread": style_spread(styles) if len(styles) >= 2 else None, "dead": dead}
    codebook = {"all": metrics.codebook_usage(torch.cat([tokens["a"].flatten(), tokens["b"].flatten()]),
                                              model.n_embed),
                "a": metrics.codebook_usage(tokens["a"], model.n_embed),
                "b": metrics.codebook_usage(tokens["b"], model.n_embed)}
    if test.pairs:
        ia, ib = (torch.tensor(idx) for idx in zip(*test.pairs))
        codebook["token_agreement"] = float((tokens["a"][ia] == tokens["b"][ib]).float().mean())
    relooked = test_scenes_with_looks(data_root, shift=1)  # synthetic scenes only: the same scene, another look
    if relooked is not None:
        across = {}
        for d in "ab":
            x = from_uint8(relooked[d][: len(tokens[d])])
            if x.shape != test.images[d].shape:  # resized or cropped for the model: no position-wise match
                continue
            toks = torch.cat(_batched(lambda sl, x=x: model.encode_content(x[sl].to(device))[0].cpu(), len(x),
                                      opt.batch_size, f"tokens of {d}, other looks", opt.progress))
            across[d] = float((toks == tokens[d]).float().mean())
        if across:
            codebook["token_agreement_across_looks"] = across

    ckpt = Path(getattr(model, "checkpoint_dir", "") or "")
    state_file = ckpt / "state.json"
    step = json.loads(state_file.read_text()).get("step") if state_file.is_file() else None
    report = {
        "checkpoint": str(ckpt) if str(ckpt) != "." else None,
        "step": step,
        "variant": model.variant,
        "data": str(data_root),
        "num_test": {"a": len(test.images["a"]), "b": len(test.images["b"])},
        "image_size": list(test.images["a"].shape[-2:]),
        "ground_truth_pairs": len(test.pairs),
        "seed": opt.seed,
        "directions": directions,
        "reconstruction": recon,
        "classifier": judge_info,
        "codebook": codebook,
        "style": style,
        "skipped": skipped,
        "wall_s": round(time.time() - t0, 2),
    }
    return report, (sheet_rows, sheet_labels)
