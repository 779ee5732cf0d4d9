"""Per-domain style encoder E_s: strided convs, global average pool, linear -> style vector.

No instance normalisation: it would remove exactly the statistics that carry style (MUNIT).

variational=True (model.style_vae) adds a log-variance head (DRIT++'s attribute encoder): in training a
style is drawn from N(mu, sigma^2) and a KL term to N(0, I) charges for every bit the style carries.
At inference the style is the mean.

standardize=True (model.style_norm) divides the encoder's output by running statistics of the styles of
real images (per dimension: mean 0, standard deviation 1), kept like batch norm's running statistics but
never from one small batch: the styles of real images and the random N(0, I) styles then live on one
scale, so a random style is a style the decoder has seen, and a style encoder that outputs a constant
gains nothing in the latent style regression (its tiny variation is blown up to unit scale, not hidden).
"""

from __future__ import annotations

import torch
import torch.nn as nn


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
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 7, padding=3, padding_mode="reflect"), nn.ReLU(True)]
        c = ch
        for i in range(n_down):
            c_out = c * 2 if i < 2 else c  # widen twice, then keep the width (MUNIT)
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1, padding_mode="reflect"), nn.ReLU(True)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, style_dim)
        self.logvar = nn.Linear(c, style_dim) if variational else None
        self.standardize = standardize
        self.momentum = momentum
        if standardize:
            self.register_buffer("running_mean", torch.zeros(style_dim))
            self.register_buffer("running_var", torch.ones(style_dim))

    def _scale(self, mu: torch.Tensor, logvar: torch.Tensor | None, track: bool):
        if not self.standardize:
            return mu, logvar
        if track and self.training and mu.shape[0] > 1:
            with torch.no_grad():
                m = mu.detach().float()
                self.running_mean.lerp_(m.mean(0), self.momentum)
                self.running_var.lerp_(m.var(0, unbiased=True), self.momentum)
        var = self.running_var + 1e-5
        mu = (mu - self.running_mean) * var.rsqrt()
        return mu, (logvar - var.log() if logvar is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> style [B, style_dim] (the mean, for a variational encoder)."""
        return self._scale(self.head(self.features(x).mean(dim=(2, 3))), None, track=False)[0]

    def posterior(self, x: torch.Tensor, track: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x -> (mean, log-variance), each [B, style_dim]. A plain encoder has no variance: log-variance None.
        In training, with track (real images), the running statistics of a standardized encoder move."""
        h = self.features(x).mean(dim=(2, 3))
        return self._scale(self.head(h), self.logvar(h) if self.logvar is not None else None, track)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over the style dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def style_spread(styles: torch.Tensor) -> float:
    """Styles [N, S] -> the mean over dimensions of their standard deviation over the N images: 0 for an
    encoder that gives every image one style, about 1 for styles spread as the random N(0, I) ones."""
    if styles.dim() != 2 or styles.shape[0] < 2:
        raise ValueError(f"need styles [N >= 2, S], got shape {tuple(styles.shape)}")
    return float(styles.float().std(dim=0, unbiased=True).mean())
