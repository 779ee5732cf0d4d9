"""The translation-quality benchmarks: held-out test images with exact ground truth, one table per budget.

    --benchmark scenes   synthetic summer -> winter landscapes, 64 px (`vqi2i data scenes`; 200 held-out scenes
                         drawn in both seasons; no paired rows: the builder draws no shared training scenes)
    --benchmark glyphs   AR PL UMing (Ming) -> AR PL UKai (Kai), 64 px grayscale (`vqi2i data glyphs`)
    --benchmark emoji    Noto Color Emoji -> Twemoji, 64 px RGB (`vqi2i data emoji`)
    --benchmark hei-kai  WenQuanYi Zen Hei (sans) -> AR PL UKai: a pair the recipe was not tuned on
    --benchmark noto-emojione  Noto Color Emoji -> EmojiOne 2: the emoji recipe on a pair it was not tuned on
                         (the PNGs of Debian's ruby-gemojione: apt-get install --no-install-recommends ruby-gemojione)

Builds the data (training sets disjoint between the domains, the benchmark's default; a `paired` row gets
its own copy with shared training sets), trains the domain classifier once, trains every requested row
(a named set of config overrides on the benchmark's config; at most --jobs at a time) for the same number
of steps and batch, runs `vqi2i eval` on each, prints a JSON summary and writes one table (identity
first, then a row per run) into docs/benchmarks.md between markers named by benchmark and --label (a new
block goes at the end of the "Quality tables" section), then rewrites the doc's summaries from the tables
(scripts/docs_figures.py).

    python scripts/bench_quality.py --benchmark glyphs --rows recipe,paired,previous-defaults --steps 1500
    python scripts/bench_quality.py --benchmark emoji --rows recipe,no-content-adv --steps 500 --label ablation
    python scripts/bench_quality.py --benchmark glyphs --rows recipe --steps 20 --num-items 60 --no-docs  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Quality tables"
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Benchmark:
    config: str
    data: list[str]  # `vqi2i data ...` arguments before OUT's options
    items_flag: str  # the builder's option for how many items to render
    what: str


EMOJIONE_PNGS = "/usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/png"  # apt-get install ruby-gemojione

BENCHMARKS = {
    "scenes": Benchmark("configs/scenes64.yaml", ["scenes"], "--n-train",
                        "synthetic summer (A) -> winter (B) landscapes, 64 px, 200 held-out scenes in both seasons"),
    "glyphs": Benchmark("configs/glyphs64.yaml", ["glyphs"], "--num-chars",
                        "AR PL UMing (A) -> AR PL UKai (B), 64 px grayscale"),
    "emoji": Benchmark("configs/emoji64.yaml", ["emoji"], "--num-emoji",
                       "Noto Color Emoji (A) -> Twemoji (B), 64 px RGB on white"),
    "noto-emojione": Benchmark("configs/emoji64.yaml", ["emoji", "--source-b", EMOJIONE_PNGS], "--num-emoji",
                               "Noto Color Emoji (A) -> EmojiOne 2 (B, Debian's ruby-gemojione PNGs), 64 px RGB "
                               "on white"),
    "hei-kai": Benchmark("configs/glyphs64.yaml", ["glyphs", "--font-a", "WenQuanYi Zen Hei"], "--num-chars",
                         "WenQuanYi Zen Hei (A, sans) -> AR PL UKai (B), 64 px grayscale"),
}

# row name -> (what it is, config overrides, training data: "disjoint" or "shared")
ROWS: dict[str, tuple[str, list[str], str]] = {
    "recipe": ("the default recipe, unpaired (multimodal)", [], "disjoint"),
    "paired": ("paired ceiling: shared training sets, paired L1", ["data.kind=paired"], "shared"),
    "unimodal": ("the recipe, unimodal variant", ["model.variant=unimodal"], "disjoint"),
    "no-content-adv": ("recipe without the content adversarial loss", ["loss.content_adv=0"], "disjoint"),
    "no-feat-match": ("recipe without discriminator feature matching", ["loss.feat_match=0"], "disjoint"),
    "no-ema": ("recipe without the moving-average translator", ["train.ema=0"], "disjoint"),
    "batchnorm-disc": ("recipe with taming's batch-norm discriminator", ["disc.norm=batch"], "disjoint"),
    "f4": ("recipe with f = 4 (16x16 tokens)", ["model.ch_mult=[1,2,2]"], "disjoint"),
    "adv-0.1": ("recipe with adversarial weight 0.1", ["loss.adv=0.1"], "disjoint"),
    "cycle": ("recipe plus the cycle-consistency L1 (weight 1)", ["loss.cycle=1"], "disjoint"),
    "codebook-1024": ("recipe with 1024 codes (10 bits a token instead of 7)", ["model.n_embed=1024"], "disjoint"),
    "style-kl-0.1": ("recipe with variational style encoders, KL weight 0.1",
                     ["model.style_vae=true", "loss.style_kl=0.1"], "disjoint"),
    "style-kl-1": ("recipe with variational style encoders, KL weight 1", ["model.style_vae=true", "loss.style_kl=1"],
                   "disjoint"),
    "no-style-kl": ("recipe with plain style encoders (no style KL)", ["model.style_vae=false"], "disjoint"),
    "adv-0.5-no-kl": ("the previous emoji recipe: adversarial weight 0.5, no style KL",
                      ["loss.adv=0.5", "model.style_vae=false"], "disjoint"),
    "recon-ssim": ("recipe plus a (1 - SSIM) reconstruction term, weight 1", ["loss.recon_ssim=1"], "disjoint"),
    "wide-up": ("recipe with 64-channel decoder upsampling stages (32 in the recipe)", ["model.dec_up_ch=64"],
                "disjoint"),
    "f4-recon-ssim": ("recipe with f = 4 (16x16 tokens) and the (1 - SSIM) reconstruction term, weight 1",
                      ["model.ch_mult=[1,2,2]", "loss.recon_ssim=1"], "disjoint"),
    "f4-recon-ssim-3": ("recipe with f = 4 (16x16 tokens) and the (1 - SSIM) reconstruction term at weight 3 (the "
                        "scenes recipe's weight before LeakyReLU style encoders)",
                        ["model.ch_mult=[1,2,2]", "loss.recon_ssim=3"], "disjoint"),
    "paired-f4": ("paired ceiling at f = 4 (16x16 tokens)", ["data.kind=paired", "model.ch_mult=[1,2,2]"], "shared"),
    "f4-adv-0.3": ("recipe with f = 4 (16x16 tokens) and adversarial weight 0.3",
                   ["model.ch_mult=[1,2,2]", "loss.adv=0.3"], "disjoint"),
    "lowpass": ("recipe plus the low-pass term: translation and source average-pooled to 8x8, L1, weight 1",
                ["loss.lowpass=1"], "disjoint"),
    "mode-seek": ("recipe plus mode seeking (hinge at 0.1 pixel L1 per unit of style L1), weight 1",
                  ["loss.mode_seek=1"], "disjoint"),
    "lowpass-mode-seek": ("recipe plus the low-pass term and mode seeking, both weight 1",
                          ["loss.lowpass=1", "loss.mode_seek=1"], "disjoint"),
    "ttur": ("recipe with the discriminators' learning rate 4x the generator's (TTUR: 8e-4 against 2e-4)",
             ["train.disc_lr=8e-4"], "disjoint"),
    "no-content": ("recipe without the latent content regression (a translation, re-encoded, need not give back "
                   "its source's content features)", ["loss.content=0"], "disjoint"),
    "paired-dec128": ("paired ceiling with decoders twice as wide at the token grid (dec_ch 128)",
                      ["data.kind=paired", "model.dec_ch=128"], "shared"),
    "style-path": ("the config plus the scenes style terms unchanged: whitened styles and look transfer (weight 5)",
                   ["model.style_norm=true", "loss.look=5"], "disjoint"),
    "no-recon-ssim": ("lr-2e-4 without the (1 - SSIM) reconstruction term", ["train.lr=2e-4", "loss.recon_ssim=0"],
                      "disjoint"),
    "content-adv-3": ("lr-2e-4 with the content adversarial weight 3 (1 in the recipe)",
                      ["train.lr=2e-4", "loss.content_adv=3"], "disjoint"),
    "content-tokens": ("lr-2e-4 plus the token cross-entropy: a translation encoded again must pick its source's "
                       "codes (weight 1)", ["train.lr=2e-4", "loss.content_tokens=1"], "disjoint"),
    "lr-2e-4": ("the recipe at the translator's previous learning rate 2e-4 (6e-4 in the scenes recipe; the "
                "discriminators' stays 2e-4)", ["train.lr=2e-4"], "disjoint"),
    "lr-1e-3": ("the recipe at the translator's learning rate 1e-3 (6e-4 in the recipe)", ["train.lr=1e-3"],
                "disjoint"),
    "disc-lr-6e-4": ("the recipe with the discriminators' learning rate 6e-4 too (2e-4 in the recipe)",
                     ["train.disc_lr=6e-4"], "disjoint"),
    "tokens-0.3": ("recipe plus the token cross-entropy at weight 0.3", ["loss.content_tokens=0.3"], "disjoint"),
    "disc-start-300": ("the recipe with the adversarial terms from step 300 (reconstruction and style terms alone "
                       "before)", ["train.disc_start=300"], "disjoint"),
    "style-encoded": ("the recipe plus the latent regression of the encoded (exemplar) styles, weight 1 (StarGAN v2's "
                      "style reconstruction with reference styles)", ["loss.style_encoded=1"], "disjoint"),
    "disc-layers-2": ("the recipe with two-layer PatchGANs (34-px patches at the full scale, 70 px in the recipe): "
                      "the full-scale critic judges local texture, the half-scale one the whole picture",
                      ["disc.n_layers=2"], "disjoint"),
    "adv-0.25": ("the recipe with adversarial weight 0.25 (0.5 in the scenes recipe)", ["loss.adv=0.25"], "disjoint"),
    "recon-ssim-3": ("recipe plus the (1 - SSIM) reconstruction term at weight 3",
                     ["loss.recon_ssim=3"], "disjoint"),
    "recon-ssim-3-seed-1": ("recon-ssim-3 trained from seed 1", ["loss.recon_ssim=3", "train.seed=1"], "disjoint"),
    "recon-ssim-8": ("the recipe with the (1 - SSIM) reconstruction term at weight 8 (5 in the scenes recipe): does "
                     "the codec reach SSIM 0.92 in both seasons at the benchmark budget?", ["loss.recon_ssim=8"],
                     "disjoint"),
    "relu": ("the recipe with ReLU style encoders (`model.style_act=relu`, LeakyReLU 0.2 in the scenes recipe)",
             ["model.style_act=relu"], "disjoint"),
    "relu-seed-1": ("relu trained from seed 1", ["model.style_act=relu", "train.seed=1"], "disjoint"),
    "relu-mode-seek": ("relu plus mode seeking (hinge at 0.1 pixel L1 per unit of style L1), weight 1: a guard "
                       "against the ReLU style encoder's collapse",
                       ["model.style_act=relu", "loss.mode_seek=1"], "disjoint"),
    "relu-mode-seek-seed-1": ("relu-mode-seek trained from seed 1",
                              ["model.style_act=relu", "loss.mode_seek=1", "train.seed=1"], "disjoint"),
    "paired-relu-mode-seek": ("paired ceiling on relu-mode-seek",
                              ["data.kind=paired", "model.style_act=relu", "loss.mode_seek=1"], "shared"),
    "relu-recon-ssim-3": ("the previous scenes recipe: ReLU style encoders and the (1 - SSIM) reconstruction term at "
                          "weight 3", ["model.style_act=relu", "loss.recon_ssim=3"], "disjoint"),
    "relu-recon-ssim-3-seed-1": ("relu-recon-ssim-3 trained from seed 1",
                                 ["model.style_act=relu", "loss.recon_ssim=3", "train.seed=1"], "disjoint"),
    "relu-recon-ssim-3-mode-seek": ("relu-recon-ssim-3 plus mode seeking, weight 1",
                                    ["model.style_act=relu", "loss.recon_ssim=3", "loss.mode_seek=1"], "disjoint"),
    "paired-relu-recon-ssim-3": ("paired ceiling on relu-recon-ssim-3",
                                 ["data.kind=paired", "model.style_act=relu", "loss.recon_ssim=3"], "shared"),
    "relu-recon-ssim-1": ("relu with the (1 - SSIM) reconstruction term at weight 1: the scenes recipe before weight "
                          "3, which the other scenes levers were tried on",
                          ["model.style_act=relu", "loss.recon_ssim=1"], "disjoint"),
    "relu-recon-ssim-1-seed-1": ("relu-recon-ssim-1 trained from seed 1",
                                 ["model.style_act=relu", "loss.recon_ssim=1", "train.seed=1"], "disjoint"),
    "dec-ch-128": ("the recipe with decoders twice as wide at the token grid (dec_ch 128, 64 in the scenes recipe)",
                   ["model.dec_ch=128"], "disjoint"),
    "recipe-seed-1": ("the recipe trained from another seed (1; every other row: 0): the spread between two draws",
                      ["train.seed=1"], "disjoint"),
    "disc-ndf-32-seed-1": ("disc-ndf-32 trained from seed 1", ["disc.ndf=32", "train.seed=1"], "disjoint"),
    "disc-ndf-32": ("the recipe with discriminators twice as wide (ndf 32, 16 in the scenes recipe)", ["disc.ndf=32"],
                    "disjoint"),
    "cosine-codes": ("the recipe with l2-normalised codes and encodings (cosine nearest code, ViT-VQGAN)",
                     ["model.codebook.metric=cosine"], "disjoint"),
    "codebook-512": ("no-recon-ssim with 512 codes (9 bits a token instead of 7)",
                     ["train.lr=2e-4", "loss.recon_ssim=0", "model.n_embed=512"], "disjoint"),
    "no-look": ("recipe without the look-transfer terms (whitened styles only)",
                ["loss.look=0"], "disjoint"),
    "no-style-norm": ("recipe without whitened styles (look transfer only)", ["model.style_norm=false"], "disjoint"),
    "previous-recipe": ("the recipe before the style-path fix: no look transfer, styles not whitened, encoded styles "
                        "regressed too", ["model.style_norm=false", "loss.look=0", "loss.style_encoded=1"], "disjoint"),
    "previous-defaults": (
        "vqi2i's previous glyph config (f = 4, adv 0.1, batch-norm disc., no content adv., no FM, no EMA)",
        ["model.ch_mult=[1,2,2]", "loss.adv=0.1", "loss.content=1.0", "disc.norm=batch", "loss.content_adv=0",
         "loss.feat_match=0", "train.ema=0"],
        "disjoint",
    ),
}


def data_kinds(rows: list[str]) -> list[str]:
    """The training data the rows need, "disjoint" always: the one judge of every row is trained on it (a
    command with only paired rows must not judge them by a classifier of the shared data)."""
    return sorted({ROWS[r][2] for r in rows} | {"disjoint"})


def start(args: list[str], log: Path, threads: int | None) -> tuple[subprocess.Popen, float]:
    """Start one `vqi2i` command, its output going to a log file."""
    print("$ vqi2i " + " ".join(args), flush=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    with open(log, "a") as f:
        f.write("$ vqi2i " + " ".join(args) + "\n")
        f.flush()
        proc = subprocess.Popen([sys.executable, "-m", "vqi2i.cli", *args], cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT, env=env)
    return proc, time.perf_counter()


def finish(started: tuple[subprocess.Popen, float], log: Path) -> float:
    """Wait for a started command; its wall time in seconds. Stops the benchmark on failure."""
    proc, t0 = started
    rc = proc.wait()
    if rc != 0:
        sys.exit(f"bench_quality: `vqi2i {' '.join(proc.args[3:5])}` failed (exit {rc}); see {log}")
    seconds = time.perf_counter() - t0
    print(f"  done: vqi2i {' '.join(proc.args[3:5])} in {seconds:.1f} s", flush=True)
    return seconds


def vqi2i(*args: str, log: Path, threads: int | None = None) -> float:
    return finish(start(list(args), log, threads), log)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}"


def fmt(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _get(report: dict, direction: str, *keys):
    node = report["directions"].get(direction, {})
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def logged_minutes(run: Path) -> float:
    """Training time of a finished run from its metrics.jsonl (each line: steps since the last / steps per s)."""
    total, last = 0.0, 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        total += (rec["step"] - last) / max(rec.get("steps_per_s", 0.0), 1e-9)
        last = rec["step"]
    return total / 60


def row_seed(row: str, default: int) -> int:
    """The seed a row trains with: its own (a `train.seed=N` override: the same recipe from another draw), else the
    command's --seed (evaluation always uses the command's, so every row is scored on the same random styles)."""
    seeds = [int(o.split("=", 1)[1]) for o in ROWS[row][1] if o.startswith("train.seed=")]
    return seeds[-1] if seeds else default


def current_eval(report: Path, steps: int, seed: int) -> bool:
    """Whether an eval.json scored the checkpoint at `steps` with `seed` and has every metric the table's
    targets need (the reconstructions' content kept, added later, shows as "–" where it is missing)."""
    if not report.is_file():
        return False
    r = json.loads(report.read_text())
    return (r.get("step") == steps and r.get("seed") == seed
            and all("retrieval" in d for d in r.get("directions", {}).values()) and bool(r.get("directions")))


# settings that do not change what is learnt: left out when a reused run's config is compared with its recipe
NEUTRAL = {"name", "data.root", "train.ckpt_every", "train.image_every", "train.log_every", "train.device",
           "train.keep_checkpoints", "train.tensorboard", "codec.path", "data.cache_dir"}


def flat(d: dict, prefix: str = "") -> dict[str, object]:
    """A nested mapping as {"dotted.key": value}."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_drift(saved: dict, wanted: dict) -> list[str]:
    """The dotted keys where a finished run's saved config differs from what its recipe would train now; NEUTRAL
    is left out. Only the saved keys are compared: complete an older config with today's defaults first
    (`vqi2i.config.from_yaml_text`), so that an option added since counts with the default the run used."""
    have, want = flat(saved), flat(wanted)
    return sorted(k for k in have if k not in NEUTRAL and want.get(k) != have[k])


def table(reports: dict[str, dict], minutes: dict[str, float]) -> str:
    """Identity first, then one line per row: ground-truth scores, content kept, style accuracy, diversity,
    token agreement."""
    dirs = ("a_to_b", "b_to_a")
    head = ("| row | SSIM A→B ↑ | SSIM B→A ↑ | nearer A→B ↑ | nearer B→A ↑ | kept A→B ↑ | kept B→A ↑ | L1 A→B ↓ | "
            "L1 B→A ↓ | style acc. A→B | style acc. B→A | diversity A→B | diversity B→A | same token | "
            "same token, one season, another look A / B | "
            "tokens kept A→B / B→A ↑ | recon. kept A / B | colour err. A→B / B→A ↓ | recon. colour err. A / B ↓ | "
            "guided SSIM A→B / B→A ↑ | "
            "style follow A→B / B→A ↑ | style follow L1 A→B / B→A ↑ | style spread A / B | codec SSIM A / B ↑ | "
            "train min |")
    lines = [head, "|" + " --- |" + " ---: |" * 24]
    first = next(iter(reports.values()))
    ident = [fmt(_get(first, d, "identity", "ssim")) for d in dirs] + ["0", "0"] \
        + [fmt(_get(first, d, "retrieval", "identity"), 2) for d in dirs] \
        + [fmt(_get(first, d, "identity", "l1")) for d in dirs]
    def identity_colour(d: str) -> float | None:  # the first row evaluated since the score was added
        return next((v for r in reports.values() if (v := _get(r, d, "identity", "coarse_l1")) is not None), None)

    ident_colour = " / ".join(fmt(identity_colour(d)) for d in dirs)
    lines.append("| identity (no translation) | " + " | ".join(ident)
                 + f" | – | – | 0 | 0 | – | – | 1 / 1 | – | {ident_colour} | – | {' / '.join(ident[:2])} | 0"
                 + " | 0 | – | – | – |")
    for name, r in reports.items():
        cells = [fmt(_get(r, d, "ground_truth", "ssim")) for d in dirs]
        cells += [fmt(_get(r, d, "nearer_than_input"), 2) for d in dirs]
        cells += [fmt(_get(r, d, "retrieval", "output"), 2) for d in dirs]
        cells += [fmt(_get(r, d, "ground_truth", "l1")) for d in dirs]
        cells += [fmt(_get(r, d, "style_accuracy"), 2) for d in dirs]
        cells += [fmt(_get(r, d, "diversity", "pixel_l1"), 4) for d in dirs]
        rec = r.get("reconstruction", {})
        kept = " / ".join(fmt(rec.get(d, {}).get("kept"), 2) for d in "ab")
        colour = " / ".join(fmt(_get(r, d, "ground_truth", "coarse_l1")) for d in dirs)
        rec_colour = " / ".join(fmt(rec.get(d, {}).get("coarse_l1")) for d in "ab")
        guided = " / ".join(fmt(_get(r, d, "guided", "ssim")) for d in dirs)
        follow = " / ".join(fmt(_get(r, d, "style_follow", "ssim")) for d in dirs)
        follow_l1 = " / ".join(fmt(_get(r, d, "style_follow", "l1")) for d in dirs)
        spread = " / ".join(fmt(r.get("style", {}).get(d, {}).get("spread"), 2) for d in "ab")
        codec = " / ".join(fmt(rec.get(d, {}).get("ssim")) for d in "ab")
        tokens_kept = " / ".join(fmt(_get(r, d, "tokens_kept"), 2) for d in dirs)
        looks = r["codebook"].get("token_agreement_across_looks") or {}
        cells += [fmt(r["codebook"].get("token_agreement")), " / ".join(fmt(looks.get(d), 2) for d in "ab"),
                  tokens_kept, kept, colour, rec_colour, guided, follow,
                  follow_l1, spread, codec, fmt(minutes.get(name), 1)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scenes_follow_ceiling(data_root: Path) -> dict[str, dict[str, float]] | None:
    """For a scenes data set (its scenes.json): the style follow (guided minus shuffled-exemplar SSIM, and shuffled
    minus guided L1, as `vqi2i eval` scores it) of a perfect translator, which draws each test scene with its
    exemplar's look, per target domain: {domain: {"ssim": .., "l1": ..}}; None for other data. The looks of one
    season differ by time of day, tint, brightness and haze only."""
    from vqi2i.data.scenes import test_scenes_with_looks

    own, other = test_scenes_with_looks(data_root, 0), test_scenes_with_looks(data_root, 1)
    if own is None or other is None:
        return None
    # imported here: the scenes' ceiling is the one thing this script computes itself
    from vqi2i.eval.metrics import paired_scores
    from vqi2i.images import from_uint8

    scores = {d: paired_scores(from_uint8(other[d]), from_uint8(own[d])) for d in "ab"}
    return {d: {"ssim": 1.0 - float(sc["ssim"].mean()), "l1": float(sc["l1"].mean())} for d, sc in scores.items()}


def curve_points(steps: int, every: int | None) -> list[int]:
    """The checkpoints a learning curve scores: every `every` steps, and the last."""
    return sorted(set(range(every, steps, every)) | {steps}) if every else [steps]


def curve_table(curves: dict[str, dict[int, dict]], reports: dict[str, dict]) -> str:
    """One line per row and checkpoint: the ground-truth scores against the step, identity first."""
    dirs = ("a_to_b", "b_to_a")
    lines = ["| row | step | SSIM A→B ↑ | SSIM B→A ↑ | nearer A→B ↑ | nearer B→A ↑ | L1 A→B ↓ | L1 B→A ↓ | "
             "style acc. A→B | style acc. B→A |", "|" + " --- |" * 2 + " ---: |" * 8]
    first = next(iter(reports.values()))
    lines.append("| identity | – | " + " | ".join([fmt(_get(first, d, "identity", "ssim")) for d in dirs] + ["0", "0"]
                                                   + [fmt(_get(first, d, "identity", "l1")) for d in dirs])
                 + " | – | – |")
    for row, points in curves.items():
        for step, r in sorted(points.items()):
            cells = [fmt(_get(r, d, "ground_truth", "ssim")) for d in dirs]
            cells += [fmt(_get(r, d, "nearer_than_input"), 2) for d in dirs]
            cells += [fmt(_get(r, d, "ground_truth", "l1")) for d in dirs]
            cells += [fmt(_get(r, d, "style_accuracy"), 2) for d in dirs]
            lines.append(f"| {row} | {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(block: str, key: str) -> None:
    """Put `block` between this key's markers inside the quality section; create what is missing."""
    start_m, end_m = f"<!-- bench_quality:{key} start -->", f"<!-- bench_quality:{key} end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    marked = f"{start_m}\n{block}\n{end_m}"
    if start_m in text and end_m in text:
        text = text[: text.index(start_m)] + marked + text[text.index(end_m) + len(end_m):]
    elif SECTION in text:
        at = text.index(SECTION) + len(SECTION)
        nxt = text.find("\n## ", at)
        at = len(text) if nxt < 0 else nxt
        text = text[:at].rstrip("\n") + "\n\n" + marked + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{marked}\n"
    tmp = DOCS.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, DOCS)


