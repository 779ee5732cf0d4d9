"""Per-domain style encoder E_s: strided convs, global average pool, linear -> style vector.

No instance normalisation: it would remove exactly the statistics that carry style (MUNIT).

act="relu" (MUNIT) or "lrelu" (LeakyReLU 0.2, StarGAN v2 / DRIT++; model.style_act): with ReLU a layer whose
channels are all zero on every image passes no gradient back and never recovers, and the encoder then gives
every image its head's bias (a collapsed style, spread exactly 0); a leaky slope keeps every unit trainable.

variational=True (model.style_vae) adds a log-variance head (DRIT++'s attribute encoder): in training a
style is drawn from N(mu, sigma^2) and a KL term to N(0, I) charges for every bit the style carries.
At inference the style is the mean.

standardize=True (model.style_norm) whitens the encoder's output with running statistics of the styles of
real images (their mean and full covariance, kept like batch norm's running statistics but never from one
small batch): the styles of real images then have mean 0 and covariance I, the first two moments of the
random N(0, I) styles, so a random style is drawn from a Gaussian fitted to the real ones and the decoder
learns both on one scale. Directions in which real styles do not vary come out as noise the decoder
learns to ignore, and a style encoder that outputs a constant gains nothing in the latent regression.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

ACTIVATIONS = {"relu": lambda: nn.ReLU(True), "lrelu": lambda: nn.LeakyReLU(0.2, True)}


class StyleEncoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        ch: int,
        style_dim: int,
        n_down: int = 4,
        variational: bool = False,
        standardize: bool = False,
        momentum: float = 0.02,
        act: str = "relu",
    ):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"style encoder activation must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 7, padding=3, padding_mode="reflect"), ACTIVATIONS[act]()]
        c = ch
        for i in range(n_down):
            c_out = c * 2 if i < 2 else c  # widen twice, then keep the width (MUNIT)
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1, padding_mode="reflect"), ACTIVATIONS[act]()]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, style_dim)
        self.logvar = nn.Linear(c, style_dim) if variational else None
        self.standardize = standardize
        self.momentum = momentum
        if standardize:
            self.register_buffer("running_mean", torch.zeros(style_dim))
            self.register_buffer("running_cov", torch.eye(style_dim))
            self.register_buffer("num_tracked", torch.zeros((), dtype=torch.long))

    def _scale(self, mu: torch.Tensor, logvar: torch.Tensor | None, track: bool):
        if not self.standardize:
            return mu, logvar
        if track and self.training:
            self._track(mu)
        whiten, log_scale = self.whitening()
        mu = (mu - self.running_mean) @ whiten.to(mu.dtype)
        return mu, (logvar + 2 * log_scale if logvar is not None else None)

    @torch.no_grad()
    def _track(self, mu: torch.Tensor) -> None:
        """Move the running statistics toward a batch of raw (not yet whitened) styles: a plain average over the
        first batches, then a moving one."""
        if mu.shape[0] < 2:
            return
        m = mu.detach().float()
        weight = max(self.momentum, 1.0 / (int(self.num_tracked) + 1))
        self.running_mean.lerp_(m.mean(0), weight)
        self.running_cov.lerp_(torch.cov(m.T).reshape_as(self.running_cov), weight)
        self.num_tracked += 1

    @torch.no_grad()
    def track(self, x: torch.Tensor) -> None:
        """Move the running statistics toward the styles this encoder, as it is now, gives the real images x,
        in any mode: a moving average of the weights keeps statistics of its own outputs (as SWA re-estimates
        batch norm), not those of the encoder it averages, which runs ahead of it."""
        if self.standardize:
            self._track(self.head(self.features(x).mean(dim=(2, 3))))

    def whitening(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The symmetric whitening matrix (cov + eps I)^(-1/2) of the running statistics, and the log of its
        diagonal (how much each dimension is scaled, for a variational encoder's log-variance)."""
        cov = self.running_cov.float()
        cov = 0.5 * (cov + cov.T) + 1e-5 * torch.eye(cov.shape[0], device=cov.device)
        vals, vecs = torch.linalg.eigh(cov)
        whiten = vecs @ torch.diag(vals.clamp_min(1e-5).rsqrt()) @ vecs.T
        return whiten, whiten.diagonal().abs().clamp_min(1e-12).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> style [B, style_dim] (the mean, for a variational encoder)."""
        return self._scale(self.head(self.features(x).mean(dim=(2, 3))), None, track=False)[0]

    def posterior(self, x: torch.Tensor, track: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x -> (mean, log-variance), each [B, style_dim]. A plain encoder has no variance: log-variance None.
        In training, with track (real images), the running statistics of a standardized encoder move."""
        h = self.features(x).mean(dim=(2, 3))
        return self._scale(self.head(h), self.logvar(h) if self.logvar is not None else None, track)


@torch.no_grad()
def dead_share(encoder: StyleEncoder, batches: Iterable[torch.Tensor]) -> float:
    """The largest share, over the encoder's layers, of channels that are not positive at any position of any
    image of the batches (with ReLU: zero, passing no gradient). 1: some layer passes nothing, so every image gets
    one style (the head's bias, through whatever constant the later layers add) and, with ReLU, nothing can bring
    the encoder back."""
    dead: list[torch.Tensor] | None = None
    for x in batches:
        h, masks = x, []
        for layer in encoder.features:
            h = layer(h)
            if isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
                masks.append((h <= 0).flatten(2).all(dim=2).all(dim=0))
        dead = masks if dead is None else [d & m for d, m in zip(dead, masks)]
    if dead is None:
        raise ValueError("dead_share needs at least one batch")
    return max(float(d.float().mean()) for d in dead)


def style_spread(styles: torch.Tensor) -> float:
    """Styles [N, S] -> the mean over dimensions of their standard deviation over the N images: 0 for an
    encoder that gives every image one style, about 1 for styles spread as the random N(0, I) ones."""
    if styles.dim() != 2 or styles.shape[0] < 2:
        raise ValueError(f"need styles [N >= 2, S], got shape {tuple(styles.shape)}")
    return float(styles.float().std(dim=0, unbiased=True).mean())
