"""The style path: its eval figures, the collapse warning, the look-transfer terms and whitened styles."""

from __future__ import annotations

import pytest
import torch

from vqi2i.data.transforms import jitter_look
from vqi2i.eval import metrics
from vqi2i.eval.evaluate import EvalOptions, _guided_scores
from vqi2i.models.build import build_model
from vqi2i.models.style_encoder import StyleEncoder, style_spread
from vqi2i.train.trainer import COLLAPSED_SPREAD, generator_step, style_collapsed


def _scenes(n: int = 6, size: int = 32) -> torch.Tensor:
    from vqi2i.data.scenes import scene_images

    imgs = [torch.from_numpy(scene_images(0, "testA", i, size)).permute(2, 0, 1).float() / 127.5 - 1 for i in range(n)]
    return torch.stack(imgs)


class IdentityTranslator:
    """Tokens are the image, decoding ignores the style, one style for every image: 'doing nothing'."""

    multimodal = True

    def encode_content(self, x):
        return None, x

    def encode_style(self, x, domain):
        return torch.zeros(x.shape[0], 3)

    def decode(self, z_q, style, domain):
        return z_q


class ColourShiftTranslator(IdentityTranslator):
    """The style is the per-channel mean colour; decoding moves the content's mean colour onto the style's."""

    def encode_style(self, x, domain):
        return x.mean(dim=(2, 3))

    def decode(self, z_q, style, domain):
        return z_q - z_q.mean(dim=(2, 3), keepdim=True) + style[:, :, None, None]


def test_style_spread_by_hand():
    assert style_spread(torch.ones(10, 8) * 0.3) == 0.0  # a collapsed encoder: one style for every image
    s = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    assert style_spread(s) == pytest.approx((2.0 + 0.0) / 2)  # std of (0, 2, 4) is 2; the second dim does not vary
    torch.manual_seed(0)
    assert style_spread(torch.randn(4000, 8)) == pytest.approx(1.0, abs=0.03)  # the random styles
    with pytest.raises(ValueError):
        style_spread(torch.zeros(1, 8))


def test_guided_scores_of_doing_nothing_are_the_identity_scores():
    x = _scenes()
    gt = jitter_look(x, generator=torch.Generator().manual_seed(0))  # the "other domain": a re-coloured copy
    out = _guided_scores(IdentityTranslator(), x, gt, "a", "b", EvalOptions(batch_size=4, progress=False), "cpu")
    identity = {k: float(v.mean()) for k, v in metrics.paired_scores(x, gt).items()}
    for k in ("l1", "ssim", "psnr"):
        assert out["guided"][k] == pytest.approx(identity[k], abs=1e-6)
        assert out["shuffled"][k] == pytest.approx(identity[k], abs=1e-6)
    assert out["style_follow"]["ssim"] == pytest.approx(0.0, abs=1e-6)


def test_guided_scores_of_a_style_follower():
    x = _scenes(1).repeat(6, 1, 1, 1) * 0.6  # one scene six times, so that only the exemplars differ
    shift = torch.tensor([[0.3, -0.2, 0.1], [-0.3, 0.2, 0.0], [0.1, 0.1, -0.3], [0.0, -0.3, 0.3],
                          [0.2, 0.2, 0.2], [-0.2, 0.0, 0.2]])[:, :, None, None]
    gt = x + shift  # the ground truth differs from its input by a colour shift only (inside [-1, 1])
    out = _guided_scores(ColourShiftTranslator(), x, gt, "a", "b", EvalOptions(batch_size=4, progress=False), "cpu")
    assert out["guided"]["l1"] < 0.02 and out["guided"]["ssim"] > 0.98  # the own exemplar's colour: gt itself
    assert out["style_follow"]["ssim"] > 0.05 and out["style_follow"]["l1"] > 0.05
    # scores are taken on images in [0, 1]: half the distance in [-1, 1]
    assert out["shuffled"]["l1"] == pytest.approx(0.5 * float((shift - shift.roll(-1, 0)).abs().mean()), rel=1e-4)


def test_collapse_warning_rule():
    healthy = {"style_spread_a": 0.8, "style_spread_b": 0.6}
    collapsed = {"style_spread_a": 0.8, "style_spread_b": COLLAPSED_SPREAD / 10}
    assert not style_collapsed(healthy, 500, 1000)
    assert style_collapsed(collapsed, 500, 1000)
    assert not style_collapsed(collapsed, 10, 1000)  # a fresh encoder is allowed a start
    assert not style_collapsed({}, 500, 1000)  # unimodal: no styles, no warning
    # the training model still spreads its styles, the inference weights (on held-out images) no longer do
    slow = {**healthy, "val_style_spread_a": 0.0, "val_style_spread_b": 0.5}
    assert style_collapsed(slow, 500, 1000)
    assert not style_collapsed({**healthy, "val_style_spread_a": 0.4, "val_style_spread_b": 0.5}, 500, 1000)


