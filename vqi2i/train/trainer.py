"""Stage-1 trainer: the translator and its discriminators, with the loss terms of `vqi2i.losses`
(docs/architecture.md, "A training step (stage 1)").

One generator step per batch (both domains at once), then one discriminator step. Each decoder runs
once per step over a concatenated batch: [own content (reconstruction), other content with an
encoded style, other content with a sampled N(0, I) style].
"""

from __future__ import annotations

import copy
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

from vqi2i import losses
from vqi2i.data import build_dataset
from vqi2i.data.transforms import jitter_look
from vqi2i.errors import UserError
from vqi2i.images import save_grid
from vqi2i.losses import VGGPerceptual
from vqi2i.models.build import build_discriminators, build_model
from vqi2i.models.quantizer import codebook_stats
from vqi2i.models.style_encoder import dead_share, style_spread
from vqi2i.models.vqi2i import DOMAINS, VQI2I, Quantized
from vqi2i.train.distributed import (
    DistContext,
    all_reduce_sum_,
    broadcast_,
    broadcast_int,
    check_rng_agrees,
    distributed_session,
    gather_cat,
    global_batch_norm,
    mean_over_ranks,
    sync_rng,
    wrap,
)
from vqi2i.train.run import Run, begin
from vqi2i.train.runtime import batches_from, checkpoint_due, lr_factor, set_lr

OTHER = {"a": "b", "b": "a"}


@dataclass
class Look:
    """Look transfer (loss.look): each real image re-coloured, and the styles encoded from the copies."""

    copies: dict[str, torch.Tensor]  # per domain, the images with a random global change of look (jitter_look)
    styles: dict[str, torch.Tensor]  # per domain, the copies' encoded styles (means; running statistics untouched)


@dataclass
class Encoded:
    """Both domains' real images through the encoders, and the styles a generator step decodes with."""

    content: dict[str, Quantized]  # per domain, the images' codes, VQ loss, tokens and continuous features
    styles: dict[str, torch.Tensor]  # per domain, each image's own style (a draw from its posterior if variational)
    style_means: dict[str, torch.Tensor]  # per domain, the encoded means, detached (empty: unimodal)
    style_kl: torch.Tensor | None  # the posteriors' KL to N(0, I), summed over the domains (variational only)
    random_styles: dict[str, torch.Tensor]  # per domain, N(0, I) draws for the random-style translations into it
    look: Look | None  # look transfer's copies and styles (None: loss.look off or unimodal)


@dataclass
class Decoded:
    """One decoder pass per domain d, over [d's content with d's own styles (the reconstructions), the other
    domain's content with d's own styles and with random styles (the two translations into d), and with look
    transfer d's content with the copies' styles]."""

    rec: dict[str, torch.Tensor]
    trans_enc: dict[str, torch.Tensor]
    trans_rand: dict[str, torch.Tensor]
    rec_look: dict[str, torch.Tensor]  # empty without look transfer

    def fakes(self, d: str) -> torch.Tensor:
        """What domain d's discriminator must reject: [translations with encoded styles, with random ones,
        reconstructions]."""
        return torch.cat([self.trans_enc[d], self.trans_rand[d], self.rec[d]])


@dataclass
class StepOutput:
    loss: torch.Tensor
    terms: dict[str, float]
    fakes: dict[str, torch.Tensor]  # per domain, the generated images the discriminator should reject
    features: torch.Tensor  # continuous content features of this batch [N, D], for dead-code restarts
    tokens: torch.Tensor  # all token ids of this batch, for codebook statistics
    content: dict[str, torch.Tensor]  # per domain, the continuous content maps [B, D, h, w] (not detached)
    styles: dict[str, torch.Tensor]  # per domain, the encoded styles of the real images (detached; empty: unimodal)


