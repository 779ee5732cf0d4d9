"""The training recipe's terms: discriminator feature matching, the content-domain adversarial pair,
spectral-norm discriminators and the moving-average translator. Shapes, gradients, and small runs
showing each changes what it should."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from vqi2i.checkpoint import EMA_FILE, MODEL_FILE, checkpoint_id, inference_weights, load_model, resolve_checkpoint
from vqi2i.losses import content_d_loss, content_g_loss, feature_matching
from vqi2i.models.build import build_discriminators, build_model
from vqi2i.models.discriminator import ContentDiscriminator, MultiScaleDiscriminator, PatchDiscriminator
from vqi2i.train.runtime import read_metrics
from vqi2i.train.trainer import EMA, train


@pytest.mark.parametrize("norm", ["spectral", "batch"])
def test_patch_discriminator_shapes_and_features(norm):
    net = PatchDiscriminator(3, ndf=8, n_layers=3, norm=norm)
    logits, feats = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 1, 2, 2)  # three stride-2 layers... two of them, then two stride-1 4x4 convs
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    assert any("parametrizations" in k for k in net.state_dict()) == (norm == "spectral")
    ms = MultiScaleDiscriminator(3, ndf=8, n_layers=2, num_scales=2, norm=norm)
    logits, feats = ms.forward_with_features(torch.randn(2, 3, 32, 32))
    assert len(logits) == 2 and len(feats) == 2 * 3 and logits[1].shape[-1] < logits[0].shape[-1]
    with pytest.raises(ValueError, match="disc.norm"):
        PatchDiscriminator(3, norm="instance")


def test_spectral_norm_bounds_the_discriminator():
    torch.manual_seed(0)
    net = PatchDiscriminator(1, ndf=8, n_layers=2, norm="spectral").train()
    for _ in range(10):  # power iterations converge during training-mode calls
        net(torch.randn(4, 1, 16, 16))
    net.eval()
    x = torch.randn(4, 1, 16, 16)
    d = torch.randn_like(x) * 1e-2
    ratio = (net(x + d)[0] - net(x)[0]).norm() / d.norm()
    assert ratio < 5  # each conv has operator norm ~1 (a 4x4 kernel can add a few); unnormalised weights give far more


def test_feature_matching_is_zero_for_equal_features_and_only_moves_the_fake():
    real = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)]
    assert feature_matching([r.detach().clone() for r in real], real) == 0
    fake = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)]
    loss = feature_matching(fake, real)
    assert loss.shape == () and loss > 0
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in fake)
    assert all(r.grad is None for r in real)  # the real features are targets, not moved
    with pytest.raises(ValueError):
        feature_matching(fake[:1], real)


def test_feature_matching_pulls_an_image_toward_the_real_one():
    """Gradient steps on the feature-matching loss alone bring an image's discriminator features, and the
    image itself, nearer a real image's."""
    torch.manual_seed(0)
    disc = MultiScaleDiscriminator(1, ndf=8, n_layers=2, num_scales=2, norm="spectral").eval()
    real = torch.rand(1, 1, 32, 32) * 2 - 1
    fake = torch.zeros(1, 1, 32, 32, requires_grad=True)
    opt = torch.optim.Adam([fake], lr=0.05)
    first = None
    for _ in range(60):
        loss = feature_matching(disc.forward_with_features(fake)[1], disc.forward_with_features(real)[1])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert (fake.detach() - real).abs().mean() < (torch.zeros_like(real) - real).abs().mean()


def test_content_adversarial_losses():
    a, b = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert content_d_loss(a, b) == 0 and content_d_loss(b, a) == 2  # the discriminator wants A -> 1, B -> 0
    half = torch.full((2, 1, 4, 4), 0.5, requires_grad=True)
    assert content_g_loss(half, half) == 0  # the encoder wants undecidable features, not swapped labels
    assert content_g_loss(a, b) == pytest.approx(0.5)
    d = ContentDiscriminator(embed_dim=16, ch=8)
    assert d(torch.randn(3, 16, 5, 7)).shape == (3, 1, 5, 7)


