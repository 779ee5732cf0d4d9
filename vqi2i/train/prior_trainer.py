"""Stage-2 trainer: the content prior over token grids of a frozen codec.

The codec's training images (both domains, and their mirror images) are encoded once into a token
cache (`vqi2i.tokens`); each step reads a batch of grids, optionally cut to random sub-windows so the
prior learns windows of any size at any place in an image (what sliding-window sampling needs), and
minimises next-token cross-entropy. Checkpoints use the stage-1 layout (`vqi2i.checkpoint`) and record
the codec's `checkpoint_id`: a prior is only ever used with the codec whose tokens it learnt.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vqi2i.checkpoint import checkpoint_id, load_model
from vqi2i.errors import UserError
from vqi2i.images import save_grid
from vqi2i.inference import check_codec_path, prior_config_of
from vqi2i.models.prior import ContentPrior, PriorConfig
from vqi2i.models.vqi2i import VQI2I
from vqi2i.sampling import generate_grids
from vqi2i.tokens import TokenSet, cached_tokens
from vqi2i.train.distributed import DistContext, distributed_session, gather_objects, main_first, mean_over_ranks, wrap
from vqi2i.train.run import Run, begin
from vqi2i.train.runtime import checkpoint_due, epoch_batches, lr_factor, rng_state, set_lr, set_rng_state

# -- data ----------------------------------------------------------------------------------------------


def random_windows(grids: torch.Tensor, rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """One rows x cols window per grid [B, H, W], at a random place in each."""
    B, H, W = grids.shape
    top = torch.randint(0, H - rows + 1, (B,), generator=generator)
    left = torch.randint(0, W - cols + 1, (B,), generator=generator)
    r = (top[:, None] + torch.arange(rows))[:, :, None]  # [B, rows, 1]
    c = (left[:, None] + torch.arange(cols))[:, None, :]  # [B, 1, cols]
    return grids[torch.arange(B)[:, None, None], r, c]


def training_windows(grids: torch.Tensor, pcfg: PriorConfig, data_cfg, generator: torch.Generator) -> torch.Tensor:
    """The windows one step trains on: context-sized, or (with probability window_prob) a random smaller
    size shared by the batch, each at a random place in its grid."""
    R, C = pcfg.block_rows, pcfg.block_cols
    if float(torch.rand((), generator=generator)) < float(data_cfg.window_prob):
        lo_r, lo_c = min(int(data_cfg.min_window), R), min(int(data_cfg.min_window), C)
        R = int(torch.randint(lo_r, R + 1, (), generator=generator))
        C = int(torch.randint(lo_c, C + 1, (), generator=generator))
    return random_windows(grids, R, C, generator)


def split_validation(ts: TokenSet, fraction: float, seed: int) -> tuple[TokenSet, TokenSet]:
    """Hold out whole source images (with their mirror images) for validation."""
    key = ts.domain.long() * (int(ts.image.max()) + 1) + ts.image
    images = key.unique()
    g = torch.Generator().manual_seed(seed)
    n_val = max(1, round(fraction * len(images)))
    val_images = images[torch.randperm(len(images), generator=g)[:n_val]]
    is_val = torch.isin(key, val_images)
    if is_val.all():
        raise UserError("too few training images to hold any out for validation; add a test split")

    def pick(mask):
        return TokenSet(ts.tokens[mask], ts.domain[mask], ts.flipped[mask], ts.image[mask])

    return pick(~is_val), pick(is_val)


@torch.no_grad()
def evaluate(prior: ContentPrior, val: torch.Tensor, batch_size: int, use_bf16: bool) -> float:
    """Mean next-token loss (nats) over validation grids, read through the context-sized window at the
    top-left of each grid."""
    was_training = prior.training
    prior.eval()
    device = next(prior.parameters()).device
    R, C = prior.cfg.block_rows, prior.cfg.block_cols
    total, count = 0.0, 0
    for s in range(0, len(val), batch_size):
        w = val[s : s + batch_size, :R, :C].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            total += prior.loss(w).item() * w.numel()
        count += w.numel()
    prior.train(was_training)
    return total / max(1, count)


@torch.no_grad()
def write_samples(prior: ContentPrior, codec, cfg: DictConfig, path: Path) -> None:
    """A sheet of sampled grids, each decoded in domain a (top row) and b (bottom row)."""
    device = next(prior.parameters()).device
    g = torch.Generator(device=device).manual_seed(int(cfg.train.seed))
    n = int(cfg.train.num_samples)
    grids = generate_grids(prior, n, prior.cfg.block_rows, prior.cfg.block_cols, generator=g)
    rows = []
    for d in ("a", "b"):
        style = codec.sample_style(n, g, device) if codec.multimodal else None
        rows.append(codec.decode(grids, style, d).float().cpu())
    save_grid(rows, path, overwrite=True, labels=["A", "B"])


# -- training ------------------------------------------------------------------------------------------


class PriorLoss(torch.nn.Module):
    """The prior's training loss as a module: one DDP forward per step."""

    def __init__(self, prior: ContentPrior):
        super().__init__()
        self.prior = prior

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.prior.loss(windows)