def encode(model: VQI2I, x: dict[str, torch.Tensor], L: DictConfig, shard: tuple[int, int] | None) -> Encoded:
    """The real images' content and styles, the random styles, and look transfer's copies (see generator_step)."""
    n = x["a"].shape[0]
    content = {d: model.quantize(x[d]) for d in DOMAINS}
    styles, style_means, kl = {}, {}, None
    for d in DOMAINS:
        if model.multimodal:  # a variational encoder: decode (and later regress to) a draw from N(mu, sigma^2)
            mu, logvar = model.encode_style_posterior(x[d], d)
            style_means[d] = mu.detach()
            styles[d] = mu if logvar is None else mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            if logvar is not None:
                kl = (0.0 if kl is None else kl) + losses.style_kl(mu, logvar)
        else:
            styles[d] = model.encode_style(x[d], d)
    if shard is None:
        random_styles = {d: model.sample_style(n, device=x[d].device) for d in DOMAINS}
    else:
        rank, world = shard
        random_styles = {d: model.sample_style(n * world, device=x[d].device)[rank * n : (rank + 1) * n]
                         for d in DOMAINS}
    look = None
    if L.look > 0 and model.multimodal:
        copies = {d: jitter_look(x[d], float(L.look_strength)) for d in DOMAINS}
        look = Look(copies, {d: model.encode_style_posterior(copies[d], d, track=False)[0] for d in DOMAINS})
    return Encoded(content, styles, style_means, kl, random_styles, look)


def decode(model: VQI2I, enc: Encoded) -> Decoded:
    """One decoder pass per domain over a concatenated batch (see Decoded)."""
    out = Decoded({}, {}, {}, {})
    for d in DOMAINS:
        own, other = enc.content[d].z_q, enc.content[OTHER[d]].z_q
        z = [own, other, other] + ([own] if enc.look else [])
        s = [enc.styles[d], enc.styles[d], enc.random_styles[d]] + ([enc.look.styles[d]] if enc.look else [])
        out.rec[d], out.trans_enc[d], out.trans_rand[d], *rest = model.decode(torch.cat(z), torch.cat(s), d).split(
            own.shape[0])
        if enc.look:
            out.rec_look[d] = rest[0]
    return out


@dataclass
class Judged:
    """A multi-scale discriminator's view of generated images (`judge`)."""

    logits: list[torch.Tensor]  # the generated images' patch logits, per scale
    features: list[torch.Tensor]  # their hidden activations, every scale's in order
    real_features: list[torch.Tensor] | None  # the same of the real images judged beside them (None: none were)


def judge(disc, fake: torch.Tensor, real: torch.Tensor | None = None) -> Judged:
    """What `disc` makes of `fake`, and of `real` when given: then both go through one pass as one batch (batch
    statistics and spectral-norm power iteration included)."""
    if real is None:
        return Judged(*disc.forward_with_features(fake), None)
    n = fake.shape[0]
    logits, features = disc.forward_with_features(torch.cat([fake, real]))
    return Judged([out[:n] for out in logits], [f[:n] for f in features], [f[n:] for f in features])


def loss_weights(L: DictConfig) -> dict[str, float]:
    """The weight of every generator term: its `loss.*` setting (the reconstructions' adversarial term: loss.adv
    scaled by loss.adv_recon_ratio)."""
    return {
        "vq": L.vq, "style_kl": L.style_kl, "look": L.look,
        "recon": L.recon, "recon_ssim": L.recon_ssim, "perceptual": L.perceptual, "paired": L.paired,
        "lowpass": L.lowpass, "content": L.content, "content_tokens": L.content_tokens,
        "cycle": L.cycle, "style": L.style,
        "style_encoded": L.style_encoded, "mode_seek": L.mode_seek, "adv": L.adv,
        "adv_rec": L.adv * L.adv_recon_ratio, "feat_match": L.feat_match, "content_adv": L.content_adv,
    }  # fmt: skip