@pytest.mark.parametrize("constant", [True, False])
def test_training_warns_once_on_a_constant_style_encoder(constant, make_tiny_cfg, tmp_path, capsys, monkeypatch):
    from vqi2i.train.runtime import read_metrics
    from vqi2i.train.trainer import train

    if constant:  # every image gets the style 0.5 (still a function of the image, so gradients flow)
        def posterior(self, x, track=True):
            mu = self.head(self.features(x).mean(dim=(2, 3)))
            return mu * 0 + 0.5, None

        monkeypatch.setattr(StyleEncoder, "posterior", posterior)
    cfg = make_tiny_cfg("train.max_steps=6", "train.batch_size=2", "train.log_every=2", "train.image_every=100",
                        "train.ckpt_every=100", "model.style_norm=true", "loss.look=1")
    train(cfg, tmp_path / "run", progress=False)
    err = capsys.readouterr().err
    lines = read_metrics(tmp_path / "run")
    assert all("style_spread_a" in m and "style_spread_b" in m for m in lines)
    last = lines[-1]  # the last line has a sample sheet, and the inference weights' spread on the preview batch
    if constant:
        assert err.count("the style encoders have collapsed") == 1 and last["style_spread_a"] == 0.0
        assert max(last["val_style_spread_a"], last["val_style_spread_b"]) < COLLAPSED_SPREAD  # whitened: float noise
    else:
        assert "collapsed" not in err and min(last["style_spread_a"], last["style_spread_b"]) > 0.1
        assert min(last["val_style_spread_a"], last["val_style_spread_b"]) > 0.1