def refresh_summaries() -> None:
    """Rewrite docs/benchmarks.md's current-figures and screening tables from its tables (scripts/docs_figures.py);
    a failure there only prints a note, so that a finished benchmark is never lost to it."""
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("docs_figures.py")), "--doc", str(DOCS)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"note: the summaries were not rewritten ({why}); run python scripts/docs_figures.py")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="glyphs")
    p.add_argument("--rows", default="recipe,paired", help=f"comma-separated rows: {', '.join(ROWS)}")
    p.add_argument("--steps", type=int, default=1500, help="training steps per row (default: %(default)s)")
    p.add_argument("--batch-size", type=int, help="override train.batch_size")
    p.add_argument("--num-items", type=int, help="characters / emoji to render, train + test (builder's default)")
    p.add_argument("--out", type=Path, help="work folder (default: out/bench_<benchmark>)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="rows trained at once (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per command; 0: torch's default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true",
                   help="keep a row's finished run (its checkpoint at --steps) instead of training it again")
    p.add_argument("--reuse-eval", action="store_true",
                   help="with --reuse: also keep a reused row's eval.json when it scored that final checkpoint "
                        "with this version's metrics (evaluation is deterministic for a --seed)")
    p.add_argument("--label", default="cpu", help="names this table's block in docs (default: %(default)s)")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    p.add_argument("--curve", type=int, metavar="N",
                   help="keep a checkpoint every N steps and score each one too: a learning curve per row")
    p.add_argument("--add-report", action="append", default=[], metavar="NAME=EVAL_JSON",
                   help="add a row from an existing `vqi2i eval` report on this benchmark's test set (e.g. a built-in "
                        "model: `vqi2i eval --checkpoint scenes --data DATA --out R.json`); repeatable")
    args = p.parse_args()
    added = {}
    for item in args.add_report:
        name, _, path = item.partition("=")
        if not name or not Path(path).is_file():
            sys.exit(f"bench_quality: --add-report wants NAME=EVAL_JSON with an existing file, got {item!r}")
        added[name] = json.loads(Path(path).read_text())
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"bench_quality: unknown row {unknown[0]!r}; rows: {', '.join(ROWS)}")
    if args.curve is not None and not 0 < args.curve < args.steps:
        sys.exit(f"bench_quality: --curve must be between 1 and --steps - 1 ({args.steps - 1}), got {args.curve}")
    curve_steps = curve_points(args.steps, args.curve)

    bench = BENCHMARKS[args.benchmark]
    if args.benchmark == "noto-emojione" and not Path(EMOJIONE_PNGS).is_dir():
        sys.exit(f"bench_quality: the EmojiOne PNGs are not installed ({EMOJIONE_PNGS}): "
                 "apt-get install --no-install-recommends ruby-gemojione")
    out = (args.out or ROOT / "out" / f"bench_{args.benchmark}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    threads = args.threads or None
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    data = {"disjoint": out / "data", "shared": out / "data_shared"}
    needed = data_kinds(rows)
    for kind in needed:
        cmd = ["data", *bench.data, str(data[kind]), "--seed", str(args.seed), "--overwrite"]
        if args.num_items:
            cmd += [bench.items_flag, str(args.num_items)]
        if kind == "shared":
            cmd.append("--shared-train")
        if not (args.reuse and data[kind].is_dir()):
            times[f"data_{kind}"] = vqi2i(*cmd, log=log)
    # one classifier, trained on the disjoint data's training images, judges every row
    judge_data = data["disjoint"]
    if not (args.reuse and (judge_data / "domain_classifier.safetensors").is_file()):
        times["classifier"] = vqi2i("train-classifier", "--data", str(judge_data), "--seed", str(args.seed),
                                    "--device", args.device, "--no-progress", "--overwrite", log=log, threads=threads)
    if "shared" in needed:
        for f in judge_data.glob("domain_classifier.*"):
            (data["shared"] / f.name).write_bytes(f.read_bytes())

    def train_cmd(row: str) -> list[str]:
        _, overrides, kind = ROWS[row]
        ov = [f"data.root={data[kind]}", f"train.max_steps={args.steps}", f"name={args.benchmark}-{row}",
              f"train.ckpt_every={args.curve or args.steps}", *overrides]
        if args.curve:
            ov.append("train.keep_checkpoints=0")  # every checkpoint of the curve stays
        if args.batch_size:
            ov.append(f"train.batch_size={args.batch_size}")
        return ["train", str(ROOT / bench.config), *ov, "--out", str(out / row), "--overwrite", "--device",
                args.device, "--seed", str(row_seed(row, args.seed)), "--no-progress"]

    def done(row: str) -> bool:
        state = out / row / "checkpoints" / f"step-{args.steps:07d}" / "state.json"
        return args.reuse and state.is_file()

    queue = [r for r in rows if not done(r)]
    reused = [r for r in rows if r not in queue]
    from omegaconf import OmegaConf

    from vqi2i.config import from_yaml_text, load_config

    drift = {}  # a reused run trained with settings its row no longer has (the config file changed since)
    for row in reused:
        ov = [i for i in train_cmd(row) if "=" in i]
        ov += [f"train.device={args.device}", f"train.seed={row_seed(row, args.seed)}"]
        saved = OmegaConf.to_container(from_yaml_text(
            (out / row / "checkpoints" / f"step-{args.steps:07d}" / "config.yaml").read_text()), resolve=True)
        wanted = OmegaConf.to_container(load_config(ROOT / bench.config, ov), resolve=True)
        have, want = flat(saved), flat(wanted)
        diff = [f"{k}: run {have[k]}, now {want.get(k)}" for k in config_drift(saved, wanted)]
        if diff:
            drift[row] = diff
            print(f"note: the reused run of row {row!r} differs from the row's config now: {'; '.join(diff)}")
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    while queue or running:
        while queue and len(running) < args.jobs:
            row = queue.pop(0)
            running[row] = start(train_cmd(row), out / f"train_{row}.txt", threads)
        finished = None
        while finished is None:
            finished = next((r for r, (proc, _) in running.items() if proc.poll() is not None), None)
            if finished is None:
                time.sleep(2)
        times[f"train_{finished}"] = finish(running.pop(finished), out / f"train_{finished}.txt")

    def evaluate(ckpt: Path, data_dir: Path, report: Path) -> float:
        return vqi2i("eval", "--checkpoint", str(ckpt), "--data", str(data_dir), "--out", str(report), "--device",
                     args.device, "--seed", str(args.seed), "--overwrite", "--no-progress", log=log, threads=threads)

    reports = {}
    for row in rows:
        kind = ROWS[row][2]
        report = out / row / "eval.json"
        if args.reuse_eval and row in reused and current_eval(report, args.steps, args.seed):
            reports[row] = json.loads(report.read_text())
            continue
        times[f"eval_{row}"] = evaluate(out / row, data[kind], report)
        reports[row] = json.loads(report.read_text())
    curves: dict[str, dict[int, dict]] = {}
    for row in rows:
        kind = ROWS[row][2]
        curves[row] = {args.steps: reports[row]}
        for step in curve_steps[:-1]:
            ckpt = out / row / "checkpoints" / f"step-{step:07d}"
            if not ckpt.is_dir():
                sys.exit(f"bench_quality: {ckpt} is missing: train the row again with --curve {args.curve}")
            report = out / row / f"eval-step{step}.json"
            if not (args.reuse_eval and current_eval(report, step, args.seed)):
                times[f"eval_{row}_{step}"] = evaluate(ckpt, data[kind], report)
            curves[row][step] = json.loads(report.read_text())
    total = time.perf_counter() - t_all

    batch = args.batch_size or int(OmegaConf.load(ROOT / bench.config).train.batch_size)
    manifest = next(iter(sorted(data["disjoint"].glob("*.json"))), None)
    counts = json.loads(manifest.read_text()) if manifest else {}
    minutes = {r: times[f"train_{r}"] / 60 if f"train_{r}" in times else logged_minutes(out / r) for r in rows}
    reports.update(added)
    summary = {
        "benchmark": args.benchmark, "machine": machine(), "device": args.device, "steps": args.steps,
        "batch_size": batch, "rows": {r: ROWS[r][0] for r in rows}, "data": counts, "config_drift": drift,
        "wall_s": {k: round(v, 1) for k, v in times.items()} | {"total": round(total, 1)},
        "results": {r: {"directions": rep["directions"], "codebook": rep["codebook"],
                        "classifier_test_accuracy": rep["classifier"]["test_accuracy"]}
                    for r, rep in reports.items()},
    }
    print(json.dumps(summary, indent=1))

    acc = fmt(next(iter(reports.values()))["classifier"]["test_accuracy"])
    ceiling = scenes_follow_ceiling(data["disjoint"]) if args.benchmark == "scenes" else None
    block = "\n".join([
        f"### {args.benchmark}, {args.label}: {args.steps} steps per row, batch {batch}",
        "",
        (f"{bench.what}. Machine: {summary['machine']}; device {args.device}; up to {args.jobs} row(s) trained at "
         f"once by this command, {args.threads} torch thread(s) each. Wall time {total / 60:.1f} min in all"
         if rows else f"{bench.what}. Nothing trained by this command: the rows are existing evaluation reports")
        + (f" (rows reused from earlier runs with --reuse: {', '.join(reused)}; their train min comes from their "
           "logs and includes whatever else shared the machine then)." if reused else "."),
        *([("Reused runs trained with settings their row no longer has (the config file changed since): "
            + "; ".join(f"**{r}**: {', '.join(d)}" for r, d in drift.items()) + ".")] if drift else []),
        f"Command: `python scripts/bench_quality.py --benchmark {args.benchmark} "
        f"--rows {','.join(rows) or chr(34) * 2} "
        f"--steps {args.steps} --label {args.label}"
        + (f" --batch-size {args.batch_size}" if args.batch_size else "")
        + (f" --num-items {args.num_items}" if args.num_items else "")
        + (f" --curve {args.curve}" if args.curve else "")
        + "".join(f" --add-report {item}" for item in args.add_report) + "`.",
        "Rows: " + "; ".join([f"**{r}**: {ROWS[r][0]}" for r in rows]
                             + [f"**{n}**: `vqi2i eval` report {p.partition('=')[2]} of "
                                f"{Path(added[n].get('checkpoint') or '?').name}, scored on the same test set, trained "
                                "elsewhere (train min: –)" for n, p in zip(added, args.add_report)]) + ".",
        f"Training sets: disjoint between the domains (no item in both trainA and trainB) except the paired row's. "
        f"Domain classifier accuracy on the real test images: {acc}. nearer = share of outputs nearer (SSIM) "
        f"their ground truth than their own input; kept = share of outputs whose most correlated test ground truth "
        f"(images blurred, sigma 1.5 px) is their own, the content-kept check texture cannot fake; "
        f"diversity = mean pairwise pixel L1 between 4 random styles; recon. kept = content kept by the codec's own "
        f"reconstructions (each domain's test images against themselves): how much of each item the tokens hold; "
        f"colour err. = L1 between images average-pooled to 8×8 cells (colour and layout, blind to fine detail), "
        f"of the translations against their ground truth and of the reconstructions against their inputs.",
        *([f"A translator that draws each scene with its exemplar's look exactly would score style follow "
           f"{ceiling['b']['ssim']:.3f} (A→B) / {ceiling['a']['ssim']:.3f} (B→A) here, and style follow L1 "
           f"{ceiling['b']['l1']:.3f} / {ceiling['a']['l1']:.3f}: the looks of one season differ by time of day, "
           "tint, brightness and haze only, which SSIM weighs little and L1 more."] if ceiling else []),
        f"Sample sheets: `{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/<row>/eval-samples.png`.",
        "",
        table(reports, minutes),
        *(["", f"Learning curve (checkpoints of the same runs every {args.curve} steps; the learning rate follows "
           f"one {args.steps}-step schedule, so step {curve_steps[0]} is not a {curve_steps[0]}-step run):", "",
           curve_table(curves, reports)] if args.curve else []),
    ])
    if not args.no_docs:
        write_docs(block, f"{args.benchmark}:{args.label}")
        print(f"wrote the table to {DOCS}")
        refresh_summaries()
    return 0


if __name__ == "__main__":
    sys.exit(main())