def generator_step(
    model: VQI2I,
    discs,
    x: dict[str, torch.Tensor],
    cfg: DictConfig,
    perceptual: VGGPerceptual | None,
    adversarial: bool,
    paired: bool,
    shard: tuple[int, int] | None = None,
) -> StepOutput:
    """The generator's loss on a batch of both domains: the encoders (`encode`), one decoder pass per domain
    (`decode`), each term of `vqi2i.losses` on their results, summed over the domains, and the sum of the terms
    weighted by `loss_weights`. An optional term is computed only when its weight is above 0.

    shard=(rank, world size) under DDP: the random styles are drawn for the whole global batch (the same draw on
    every rank) and this rank takes its rows, as one process with the global batch would."""
    L = cfg.loss
    enc = encode(model, x, L, shard)
    out = decode(model, enc)
    q, styles, random_styles = enc.content, enc.styles, enc.random_styles

    terms: dict[str, torch.Tensor] = {"vq": q["a"].vq_loss + q["b"].vq_loss}
    if enc.style_kl is not None:
        terms["style_kl"] = enc.style_kl
    if enc.look is not None:
        copies = enc.look.copies
        terms["look"] = sum(losses.look_transfer(out.rec_look[d], copies[d]) for d in DOMAINS)
    terms["recon"] = sum(losses.reconstruction(out.rec[d], x[d]) for d in DOMAINS)
    if L.recon_ssim > 0:
        terms["recon_ssim"] = sum(losses.ssim_loss(out.rec[d], x[d]) for d in DOMAINS)
    if perceptual is not None:
        terms["perceptual"] = sum(perceptual(out.rec[d], x[d]) for d in DOMAINS)
    if paired:  # the translation of a's content with b's own style must be b itself, and vice versa
        terms["paired"] = sum(losses.paired(out.trans_enc[d], x[d]) for d in DOMAINS)
    if L.lowpass > 0:
        terms["lowpass"] = sum(losses.lowpass(torch.cat([out.trans_enc[d], out.trans_rand[d]]), x[OTHER[d]],
                                              int(L.lowpass_size)) for d in DOMAINS)
    # a translation keeps the content it was made from (checked on the random-style translations, as MUNIT does;
    # the decoder is the same for encoded styles)
    recovered = {d: model.content_features(out.trans_rand[d]) for d in DOMAINS}
    terms["content"] = sum(losses.content_regression(recovered[d], q[OTHER[d]].z_q) for d in DOMAINS)
    if L.content_tokens > 0:
        codebook = model.quantizer.codebook()
        terms["content_tokens"] = sum(losses.content_tokens(recovered[d], codebook, q[OTHER[d]].tokens)
                                      for d in DOMAINS)
    if L.cycle > 0:  # translated back with the source's own style (the round trip's codes are not counted)
        back = {}
        for d in DOMAINS:
            z_q, _, _ = model.quantizer(recovered[d], count=False)
            back[OTHER[d]] = model.decode(z_q, styles[OTHER[d]], OTHER[d])
        terms["cycle"] = sum(losses.cycle(back[d], x[d]) for d in DOMAINS)
    if model.multimodal:  # the style encoder recovers the random style a translation was made with (MUNIT), and
        # with loss.style_encoded the encoded one
        terms["style"] = sum(losses.style_regression(model.encode_style(out.trans_rand[d], d), random_styles[d])
                             for d in DOMAINS)
        if L.style_encoded > 0:
            terms["style_encoded"] = sum(losses.style_regression(model.encode_style(out.trans_enc[d], d), styles[d])
                                         for d in DOMAINS)
        if L.mode_seek > 0:
            terms["mode_seek"] = sum(losses.mode_seeking(out.trans_enc[d], out.trans_rand[d], styles[d],
                                                         random_styles[d], L.mode_seek_target) for d in DOMAINS)
    if adversarial:
        terms["adv"] = sum(losses.g_loss(discs[d](torch.cat([out.trans_enc[d], out.trans_rand[d]])), L.gan_mode)
                           for d in DOMAINS)
        # the reconstructions' logits, and for feature matching the features of them and of their inputs
        judged = {d: judge(discs[d], out.rec[d], x[d] if L.feat_match > 0 else None) for d in DOMAINS}
        terms["adv_rec"] = sum(losses.g_loss(judged[d].logits, L.gan_mode) for d in DOMAINS)
        if L.feat_match > 0:
            terms["feat_match"] = sum(losses.feature_matching(judged[d].features, judged[d].real_features)
                                      for d in DOMAINS)
        if L.content_adv > 0:  # the content encoder hides which domain its features came from
            terms["content_adv"] = losses.content_g_loss(discs["content"](q["a"].z), discs["content"](q["b"].z))

    weights = loss_weights(L)
    loss = sum(weights[k] * v for k, v in terms.items())
    z = {d: q[d].z for d in DOMAINS}
    return StepOutput(loss, {k: v.item() for k, v in terms.items()}, fakes={d: out.fakes(d) for d in DOMAINS},
                      features=feature_rows(z), tokens=torch.cat([q[d].tokens.flatten() for d in DOMAINS]),
                      content=z, styles=enc.style_means)


COLLAPSED_SPREAD = 0.05  # style spread below this (random styles: 1) = the style encoder gives one style
SPREAD_KEYS = ("style_spread_a", "style_spread_b", "val_style_spread_a", "val_style_spread_b")