def _rank_seed(seed: int, rank: int, step: int) -> int:
    """The dropout stream of a rank > 0 (rank 0 keeps the one-process stream)."""
    return (seed * 1_000_003 + rank * 7_919 + step) % 2**63


def train_prior(cfg: DictConfig, run_dir: str | Path, codec_path: str | Path | None, *, resume: bool = False,
                progress: bool = True, stop_at: int | None = None) -> dict:
    """Train (or resume) a prior in `run_dir` on the tokens of the codec at `codec_path` (on resume the
    recorded codec, which `codec_path` must match if given). Returns the last logged metrics.

    Under torchrun (WORLD_SIZE > 1) the processes train one prior with DDP, train.batch_size each: every
    step's global batch (and its windows) is what one process would draw, cut into per-rank shards;
    each rank has its own dropout stream; rank 0 encodes the token cache and writes the run folder."""
    with distributed_session(cfg.train.device) as (ctx, device):
        return _train_prior(cfg, Path(run_dir), codec_path, ctx, device, resume=resume, progress=progress,
                            stop_at=stop_at)


def _codec_and_tokens(cfg: DictConfig, run_dir: Path, codec_path: str | Path | None, ctx: DistContext,
                      device: torch.device, progress: bool) -> tuple[VQI2I, str, TokenSet, TokenSet]:
    """The frozen codec (recorded in cfg.codec) and its train and validation token grids, from the cache (rank 0
    encodes it first)."""
    T, D = cfg.train, cfg.data
    if codec_path is None:
        if not cfg.codec.path:
            raise UserError("give the codec run the prior learns the tokens of: --codec RUN")
        codec_path = cfg.codec.path
    codec_ckpt = check_codec_path(codec_path)
    codec_id = checkpoint_id(codec_ckpt)
    if cfg.codec.checkpoint_id and cfg.codec.checkpoint_id != codec_id:
        raise UserError(f"{run_dir} was trained on codec {cfg.codec.checkpoint_id} ({cfg.codec.path}), "
                        f"but {codec_path} is codec {codec_id}")
    codec, codec_cfg = load_model(codec_ckpt, device)
    codec.requires_grad_(False)
    cfg.codec.path = str(Path(codec_ckpt).resolve())
    cfg.codec.checkpoint_id = codec_id

    data_cfg = OmegaConf.merge(codec_cfg.data, {k: D[k] for k in ("root", "size", "crop") if D[k] is not None})
    cache_dir = Path(D.token_cache) if D.token_cache else run_dir / "tokens"
    talk = progress and ctx.is_main

    def token_sets() -> tuple[TokenSet, TokenSet]:
        train_ts, cache, fresh = cached_tokens(codec, codec_id, data_cfg, "train", cache_dir, device,
                                               flip=bool(D.flip), batch_size=int(D.encode_batch), progress=talk)
        if ctx.is_main:
            print(f"{'encoded' if fresh else 'read'} {len(train_ts)} train token grids {train_ts.grid} ({cache})")
        try:
            val_ts, _, _ = cached_tokens(codec, codec_id, data_cfg, "test", cache_dir, device, flip=False,
                                         batch_size=int(D.encode_batch), progress=talk)
        except UserError as e:  # no usable test split: hold out some train images
            train_ts, val_ts = split_validation(train_ts, float(D.val_fraction), int(T.seed))
            if ctx.is_main:
                print(f"no test images ({e}); validating on {len(val_ts)} held-out train grids")
        return train_ts, val_ts

    train_ts, val_ts = main_first(ctx, token_sets)  # rank 0 encodes the cache, the others then read it
    return codec, codec_id, train_ts, val_ts