def test_content_adversarial_pulls_the_domains_content_together(make_tiny_cfg, scenes_dir):
    """A few alternating steps of the content adversarial pair alone: the encoder's features for summer and
    winter scenes (different palettes, so different features at first) move closer together, while an
    encoder trained on nothing stays where it was."""
    from vqi2i.data import build_dataset

    cfg = make_tiny_cfg("loss.content_adv=1")
    ds = build_dataset(cfg.data, "train", train=False, seed=0)
    x = {d: torch.stack([ds[i][d] for i in range(len(ds))]) for d in "ab"}

    def gap(model):
        with torch.no_grad():
            z = {d: model.content_features(x[d]) for d in "ab"}
        return (z["a"].mean((0, 2, 3)) - z["b"].mean((0, 2, 3))).norm().item()

    torch.manual_seed(0)
    model = build_model(cfg)
    disc = build_discriminators(cfg)["content"]
    before = gap(model)
    opt_g = torch.optim.Adam(model.content_encoder.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    for _ in range(25):
        z = {d: model.content_features(x[d]) for d in "ab"}
        opt_d.zero_grad()
        content_d_loss(disc(z["a"].detach()), disc(z["b"].detach())).backward()
        opt_d.step()
        opt_g.zero_grad()
        content_g_loss(disc(z["a"]), disc(z["b"])).backward()
        opt_g.step()
    assert gap(model) < 0.5 * before


def test_ema_follows_the_model_with_a_ramped_decay():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(1.0)
    start = ema.model.weight.clone()
    ema.update(model, step=0)  # decay min(0.9, 1/10) = 0.1: mostly the new weights
    assert torch.allclose(ema.model.weight, 0.1 * start + 0.9)
    for step in range(1, 200):
        ema.update(model, step)
    assert torch.allclose(ema.model.weight, torch.ones_like(model.weight), atol=1e-6)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ema_whitens_its_styles_with_statistics_of_its_own_encoders(make_tiny_cfg):
    """Given the real batch, the moving average tracks whitening statistics of its own style encoders' outputs, not
    the training model's (whose encoder has moved on: whitening scales tiny raw spreads up a hundredfold, so a small
    offset of the mean puts the average's styles far from where its decoders were trained). Other buffers are
    copied, and without a batch every buffer is."""
    cfg = make_tiny_cfg("model.style_norm=true")
    x = _train_batch(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        for enc in model.style_encoders.values():
            enc.head.bias.add_(1.0)  # the training encoder has moved on
            enc.posterior(x["a"])  # ... and tracked its own statistics
    ema.update(model, 100, x)  # decay 0.9: the average moves a tenth of the way
    with torch.no_grad():
        for d in "ab":
            own = ema.model.style_encoders[d]
            raw = own.head(own.features(x[d]).mean(dim=(2, 3)))  # the average's styles, before whitening
            assert torch.allclose(own.running_mean, raw.mean(0), atol=1e-6)  # first batch: a plain average
            assert torch.allclose(own.running_cov, torch.cov(raw.T), atol=1e-6)
            assert (model.style_encoders[d].running_mean - own.running_mean).abs().min() > 0.5
    assert torch.equal(ema.model.quantizer.usage, model.quantizer.usage)  # other buffers: copied
    plain = EMA(model, decay=0.9)
    plain.update(model, 1)  # no batch: every buffer copied
    assert torch.equal(plain.model.style_encoders["a"].running_mean, model.style_encoders["a"].running_mean)


def test_recipe_run_trains_saves_and_resumes_exactly(tmp_path, make_tiny_cfg):
    """Every recipe term on: the losses are logged and finite; the checkpoint holds the average, which
    inference (and the codec id) uses; a run stopped and resumed ends in the same bytes."""
    cfg = make_tiny_cfg("train.max_steps=4", "train.batch_size=2", "train.log_every=1", "train.image_every=2",
                        "train.ckpt_every=2", "disc.norm=spectral", "loss.feat_match=1", "loss.content_adv=1",
                        "train.ema=0.9")
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg, full, progress=False)
    last = read_metrics(full)[-1]
    for key in ("feat_match", "content_adv", "adv_rec"):
        assert key in last and 0 <= last[key] < 100
    ckpt = resolve_checkpoint(full)
    assert inference_weights(ckpt) == ckpt / EMA_FILE
    ema_sd, raw_sd = load_file(str(ckpt / EMA_FILE)), load_file(str(ckpt / MODEL_FILE))
    assert ema_sd.keys() == raw_sd.keys() and any(not torch.equal(ema_sd[k], raw_sd[k]) for k in ema_sd)
    model, _ = load_model(full)
    assert torch.equal(model.quantizer.embedding.weight, ema_sd["quantizer.embedding.weight"])
    assert len(checkpoint_id(full)) == 16
    disc_keys = load_file(str(ckpt / "disc.safetensors")).keys()
    assert any(k.startswith("content.") for k in disc_keys) and any("parametrizations" in k for k in disc_keys)

    train(cfg, part, progress=False, stop_at=2)
    train(cfg, part, resume=True, progress=False)
    final = resolve_checkpoint(part)
    for name in (MODEL_FILE, EMA_FILE, "disc.safetensors"):
        assert (final / name).read_bytes() == (ckpt / name).read_bytes(), name


def _train_batch(cfg) -> dict[str, torch.Tensor]:
    """The first four training images of each domain, unaugmented."""
    from vqi2i.data import build_dataset

    ds = build_dataset(cfg.data, "train", train=False, seed=0)
    return {d: torch.stack([ds[i][d] for i in range(4)]) for d in "ab"}


def _generator_steps(model, cfg, x, check, steps: int = 30, clip: float | None = None, discs=None):
    """`steps` generator-only steps on one batch, the same random styles at every step; `check(out)` sees each
    step's output; with `discs` (kept fixed) the adversarial terms are on. Returns the model in eval mode."""
    from vqi2i.train.trainer import generator_step

    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    for _ in range(steps):
        torch.manual_seed(1)  # the same random styles in every run
        out = generator_step(model, discs, x, cfg, None, adversarial=discs is not None, paired=False)
        check(out)
        opt.zero_grad()
        out.loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return model.eval()


def _trained_with(make_tiny_cfg, term: str, weight: float, *overrides: str, check_term=None, **steps):
    """The tiny model after `_generator_steps` on the first training batch, from the same start (seed 0), with
    loss.TERM=weight and `overrides`; every step checks that the term is logged exactly when it is on, and
    `check_term(value)` sees its value. Returns (model in eval mode, the batch)."""
    cfg = make_tiny_cfg(f"loss.{term}={weight}", *overrides)
    x = _train_batch(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)

    def check(out):
        assert (term in out.terms) == (weight > 0)
        if weight > 0 and check_term is not None:
            check_term(out.terms[term])

    return _generator_steps(model, cfg, x, check, **steps), x


def _cycle_error(model, x) -> float:
    """L1 of a -> b -> a and b -> a -> b with each source's own style (what loss.cycle measures)."""
    with torch.no_grad():
        err = 0.0
        for src, dst in (("a", "b"), ("b", "a")):
            there = model.translate(x[src], src, dst, style=model.sample_style(len(x[src]), torch.Generator()))
            back = model.decode(model.encode_content(there)[1], model.encode_style(x[src], src), src)
            err += (back - x[src]).abs().mean().item()
    return err


def test_cycle_term_brings_translations_back(make_tiny_cfg, scenes_dir):
    """The same few generator steps from the same start, with the cycle term weighted up or off: with it the
    round trip a -> b -> a returns nearer the input. The quantizer does not count the round trip's codes."""
    errors = {}
    for weight in (0.0, 5.0):
        # 60 steps: at 30 the round trip has not yet moved either way (both about 0.6)
        model, x = _trained_with(make_tiny_cfg, "cycle", weight, steps=60, clip=1.0)
        errors[weight] = _cycle_error(model, x)
        usage = model.quantizer.usage.sum().item()
        assert usage == 60 * 2 * 4 * (32 // model.factor) ** 2  # only the real images' tokens were counted
    assert errors[5.0] < 0.9 * errors[0.0]


def test_style_kl_and_the_variational_encoder():
    from vqi2i.losses import style_kl
    from vqi2i.models.style_encoder import StyleEncoder

    zero = torch.zeros(3, 4)
    assert style_kl(zero, zero) == 0  # N(0, I) itself costs nothing
    mu = torch.full((2, 4), 2.0, requires_grad=True)
    kl = style_kl(mu, torch.zeros(2, 4))
    assert kl.item() == pytest.approx(0.5 * 4 * 4.0)  # 0.5 * sum(mu^2)
    kl.backward()
    assert torch.allclose(mu.grad, torch.full((2, 4), 1.0))  # d/dmu of the batch mean: mu / batch
    enc = StyleEncoder(3, 8, 5, variational=True)
    x = torch.randn(2, 3, 32, 32)
    mean, logvar = enc.posterior(x)
    assert mean.shape == logvar.shape == (2, 5) and torch.equal(enc(x), mean)  # inference uses the mean
    assert StyleEncoder(3, 8, 5).posterior(x)[1] is None
    assert "logvar.weight" not in StyleEncoder(3, 8, 5).state_dict()  # plain encoders keep their weights


def _style_spread(model, x) -> float:
    with torch.no_grad():
        return sum(model.encode_style(x[d], d).pow(2).mean().item() for d in "ab")


def test_style_kl_pulls_encoded_styles_to_the_prior(make_tiny_cfg, scenes_dir):
    """The same generator steps from the same start with the KL weighted up or off: with it the encoded
    styles sit near N(0, I)'s centre, the term is logged, and a plain model has no such term."""
    from vqi2i.train.trainer import generator_step

    spread = {}
    for weight in (0.0, 1.0):
        cfg = make_tiny_cfg("model.style_vae=true", f"loss.style_kl={weight}")
        x = _train_batch(cfg)
        torch.manual_seed(0)
        model = build_model(cfg)
        with torch.no_grad():  # start far from the prior, as an unregularised encoder drifts
            for d in "ab":
                model.style_encoders[d].head.bias.fill_(3.0)

        def check(out):
            assert out.terms["style_kl"] >= 0

        spread[weight] = _style_spread(_generator_steps(model, cfg, x, check), x)
    assert spread[1.0] < 0.5 * spread[0.0]
    plain = make_tiny_cfg()
    out = generator_step(build_model(plain), None, x, plain, None, adversarial=False, paired=False)
    assert "style_kl" not in out.terms


def test_ssim_loss_values_gradient_and_thin_lines():
    from vqi2i.losses import ssim_loss

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ssim_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-5)
    y = (x + 0.5 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    loss = ssim_loss(y, x)
    assert loss.shape == () and 0 < loss.item() <= 2
    loss.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    # a 1-px line on a blank page: a tiny L1, a large structural loss (why the term keeps thin strokes)
    blank = torch.ones(1, 1, 32, 32)
    line = blank.clone()
    line[..., 16, 4:28] = -1.0
    l1 = (line - blank).abs().mean().item()
    assert l1 < 0.05 and ssim_loss(blank, line).item() > 4 * l1
    with pytest.raises(ValueError):
        ssim_loss(x, x[:, :1])


def _recon_ssim(model, x) -> float:
    from vqi2i.losses import ssim_loss

    with torch.no_grad():
        rec = {d: model.decode(model.encode_content(x[d])[1], model.encode_style(x[d], d), d) for d in "ab"}
        return sum(1 - ssim_loss(rec[d], x[d]).item() for d in "ab") / 2


def test_recon_ssim_term_raises_the_reconstructions_ssim(make_tiny_cfg, scenes_dir):
    """The same generator steps from the same start with the structural term weighted up or off: with it the
    reconstructions are structurally nearer their inputs, and the term is logged only when on."""
    score = {}
    for weight in (0.0, 5.0):
        score[weight] = _recon_ssim(*_trained_with(make_tiny_cfg, "recon_ssim", weight))
    assert score[5.0] > score[0.0] + 0.05


def test_decoder_upsampling_width():
    from vqi2i.models.adain_decoder import AdaINDecoder

    def up_widths(dec):
        return [m.out_channels for m in dec.up if isinstance(m, torch.nn.Conv2d)]

    narrow = AdaINDecoder(16, 3, ch=64, n_up=3, n_res=1, style_dim=4, mlp_dim=8, up_kernel=3)
    wide = AdaINDecoder(16, 3, ch=64, n_up=3, n_res=1, style_dim=4, mlp_dim=8, up_kernel=3, up_ch=64)
    assert up_widths(narrow) == [32, 32, 32] and up_widths(wide) == [64, 64, 64]
    z, s = torch.randn(2, 16, 4, 4), torch.randn(2, 4)
    assert narrow(z, s).shape == wide(z, s).shape == (2, 3, 32, 32)


def _per_direction_mean(measure) -> float:
    """measure(src, dst, generator) averaged over a -> b and b -> a, without gradients, random styles repeatable."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        return sum(measure(src, dst, g) for src, dst in (("a", "b"), ("b", "a"))) / 2


def _style_diversity(model, x) -> float:
    """Mean pixel L1 between two random styles' translations of the same inputs, both directions."""
    def measure(src, dst, g):
        _, z_q = model.encode_content(x[src])
        one, two = (model.decode(z_q, model.sample_style(len(z_q), g), dst) for _ in range(2))
        return (one - two).abs().mean().item()

    return _per_direction_mean(measure)


def test_mode_seeking_makes_random_styles_differ(make_tiny_cfg, scenes_dir):
    """The same generator steps from the same start with mode seeking weighted up or off: with it two random
    styles of one input give more different images, and the hinge term is logged only when on."""
    diversity = {}
    def bounded(value):
        assert 0 <= value <= 2 * 0.5  # a hinge per domain: bounded by its target

    for weight in (0.0, 5.0):
        diversity[weight] = _style_diversity(*_trained_with(make_tiny_cfg, "mode_seek", weight,
                                                            "loss.mode_seek_target=0.5", check_term=bounded, steps=10))
    assert diversity[5.0] > 2 * diversity[0.0]


def _coarse_distance(model, x, size: int) -> float:
    """Mean L1 between random-style translations and their sources, both average-pooled to size x size."""
    pool = torch.nn.functional.adaptive_avg_pool2d

    def measure(src, dst, g):
        out = model.translate(x[src], src, dst, style=model.sample_style(len(x[src]), g))
        return (pool(out, size) - pool(x[src], size)).abs().mean().item()

    return _per_direction_mean(measure)


def test_lowpass_term_keeps_the_sources_coarse_layout(make_tiny_cfg, scenes_dir):
    """The same generator steps from the same start with the low-pass term weighted up or off: with it the
    translations' 4x4 average-pooled images are nearer their sources', and the term is logged only when on."""
    distance = {}
    for weight in (0.0, 5.0):
        distance[weight] = _coarse_distance(*_trained_with(make_tiny_cfg, "lowpass", weight, "loss.lowpass_size=4",
                                                           steps=10), 4)
    assert distance[5.0] < 0.7 * distance[0.0]


def test_content_tokens_cross_entropy_against_hand_values():
    from vqi2i.losses import content_tokens

    codebook = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    tokens = torch.tensor([[[1, 2]]])  # [B=1, h=1, w=2]
    on_codes = codebook[tokens].permute(0, 3, 1, 2).clone().requires_grad_(True)  # [1, 2, 1, 2]: exactly the codes
    # logits are -squared distances: at code 1, the others are 9 and 18 away
    expected = -torch.log_softmax(torch.tensor([-9.0, 0.0, -18.0]), 0)[1]
    assert content_tokens(on_codes, codebook, tokens).item() == pytest.approx(expected.item(), rel=1e-5)
    wrong = codebook[torch.tensor([[[0, 0]]])].permute(0, 3, 1, 2).clone().requires_grad_(True)
    loss = content_tokens(wrong, codebook, tokens)
    assert loss.item() == pytest.approx(9.0 + torch.log1p(torch.tensor(2 * (-9.0)).exp()).item(), rel=1e-4)
    book = codebook.clone().requires_grad_(True)
    content_tokens(wrong, book, tokens).backward()
    assert book.grad is None  # the codebook is a fixed target
    # the gradient moves each feature toward its source's code
    step = wrong - 0.05 * wrong.grad
    assert content_tokens(step, codebook, tokens) < loss


def test_content_tokens_term_makes_translations_keep_their_source_tokens(make_tiny_cfg, scenes_dir):
    """The same generator steps from the same start with the token cross-entropy on or off: with it, a
    translation encoded again picks its source's tokens at more positions; the term is logged only when on."""
    kept = {}
    for weight in (0.0, 2.0):
        model, x = _trained_with(make_tiny_cfg, "content_tokens", weight)

        def agree(src, dst, g, model=model, x=x):
            tokens, _ = model.encode_content(x[src])
            again, _ = model.encode_content(model.translate(x[src], src, dst, generator=g))
            return (again == tokens).float().mean().item()

        kept[weight] = _per_direction_mean(agree)
    assert kept[2.0] > kept[0.0] + 0.05