def style_collapsed(metrics: dict, step: int, max_steps: int) -> bool:
    """True when a logged line shows a style encoder giving (nearly) every image the same style, once past
    the first tenth of training (a fresh encoder starts near one style): the styles encoded by the training model
    in training (style_spread_d), or by the weights inference uses on held-out images (val_style_spread_d, on the
    lines with a sample sheet). The two can part: a moving average of a slowly collapsing encoder collapses first."""
    spreads = [metrics[k] for k in SPREAD_KEYS if k in metrics]
    return bool(spreads) and step >= max(1, max_steps // 10) and min(spreads) < COLLAPSED_SPREAD


class Tally:
    """What a log line of `vqi2i train` averages since the previous one: the discriminator's loss, each term and
    the total, the codes used, the spread of the styles encoded; and the dead codes restarted, the step rate."""

    def __init__(self, n_embed: int):
        self.n_embed = n_embed
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts = torch.zeros(self.n_embed, dtype=torch.long)
        self.styles: dict[str, list[torch.Tensor]] = {"a": [], "b": []}
        self.steps, self.restarted, self.t0 = 0, 0, time.perf_counter()

    def add(self, out: StepOutput, loss_d: float | None, restarted: int) -> None:
        if loss_d is not None:
            self.sums["disc"] += loss_d
        for k, v in out.terms.items():
            self.sums[k] += v
        self.sums["total"] += out.loss.item()
        self.counts += torch.bincount(out.tokens.cpu(), minlength=self.n_embed)
        for d, st in out.styles.items():
            self.styles[d].append(st.float().cpu())
        self.steps, self.restarted = self.steps + 1, self.restarted + restarted

    def line(self, ctx: DistContext, device: torch.device) -> dict[str, float]:
        """The figures of a log line; under DDP the global batch's (the ranks' means averaged, code counts summed,
        styles gathered)."""
        elapsed = time.perf_counter() - self.t0
        means = {k: v / self.steps for k, v in self.sums.items()}
        if ctx.enabled:
            means = mean_over_ranks(ctx, means, device)
            self.counts = all_reduce_sum_(ctx, self.counts.to(device)).cpu()
        return {**means, **codebook_stats(self.counts), **style_spreads(self.styles, ctx, device),
                "codes_restarted": self.restarted, "steps_per_s": self.steps / elapsed}


def style_spreads(seen: dict[str, list[torch.Tensor]], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """{style_spread_d: the spread of the styles encoded since the last log line}, over the global batch under
    DDP (every rank's styles gathered), for each domain with two styles or more."""
    spreads = {}
    for d, parts in seen.items():
        if not parts:
            continue
        styles = torch.cat(parts)
        if ctx.enabled:
            styles = gather_cat(ctx, styles.to(device)).cpu()
        if len(styles) >= 2:
            spreads[f"style_spread_{d}"] = style_spread(styles)
    return spreads


def feature_rows(content: dict[str, torch.Tensor]) -> torch.Tensor:
    """Content maps {domain: [B, D, h, w]} -> their detached feature vectors [2 * B * h * w, D] (a, then b)."""
    return torch.cat([content[d].detach().permute(0, 2, 3, 1).reshape(-1, content[d].shape[1]) for d in "ab"])


class GeneratorLoss(torch.nn.Module):
    """The generator step as a module: under DDP the whole step is one forward of the wrapped translator
    (the discriminators are passed in, not registered, so their parameters are not the generator's)."""

    def __init__(self, model: VQI2I):
        super().__init__()
        self.model = model

    def forward(self, discs, x, cfg, perceptual, adversarial: bool, paired: bool, shard=None) -> StepOutput:
        return generator_step(self.model, discs, x, cfg, perceptual, adversarial, paired, shard)


class DiscriminatorLoss(torch.nn.Module):
    """The discriminator step as a module (one DDP forward over every discriminator)."""

    def __init__(self, discs: torch.nn.ModuleDict):
        super().__init__()
        self.discs = discs

    def forward(self, x, fakes, cfg, content=None) -> torch.Tensor:
        return discriminator_step(self.discs, x, fakes, cfg, content)


@torch.no_grad()
def restart_dead_codes_everywhere(
    quantizer, content: dict[str, torch.Tensor], dead_below: float, ctx: DistContext, device: torch.device
) -> int:
    """Dead-code restart under DDP, decided once: the ranks' usage counts are summed, rank 0 restarts from
    the global batch's features (gathered in the order one process would hold them) with its RNG, and
    the new codebook and RNG state are broadcast. Returns the number of codes moved (on every rank)."""
    recent = feature_rows({d: gather_cat(ctx, content[d].detach()) for d in "ab"})
    all_reduce_sum_(ctx, quantizer.usage)
    moved = 0
    if ctx.is_main:
        moved = quantizer.restart_dead_codes(recent, dead_below)
    else:
        quantizer.usage.zero_()
    broadcast_(ctx, quantizer.embedding.weight.data)
    sync_rng(ctx, device)
    return broadcast_int(ctx, moved, device)


def discriminator_step(
    discs, x: dict[str, torch.Tensor], fakes: dict[str, torch.Tensor], cfg: DictConfig,
    content: dict[str, torch.Tensor] | None = None,
):  # fmt: skip
    """Real images against the generator's (detached) outputs; reconstructions weigh adv_recon_ratio.
    With the content adversarial loss on, the content discriminator also learns to tell the domains'
    (detached) content features apart."""
    n = x["a"].shape[0]
    total = x["a"].new_zeros(())
    for d in ("a", "b"):
        trans, rec = fakes[d][: 2 * n].detach(), fakes[d][2 * n :].detach()
        real = discs[d](x[d])
        total = total + losses.d_loss(real, discs[d](trans), cfg.loss.gan_mode)
        total = total + cfg.loss.adv_recon_ratio * losses.d_loss(real, discs[d](rec), cfg.loss.gan_mode)
    if cfg.loss.content_adv > 0 and content is not None:
        total = total + losses.content_d_loss(discs["content"](content["a"].detach()),
                                              discs["content"](content["b"].detach()))
    return total


class EMA:
    """An exponential moving average of a model's weights, for inference. The decay ramps up from 0 as
    (1 + step) / (10 + step), so early averages do not hold on to the random initialisation. Buffers are copied,
    except the whitening statistics of standardized style encoders: given the real batch, the average tracks those
    of its own encoders' outputs (the training model's statistics describe a style encoder that has moved on, and
    whitening the average's styles with them puts its encoded styles where its decoders were not trained)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        encoders = getattr(self.model, "style_encoders", None) or {}
        self.own_stats = {f"style_encoders.{d}.{k}" for d, enc in encoders.items() if enc.standardize
                          for k in ("running_mean", "running_cov", "num_tracked")}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int, batch: dict[str, torch.Tensor] | None = None) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        own = self.own_stats if batch is not None else set()
        for (name, ema_b), b in zip(self.model.named_buffers(), model.buffers()):
            if name not in own:
                ema_b.copy_(b)
        if own:
            for d, enc in self.model.style_encoders.items():
                enc.track(batch[d])


PREVIEW_ROWS = 4  # images per domain in a sample sheet (and its reconstruction L1); the style spread uses the batch


def _preview_batch(cfg: DictConfig, n: int = 16) -> dict[str, torch.Tensor]:
    """A fixed batch for image grids and validation: test images when there are any, else train."""
    try:
        ds = build_dataset(cfg.data, "test", train=False, seed=int(cfg.train.seed))
    except UserError:
        ds = build_dataset(cfg.data, "train", train=False, seed=int(cfg.train.seed))
    items = [ds[i] for i in range(min(n, len(ds)))]
    return {d: torch.stack([it[d] for it in items]) for d in ("a", "b")}


@torch.no_grad()
def write_preview(model: VQI2I, batch: dict[str, torch.Tensor], cfg: DictConfig, path: Path) -> dict[str, float]:
    """Image grid (inputs, reconstructions, translations with several random styles) of the batch's first
    PREVIEW_ROWS images + validation figures: their reconstruction L1 and codes used, and the spread of the styles
    of the whole batch (val_style_spread_d, multimodal) and the largest share of a style encoder layer's channels
    dead on all of it (val_style_dead_d: 1 is a collapsed encoder that, with ReLU, cannot recover)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(int(cfg.train.seed))
    rows, labels, l1, tokens, spreads = [], [], [], [], {}
    k = int(cfg.train.num_styles) if model.multimodal else 1
    for d in ("a", "b"):
        if model.multimodal and batch[d].shape[0] >= 2:
            spreads[f"val_style_spread_{d}"] = style_spread(model.encode_style(batch[d].to(device), d).cpu())
            spreads[f"val_style_dead_{d}"] = dead_share(model.style_encoders[d], [batch[d].to(device)])
        x = batch[d][:PREVIEW_ROWS].to(device)
        tok, z_q = model.encode_content(x)
        tokens.append(tok.flatten())
        rec = model.decode(z_q, model.encode_style(x, d), d)
        l1.append(F.l1_loss(rec, x).item())
        rows += [x, rec]
        labels += [f"{d.upper()}", f"{d.upper()} recon"]
        for i in range(k):
            style = model.sample_style(x.shape[0], g, device) if model.multimodal else None
            rows.append(model.decode(z_q, style, OTHER[d]))
            labels.append(f"{d.upper()}->{OTHER[d].upper()} s{i}")
    save_grid([r.cpu() for r in rows], path, overwrite=True, labels=labels)
    model.train(was_training)
    stats = codebook_stats(torch.bincount(torch.cat(tokens).cpu(), minlength=model.n_embed))
    return {"val_recon_l1": sum(l1) / len(l1), "val_codes_used": stats["codes_used"], **spreads}


def train(
    cfg: DictConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True, stop_at: int | None = None
) -> dict:
    """Train (or resume) a translator in `run_dir`; returns the last logged metrics.

    stop_at: save a checkpoint and stop at this step, as if interrupted there (for time-sliced jobs);
    `resume` later continues exactly as if the run had never stopped. Under torchrun (WORLD_SIZE > 1) the
    processes train one model with DDP, train.batch_size each; rank 0 writes the run folder."""
    with distributed_session(cfg.train.device) as (ctx, device):
        return _train(cfg, Path(run_dir), ctx, device, resume=resume, progress=progress, stop_at=stop_at)


def compile_networks(model: VQI2I, discs: torch.nn.ModuleDict, ctx: DistContext) -> None:
    """train.compile: torch.compile (in place, state_dict keys unchanged) the networks the steps run: the
    content and style encoders, the decoders, each discriminator. Under DDP a discriminator with batch
    norm stays eager (its global statistics are collectives the compiler would have to break around)."""
    nets = [model.content_encoder, model.quant_conv, *model.decoders.values()]
    if model.multimodal:
        nets += list(model.style_encoders.values())
    for name, disc in discs.items():
        has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())
        if ctx.enabled and has_bn:
            continue
        nets += list(disc.nets) if name != "content" else [disc]
    for net in nets:
        net.compile()


def _train(
    cfg: DictConfig, run_dir: Path, ctx: DistContext, device: torch.device, *, resume: bool, progress: bool,
    stop_at: int | None,
) -> dict:
    T = cfg.train
    use_tb = begin(cfg, ctx)
    model = build_model(cfg).to(device)
    discs = build_discriminators(cfg).to(device)
    if ctx.enabled:  # batch statistics of the global batch, as one process would compute them
        global_batch_norm(discs)
    perceptual = VGGPerceptual(cfg.loss.vgg_weights).to(device) if cfg.loss.perceptual > 0 else None
    channels_last = bool(T.channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        discs.to(memory_format=torch.channels_last)
    fused = {"fused": True} if bool(T.fused_adam) else {}
    opt_g = torch.optim.Adam(model.parameters(), lr=T.lr, betas=tuple(T.betas), weight_decay=T.weight_decay, **fused)
    opt_d = torch.optim.Adam(discs.parameters(), lr=T.disc_lr, betas=tuple(T.betas), weight_decay=T.weight_decay,
                             **fused)
    dataset = build_dataset(cfg.data, "train", train=True, seed=int(T.seed))
    paired = bool(getattr(dataset, "aligned", False))
    preview = _preview_batch(cfg) if ctx.is_main else None
    ema = EMA(model, float(T.ema)) if float(T.ema) > 0 and ctx.is_main else None
    batch_size, world = int(T.batch_size), ctx.world_size

    def sync() -> dict:  # before a distributed save: the checkpoint holds the global code counts (rank 0's)
        check_rng_agrees(ctx)
        all_reduce_sum_(ctx, model.quantizer.usage)
        if not ctx.is_main:
            model.quantizer.usage.zero_()
        return {}

    run = Run(cfg, run_dir, ctx, modules={"model": model, "disc": discs, **({"model_ema": ema.model} if ema else {})},
              optimizers={"opt_g": opt_g, "opt_d": opt_d}, per_epoch=max(1, len(dataset) // (batch_size * world)),
              tensorboard=use_tb, sync=sync)
    step = run.resume(device).step if resume else 0
    run.open_logs(step, resume)

    if bool(T.compile):
        compile_networks(model, discs, ctx)
    gen = wrap(GeneratorLoss(model), ctx, device)
    disc_loss = wrap(DiscriminatorLoss(discs), ctx, device)
    if resume and not ctx.is_main:  # the checkpoint holds the usage counts summed over the ranks: rank 0 keeps them
        model.quantizer.usage.zero_()
    shard = (ctx.rank, world) if ctx.enabled else None
    use_bf16 = bool(T.bf16) and device.type == "cuda"
    tally, last, collapse_warned = Tally(model.n_embed), {}, False
    model.train()
    discs.train()
    pin = bool(T.pin_memory) and device.type == "cuda"
    batches = batches_from(dataset, batch_size, int(T.seed), step, int(cfg.data.num_workers),
                           rank=ctx.rank, world_size=world, pin_memory=pin)
    end = int(T.max_steps) if stop_at is None else min(int(stop_at), int(T.max_steps))
    with run.loop(step, progress, lambda: step) as bar:
        while step < end:
            batch = next(batches)
            x = {d: batch[d].to(device, non_blocking=pin) for d in ("a", "b")}
            if channels_last:
                x = {d: v.contiguous(memory_format=torch.channels_last) for d, v in x.items()}
            factor = lr_factor(step, int(T.max_steps), T.lr_schedule, int(T.warmup_steps), float(T.min_lr_ratio))
            set_lr(opt_g, T.lr * factor)
            set_lr(opt_d, T.disc_lr * factor)
            adversarial = step >= int(T.disc_start) and cfg.loss.adv > 0

            discs.requires_grad_(False)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = gen(discs, x, cfg, perceptual, adversarial, paired, shard)
            opt_g.zero_grad(set_to_none=True)
            out.loss.backward()
            if T.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), T.grad_clip)
            opt_g.step()
            if ema is not None:
                ema.update(model, step, x)
            discs.requires_grad_(True)

            if adversarial:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss_d = disc_loss(x, out.fakes, cfg, out.content)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                if T.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(discs.parameters(), T.grad_clip)
                opt_d.step()

            step += 1
            restarted, cb = 0, cfg.model.codebook
            if cb.restart_dead and step % int(cb.restart_every) == 0:
                if ctx.enabled:
                    restarted = restart_dead_codes_everywhere(model.quantizer, out.content, float(cb.dead_below),
                                                              ctx, device)
                else:
                    restarted = model.quantizer.restart_dead_codes(out.features, float(cb.dead_below))
            tally.add(out, loss_d.item() if adversarial else None, restarted)
            bar.update(1)

            if step % int(T.log_every) == 0 or step == int(T.max_steps):
                last = {"step": step, "lr": T.lr * factor, **tally.line(ctx, device),
                        **({"global_batch": run.global_batch, "world_size": world} if ctx.enabled else {})}
                if ctx.is_main:
                    if step % int(T.image_every) == 0 or step == int(T.max_steps):
                        shown = ema.model if ema is not None else model  # what inference will use
                        last.update(run.sample_sheet(step, lambda path, shown=shown: write_preview(shown, preview,
                                                                                                    cfg, path)))
                    if not collapse_warned and style_collapsed(last, step, int(T.max_steps)):
                        collapse_warned = True
                        low = min(SPREAD_KEYS, key=lambda k: last.get(k, float("inf")))
                        tqdm.write(f"warning: the style encoders have collapsed at step {step} ({low} "
                                   f"{last[low]:.3g}, random styles: 1): "
                                   "every image gets the same style, so exemplars and random styles change little",
                                   file=sys.stderr)
                    run.write(last, step)
                    run.tb.code_histogram("codebook/usage", tally.counts, step)
                    bar.set_postfix(
                        total=f"{last['total']:.3f}", recon=f"{last['recon']:.3f}",
                        codes=last["codes_used"], ppl=f"{last['perplexity']:.1f}",
                    )  # fmt: skip
                tally.reset()
            if checkpoint_due(step, T.ckpt_every, end):
                run.save(step)
    return last