def test_jitter_look_changes_the_look_and_keeps_the_scene():
    x = _scenes()
    y = jitter_look(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert torch.equal(y, jitter_look(x, generator=torch.Generator().manual_seed(0)))  # repeatable
    assert (y - x).abs().mean() > 0.05  # the look moved ...
    for i in range(len(x)):  # ... the scene did not: each copy's brightness pattern still follows its original
        a, b = x[i].mean(0).flatten(), y[i].mean(0).flatten()
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.7
    gray = jitter_look(x[:, :1], generator=torch.Generator().manual_seed(0))
    assert gray.shape == x[:, :1].shape
    assert torch.equal(jitter_look(x, 0.0), x.clamp(-1, 1)) or (jitter_look(x, 0.0) - x).abs().max() < 1e-5


def test_whitened_styles_have_the_moments_of_the_random_ones():
    torch.manual_seed(0)
    enc = StyleEncoder(3, 8, 4, 3, standardize=True).train()
    enc.head.weight.data.mul_(30)  # styles on a trained encoder's scale, well above the whitening's floor (1e-5)
    colours = torch.randn(256, 3, 1, 1) * 0.4
    x = (torch.randn(256, 3, 16, 16) * 0.1 + colours).clamp(-1, 1)
    for _ in range(200):  # the running statistics follow real images (tracked), never the translations
        enc.posterior(x[torch.randint(0, 256, (16,))])
    enc.eval()
    with torch.no_grad():
        s = enc(x)
    assert s.mean(0).abs().max() < 0.15
    assert (torch.cov(s.T) - torch.eye(4)).abs().max() < 0.2
    state = enc.state_dict()
    assert {"running_mean", "running_cov", "num_tracked"} <= set(state)
    before = enc.running_cov.clone()
    enc.train()
    enc.posterior(x[:8], track=False)
    enc(x[:8])
    assert torch.equal(enc.running_cov, before)  # untracked calls leave the statistics alone


def _batch(cfg):
    from vqi2i.data import build_dataset

    ds = build_dataset(cfg.data, "train", train=False, seed=0)
    return {d: torch.stack([ds[i][d] for i in range(4)]) for d in "ab"}


def test_look_terms_reach_the_style_and_content_encoders(make_tiny_cfg):
    only = ["loss.recon=0", "loss.vq=0", "loss.style=0", "loss.content=0", "loss.adv=0"]
    cfg = make_tiny_cfg(*only, "loss.look=1", "model.style_norm=true")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    out = generator_step(model, None, _batch(cfg), cfg, None, adversarial=False, paired=False)
    assert {"look", "recon"} <= set(out.terms)
    assert set(out.styles) == {"a", "b"} and out.styles["a"].shape == (4, cfg.model.style_dim)
    out.loss.backward()
    for d in "ab":
        assert model.style_encoders[d].head.weight.grad.abs().sum() > 0  # the look travels through the style
    assert model.content_encoder.conv_in.weight.grad.abs().sum() > 0


def test_look_transfer_is_learnt_through_the_style(make_tiny_cfg):
    """A few steps on one batch with the look term: the style of a re-coloured copy comes to carry its colours,
    so the own tokens rendered with it land nearer the copy than the plain reconstruction does."""
    cfg = make_tiny_cfg("loss.adv=0", "loss.look=5", "model.style_norm=true")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = _batch(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(40):
        torch.manual_seed(1)  # the same copies at every step
        out = generator_step(model, None, x, cfg, None, adversarial=False, paired=False)
        first = first if first is not None else out.terms["look"]
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.terms["look"] < 0.6 * first
    model.eval()
    torch.manual_seed(1)
    copy = jitter_look(x["a"])
    with torch.no_grad():
        _, z_q = model.encode_content(x["a"])
        with_copy_style = model.decode(z_q, model.encode_style(copy, "a"), "a")
        with_own_style = model.decode(z_q, model.encode_style(x["a"], "a"), "a")
    assert (with_copy_style - copy).abs().mean() < (with_own_style - copy).abs().mean()


def test_style_recovery_by_hand():
    from vqi2i.eval.evaluate import style_recovery

    torch.manual_seed(0)
    given = torch.randn(64, 8)
    assert style_recovery(given, 3 * given + 1) == pytest.approx(1.0)  # read back exactly, up to scale and shift
    assert style_recovery(given, torch.zeros(64, 8) + 0.2) == pytest.approx(0.0, abs=1e-5)  # a constant: nothing
    assert abs(style_recovery(given, torch.randn(64, 8))) < 0.2  # unrelated


def _killed(act: str) -> StyleEncoder:
    """A style encoder whose last conv is pushed far negative: every channel of its last layer off on any image."""
    torch.manual_seed(0)
    enc = StyleEncoder(3, 8, 4, n_down=2, act=act)
    with torch.no_grad():
        enc.features[-2].bias.fill_(-1e3)
    return enc


def test_a_dead_relu_style_encoder_gives_one_style_and_no_gradient():
    from vqi2i.models.style_encoder import dead_share

    x = _scenes(4)
    healthy = StyleEncoder(3, 8, 4, n_down=2)
    assert dead_share(healthy, [x[:2], x[2:]]) < 1
    dead = _killed("relu")
    assert dead_share(dead, [x[:2], x[2:]]) == 1.0  # every channel of the last layer is zero on every image
    assert style_spread(dead(x).detach()) == 0.0  # ... so every image gets the head's bias
    dead(x).sum().backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in dead.features.parameters())  # no way back


def test_a_dead_inner_layer_counts_and_a_channel_alive_in_one_batch_is_alive():
    from vqi2i.models.style_encoder import dead_share

    x = _scenes(4)
    torch.manual_seed(0)
    enc = StyleEncoder(3, 8, 4, n_down=2)
    with torch.no_grad():
        enc.features[2].bias.fill_(-1e3)  # the first strided layer: everything after it is a constant
    assert dead_share(enc, [x]) == 1.0 and style_spread(enc(x).detach()) == 0.0
    with torch.no_grad():  # by hand: one last-layer channel positive on the second batch only
        enc = StyleEncoder(3, 8, 4, n_down=0)
        enc.features[0].weight.zero_()
        enc.features[0].bias.fill_(-1.0)
        enc.features[0].weight[0].fill_(1.0)  # channel 0 is positive where the image's channel sum is
    dark, bright = -torch.ones(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    assert dead_share(enc, [dark]) == 1.0
    assert dead_share(enc, [dark, bright]) == pytest.approx(7 / 8)  # alive somewhere: not dead


def test_a_leaky_style_encoder_keeps_its_gradient_and_varies_where_relu_dies():
    x = _scenes(4)
    leaky = _killed("lrelu")
    assert style_spread(leaky(x).detach()) > 0  # the negative side still carries the image
    leaky(x).sum().backward()
    assert float(leaky.features[0].weight.grad.abs().sum()) > 0  # and gradient reaches the first layer
    with pytest.raises(ValueError, match="activation"):
        StyleEncoder(3, 8, 4, act="gelu")


def test_eval_reports_the_dead_share_of_a_collapsed_style_encoder(make_tiny_cfg, scenes_dir, tmp_path):
    import shutil

    from vqi2i.eval.evaluate import evaluate

    data = shutil.copytree(scenes_dir, tmp_path / "scenes")  # the classifier is cached beside the data
    cfg = make_tiny_cfg(f"data.root={data}")
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.style_encoders["a"].features[-2].bias.fill_(-1e3)
    model.eval()
    report, _ = evaluate(model, cfg, data, EvalOptions(batch_size=4, progress=False, num_samples=2,
                                                       classifier_steps=5), "cpu", log=lambda s: None)
    assert report["style"]["a"]["dead"] == 1.0 and report["style"]["a"]["spread"] == 0.0
    assert report["style"]["b"]["dead"] < 1.0 and report["style"]["b"]["spread"] > 0


def test_an_unknown_style_activation_is_a_one_line_error(make_tiny_cfg, capsys):
    from conftest import TINY_CONFIG

    from vqi2i.cli import main

    assert main(["train", str(TINY_CONFIG), "model.style_act=gelu", "--out", "unused", "--device", "cpu"]) != 0
    err = capsys.readouterr().err
    assert "model.style_act='gelu' is not one of relu, lrelu" in err and "Traceback" not in err