def _train_prior(cfg: DictConfig, run_dir: Path, codec_path: str | Path | None, ctx: DistContext,
                 device: torch.device, *, resume: bool, progress: bool, stop_at: int | None) -> dict:
    T, D = cfg.train, cfg.data
    use_tb = begin(cfg, ctx)

    codec, codec_id, train_ts, val_ts = _codec_and_tokens(cfg, run_dir, codec_path, ctx, device, progress)

    h, w = train_ts.grid
    m = cfg.model
    m.block_rows = int(m.block_rows or h)
    m.block_cols = int(m.block_cols or w)
    if m.block_rows > h or m.block_cols > w:
        raise UserError(f"the context {m.block_rows}x{m.block_cols} is larger than the token grids {h}x{w}")
    if val_ts.grid[0] < m.block_rows or val_ts.grid[1] < m.block_cols:
        raise UserError(f"test token grids {val_ts.grid} are smaller than the context; match the image sizes")
    m.vocab_size = int(codec.n_embed)
    pcfg = prior_config_of(cfg)
    prior = ContentPrior(pcfg).to(device)

    decay = [p for p in prior.parameters() if p.dim() >= 2]
    no_decay = [p for p in prior.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(T.weight_decay)}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(T.lr), betas=tuple(T.betas),
    )
    n_train, bs, world = len(train_ts), int(T.batch_size), ctx.world_size
    per_epoch = n_train // (bs * world)
    if per_epoch == 0:
        if world == 1:
            raise UserError(f"{n_train} training grids are fewer than train.batch_size={bs}")
        raise UserError(f"{n_train} training grids are fewer than one global batch: train.batch_size={bs} x "
                        f"{world} processes = {bs * world}")
    run = Run(cfg, run_dir, ctx, modules={"model": prior}, optimizers={"opt": opt}, per_epoch=per_epoch,
              tensorboard=use_tb, sync=lambda: {"rng_ranks": gather_objects(ctx, rng_state())},  # each rank's dropout
              fields={"codec_checkpoint_id": codec_id})
    if ctx.enabled and not ctx.is_main:  # the weights are rank 0's (DDP broadcasts them); dropout is per rank
        torch.manual_seed(_rank_seed(int(T.seed), ctx.rank, 0))
    step = 0
    if resume:
        resumed = run.resume(device)
        step = resumed.step
        if ctx.enabled and not ctx.is_main:  # this rank's own dropout stream, for an exact resume
            ranks = resumed.trainer_state.get("rng_ranks")
            if resumed.world_size == world and ranks is not None:
                set_rng_state(ranks[ctx.rank])
            else:
                torch.manual_seed(_rank_seed(int(T.seed), ctx.rank, step))
    run.open_logs(step, resume)

    use_bf16 = bool(T.bf16) and device.type == "cuda"
    tokens = train_ts.tokens
    val_tokens = val_ts.tokens
    loss_sum, n_logged, tokens_seen, last = 0.0, 0, 0, {}
    t0 = time.perf_counter()
    prior.train()
    step_loss = wrap(PriorLoss(prior), ctx, device)
    end = int(T.max_steps) if stop_at is None else min(int(stop_at), int(T.max_steps))
    epoch, batches = -1, []
    with run.loop(step, progress, lambda: step) as bar:
        while step < end:
            e, i = divmod(step, per_epoch)
            if e != epoch:  # which grids a step sees depends only on (seed, world size, step): resume is exact
                epoch, batches = e, epoch_batches(n_train, run.global_batch, int(T.seed), e)
            g = torch.Generator().manual_seed(int(T.seed) * 1_000_003 + step)
            windows = training_windows(tokens[batches[i]], pcfg, D, g)
            if ctx.enabled:  # the global batch's windows, as one process draws them; this rank's shard
                windows = windows[ctx.rank * bs : (ctx.rank + 1) * bs]
            windows = windows.to(device)
            factor = lr_factor(step, int(T.max_steps), T.lr_schedule, int(T.warmup_steps), float(T.min_lr_ratio))
            set_lr(opt, float(T.lr) * factor)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = step_loss(windows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if float(T.grad_clip) > 0:
                torch.nn.utils.clip_grad_norm_(prior.parameters(), float(T.grad_clip))
            opt.step()
            step += 1
            loss_sum += loss.item()
            n_logged += 1
            tokens_seen += windows.numel()
            bar.update(1)

            final = step == int(T.max_steps)
            do_eval = step % int(T.eval_every) == 0 or final
            if step % int(T.log_every) == 0 or do_eval:
                elapsed = time.perf_counter() - t0
                mean_loss = loss_sum / n_logged
                if ctx.enabled:  # the global batch's mean loss and token rate
                    mean_loss = mean_over_ranks(ctx, {"loss": mean_loss}, device)["loss"]
                    tokens_seen *= world
                last = {"step": step, "epoch": step // per_epoch, "lr": float(T.lr) * factor,
                        "loss": mean_loss, "bits_per_token": mean_loss / math.log(2),
                        "tokens_per_s": tokens_seen / elapsed,
                        **({"global_batch": run.global_batch, "world_size": world} if ctx.enabled else {})}
                if do_eval and ctx.is_main:
                    val = evaluate(prior, val_tokens, 2 * bs, use_bf16)
                    last.update({"val_loss": val, "val_bits_per_token": val / math.log(2)})
                    run.sample_sheet(step, lambda path: write_samples(prior, codec, cfg, path))
                    prior.train()
                if ctx.is_main:
                    run.write(last, step)
                    bar.set_postfix(loss=f"{last['loss']:.3f}",
                                    **({"val_bits": f"{last['val_bits_per_token']:.3f}"} if do_eval else {}))
                loss_sum, n_logged, tokens_seen, t0 = 0.0, 0, 0, time.perf_counter()
            if checkpoint_due(step, T.ckpt_every, end):
                run.save(step)
    return last
