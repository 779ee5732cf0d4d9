"""Loss terms: GAN losses and the VGG perceptual loss read from a local weights file."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vqi2i.errors import UserError
from vqi2i.losses import VGGPerceptual, d_loss, g_loss


def test_gan_losses_prefer_real_over_fake():
    real = [torch.ones(2, 1, 4, 4), torch.ones(2, 1, 2, 2)]
    fake = [-torch.ones(2, 1, 4, 4), -torch.ones(2, 1, 2, 2)]
    for mode in ("lsgan", "hinge"):
        assert d_loss(real, fake, mode) < d_loss(fake, real, mode)
        assert g_loss(real, mode) < g_loss(fake, mode)
    assert d_loss(real, [torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)], "lsgan") == 0


def test_perceptual_needs_a_local_file(tmp_path):
    with pytest.raises(UserError, match="never downloads"):
        VGGPerceptual(None)
    with pytest.raises(UserError, match="does not exist"):
        VGGPerceptual(tmp_path / "nope.pth")
    bad = tmp_path / "bad.safetensors"
    save_file({"features.0.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(UserError, match="not a torchvision VGG16"):
        VGGPerceptual(bad)


def test_perceptual_loss_from_local_features(tmp_path):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    feats = vgg16(weights=None).features[:23]
    path = tmp_path / "vgg16_features.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in feats.state_dict().items()}, str(path))
    loss = VGGPerceptual(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert loss(x, y).item() > 0
    gray = x[:, :1]
    assert loss(gray, gray).item() == 0  # one-channel images are accepted
    assert all(not p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("term", ["reconstruction", "paired", "cycle", "look_transfer", "content_regression",
                                  "style_regression"])
def test_l1_terms_are_zero_at_their_target_and_move_only_the_output(term):
    from vqi2i import losses

    fn = getattr(losses, term)
    out = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert fn(target.detach().clone(), target.detach()) == 0
    loss = fn(out, target)
    assert loss.shape == () and loss > 0
    loss.backward()
    assert out.grad.abs().sum() > 0
    fixed = term in ("content_regression", "style_regression")  # latents: fixed targets
    assert (target.grad is None) == fixed


def test_lowpass_compares_coarse_grids_of_every_translation_with_its_source():
    from vqi2i.losses import lowpass

    source = torch.rand(2, 3, 8, 8)
    checker = (torch.arange(8)[:, None] + torch.arange(8)) % 2 * 0.2 - 0.1  # averages to 0 over each 2x2 cell
    translations = torch.cat([source + checker, source - checker])  # two translations per source, in blocks
    assert lowpass(translations, source, 4).abs() < 1e-6
    assert lowpass(translations + 0.5, source, 4) == pytest.approx(0.5)


def test_mode_seeking_is_a_bounded_hinge_on_pixels_per_style():
    from vqi2i.losses import mode_seeking

    one, s1, s2 = torch.zeros(2, 3, 4, 4), torch.zeros(2, 8), torch.ones(2, 8)
    assert mode_seeking(one, one.clone(), s1, s2, target=0.1) == pytest.approx(0.1)  # the same image: the bound
    assert mode_seeking(one, one + 0.5, s1, s2, target=0.1) == 0  # apart enough: off
