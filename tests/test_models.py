"""The translator's parts: shapes, the straight-through quantizer (checked against taming's), styles
passed explicitly (batched, per location), the unimodal variant, dead-code restarts, codebook stats."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from taming.modules.vqvae.quantize import VectorQuantizer as TamingVectorQuantizer

from vqi2i.models.build import build_model
from vqi2i.models.quantizer import VectorQuantizer, codebook_stats


def _images(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def model(make_tiny_cfg):
    torch.manual_seed(0)
    return build_model(make_tiny_cfg()).eval()


@pytest.mark.parametrize(
    "channels,b,h,w",
    [(3, 2, 32, 48), (1, 3, 16, 40), (3, 1, 24, 8)],
    ids=["rgb-wide", "gray-batch3", "rgb-tall"],
)
def test_shapes_and_dtypes(make_tiny_cfg, channels, b, h, w):
    torch.manual_seed(0)
    model = build_model(make_tiny_cfg(f"model.in_channels={channels}", f"data.channels={channels}")).eval()
    f, d, s = model.factor, model.quantizer.embed_dim, model.style_dim
    assert (f, model.n_embed, model.in_channels) == (4, 64, channels)
    x = _images(b, channels, h, w)
    with torch.no_grad():
        tokens, z_q = model.encode_content(x)
        style = model.encode_style(x, "a")
        y_tokens = model.decode(tokens, style, "b")
        y_zq = model.decode(z_q, style, "b")
        y_rand = model.translate(x, "a", "b", generator=torch.Generator().manual_seed(1))
    assert tokens.shape == (b, h // f, w // f) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < model.n_embed
    assert z_q.shape == (b, d, h // f, w // f) and z_q.dtype == torch.float32
    assert style.shape == (b, s) and style.dtype == torch.float32
    assert model.sample_style(5).shape == (5, s)
    for y in (y_tokens, y_zq, y_rand):
        assert y.shape == (b, channels, h, w) and y.dtype == torch.float32
        assert float(y.abs().max()) <= 1.0
    # decoding tokens = decoding their codes (z_q carries the straight-through rounding: zf + (e - zf))
    torch.testing.assert_close(y_tokens, y_zq, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="divisible"):
        model.encode_content(_images(1, channels, h + 2, w))
    with pytest.raises(ValueError, match="expected images"):
        model.encode_content(_images(1, 4 - channels, h, w))


def test_straight_through_gradient_reaches_the_encoder(model):
    q = VectorQuantizer(16, 4)
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    z_q, _, _ = q(z)
    upstream = torch.randn_like(z_q)
    (z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)  # the quantizer passes gradients through unchanged

    model.zero_grad(set_to_none=True)
    x = _images(2, 3, 32, 32)
    z_q = model.quantize(x).z_q
    F.l1_loss(model.decode(z_q, model.encode_style(x, "a"), "a"), x).backward()
    for name in ("content_encoder.conv_in.weight", "quant_conv.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert model.quantizer.embedding.weight.grad is None  # only the VQ loss moves the codebook
    model.zero_grad(set_to_none=True)


def test_nearest_codes_match_taming():
    torch.manual_seed(0)
    ours = VectorQuantizer(64, 32, beta=0.25)
    theirs = TamingVectorQuantizer(64, 32, 0.25)
    with torch.no_grad():
        ours.embedding.weight.copy_(torch.randn(64, 32))
        theirs.embedding.weight.copy_(ours.embedding.weight)
    z = torch.randn(3, 32, 8, 12)
    z_q, loss, idx = ours(z)
    t_zq, t_loss, (_, _, t_idx) = theirs(z)
    assert torch.equal(idx.flatten(), t_idx.flatten())
    torch.testing.assert_close(z_q, t_zq)
    torch.testing.assert_close(loss, t_loss)  # same value; taming swaps which term beta weighs


def test_style_changes_output_but_not_content(model):
    x = _images(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    s1, s2 = model.sample_style(1, g), model.sample_style(1, g)
    with torch.no_grad():
        tokens, z_q = model.encode_content(x)
        y1, y2 = model.decode(tokens, s1, "b"), model.decode(tokens, s2, "b")
        assert float((y1 - y2).abs().mean()) > 1e-3
        # re-encoding the same input gives the same tokens, whatever style is used afterwards
        assert torch.equal(model.encode_content(x)[0], tokens)
        # the two domains' decoders differ for the same content and style
        assert float((model.decode(tokens, s1, "a") - y1).abs().mean()) > 1e-3


def test_two_styles_in_one_batch_equal_separate_calls(model):
    x = _images(2, 3, 32, 32)
    styles = model.sample_style(2, torch.Generator().manual_seed(3))
    with torch.no_grad():
        _, z_q = model.encode_content(x)
        together = model.decode(z_q, styles, "a")
        apart = torch.cat([model.decode(z_q[i : i + 1], styles[i : i + 1], "a") for i in range(2)])
        assert float((together[0] - together[1]).abs().mean()) > 1e-3
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-4)


def test_spatial_style_map(model):
    x = _images(1, 3, 32, 64)
    g = torch.Generator().manual_seed(4)
    s1, s2 = model.sample_style(1, g), model.sample_style(1, g)
    with torch.no_grad():
        _, z_q = model.encode_content(x)
        h, w = z_q.shape[-2:]
        y1, y2 = model.decode(z_q, s1, "b"), model.decode(z_q, s2, "b")
        # a constant map is the same as the plain style vector
        constant = s1[:, :, None, None].expand(1, -1, h, w)
        torch.testing.assert_close(model.decode(z_q, constant, "b"), y1, rtol=0, atol=1e-4)
        # style 1 on the left half, style 2 on the right: each side looks like its own style
        half = torch.cat(
            [s1[:, :, None, None].expand(-1, -1, 1, w // 2), s2[:, :, None, None].expand(-1, -1, 1, w // 2)], 3
        )
        y = model.decode(z_q, half, "b")
    left, right = slice(0, 16), slice(48, 64)
    assert F.l1_loss(y[..., left], y1[..., left]) < F.l1_loss(y[..., left], y2[..., left])
    assert F.l1_loss(y[..., right], y2[..., right]) < F.l1_loss(y[..., right], y1[..., right])
    with pytest.raises(ValueError, match="style must be"):
        model.decoders["a"].adain_params(torch.zeros(1, model.style_dim, 2))


def test_unimodal_variant(make_tiny_cfg):
    from vqi2i.train.trainer import generator_step

    cfg = make_tiny_cfg("model.variant=unimodal")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert not model.multimodal and not hasattr(model, "style_encoders")
    assert set(dict(model.named_parameters())) >= {"domain_styles.a", "domain_styles.b"}
    x = _images(2, 3, 32, 32)
    with torch.no_grad():
        y = model.decode(model.encode_content(x)[1], None, "b")
        assert y.shape == x.shape
        torch.testing.assert_close(model.translate(x, "a", "b"), y)  # no randomness: one style per domain
        assert torch.equal(model.encode_style(x, "a"), model.domain_styles["a"].expand(2, -1))
        out = generator_step(model, None, {"a": x, "b": x.flip(3)}, cfg, None, adversarial=False, paired=False)
    assert "style" not in out.terms and {"recon", "vq", "content"} <= set(out.terms)


def test_dead_code_restart_moves_only_dead_codes():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 4)
    before = q.embedding.weight.detach().clone()
    q.usage.copy_(torch.tensor([5.0, 0, 3, 0, 0, 1, 2, 0]))
    recent = torch.randn(10, 4) * 3
    assert q.restart_dead_codes(recent, dead_below=1.0) == 4
    after = q.embedding.weight.detach()
    dead = [1, 3, 4, 7]
    for k in range(8):
        if k in dead:
            assert any(torch.equal(after[k], r) for r in recent), k  # moved onto an encoder output
        else:
            assert torch.equal(after[k], before[k]), k
    assert float(q.usage.sum()) == 0  # counting starts over

    q.train()
    _, _, idx = q(torch.randn(2, 4, 3, 3))
    assert torch.equal(q.usage, torch.bincount(idx.flatten(), minlength=8).float())
    q.eval()
    q(torch.randn(2, 4, 3, 3))
    assert torch.equal(q.usage, torch.bincount(idx.flatten(), minlength=8).float())  # eval does not count


def test_codebook_stats():
    from vqi2i.eval.metrics import codebook_usage

    assert codebook_stats(torch.tensor([2, 2, 0, 0])) == {"codes_used": 2, "perplexity": pytest.approx(2.0)}
    assert codebook_stats(torch.full((16,), 3)) == {"codes_used": 16, "perplexity": pytest.approx(16.0)}
    assert codebook_stats(torch.tensor([0, 9, 0])) == {"codes_used": 1, "perplexity": pytest.approx(1.0)}
    assert codebook_stats(torch.zeros(4)) == {"codes_used": 0, "perplexity": 0.0}
    counts = torch.tensor([1, 2, 3, 0, 4])
    p = counts[counts > 0] / counts.sum()
    expected = math.exp(float(-(p * p.log()).sum()))
    assert codebook_stats(counts)["perplexity"] == pytest.approx(expected)
    tokens = torch.repeat_interleave(torch.arange(5), counts)
    assert codebook_usage(tokens, 5)["perplexity"] == pytest.approx(expected)
