#!/usr/bin/env python
"""The two summary tables of docs/benchmarks.md, generated from where their figures are measured, so that no
figure is typed twice and the summaries cannot disagree with the tables they summarise:

- "Current figures" (between `<!-- docs_figures start -->` and `<!-- docs_figures end -->`): per benchmark and
  direction, identity, the paired ceilings, the recipe, the built-in model and the released code where measured;
- "Screening history" (between `<!-- docs_figures:screening start -->` and `... end -->`): every lever screened,
  its row against the row it changes, and whether the recipe kept it.

The sources: the tables `scripts/bench_quality.py` writes into docs/benchmarks.md (between
`<!-- bench_quality:BENCHMARK:LABEL start -->` and `... end -->`; each a markdown table whose header names the
columns), the built-in models' cards (vqi2i/builtin/models/NAME/card.yaml) where no table has a built-in model's
row, and docs/recorded_figures.yaml for figures measured by commands that write no table.

    python scripts/docs_figures.py           # rewrite both tables in docs/benchmarks.md
    python scripts/docs_figures.py --check   # exit 1 if the doc's tables differ from what this would write
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
CARDS = ROOT / "vqi2i" / "builtin" / "models"
RECORDED = ROOT / "docs" / "recorded_figures.yaml"
MARKS = ("<!-- docs_figures start -->", "<!-- docs_figures end -->")
SCREEN_MARKS = ("<!-- docs_figures:screening start -->", "<!-- docs_figures:screening end -->")
BLOCK_RE = re.compile(r"<!-- bench_quality:(\S+) start -->\n(.*?)\n<!-- bench_quality:\1 end -->", re.S)
IDENTITY = "identity (no translation)"
DIRECTIONS = ("A→B", "B→A")
NONE = "–"

# The benchmarks of the summary, in order, and the block each one's identity, paired and recipe rows come from.
BENCHMARKS = ("scenes", "glyphs", "emoji", "hei-kai", "noto-emojione")
# The row that was trained with the config as it is now, where that is not the row named `recipe`: those `recipe`
# rows predate the config's last change (the block's drift line says so where the block has one). A name missing
# from its block falls back to `recipe` (a block written again trains or names its recipe afresh).
CURRENT_RECIPE = {"glyphs:cpu": "lowpass", "hei-kai:cpu": "lowpass", "emoji:cpu": "recon-ssim",
                  "noto-emojione:cpu": "recon-ssim"}
# The summary's columns: (title, the tables' column, how a direction picks its cell). "dir": the column has one
# cell per direction ("SSIM A→B"); "pair": one cell "A→B value / B→A value"; "target": one cell "A / B" per
# domain, of which a direction takes its target domain's; "one": one cell for both directions.
COLUMNS = (("SSIM ↑", "SSIM", "dir"), ("nearer ↑", "nearer", "dir"), ("style acc.", "style acc.", "dir"),
           ("diversity", "diversity", "dir"), ("guided SSIM ↑", "guided SSIM", "pair"),
           ("style follow ↑", "style follow", "pair"), ("style follow L1 ↑", "style follow L1", "pair"),
           ("style spread", "style spread", "target"),
           ("codec SSIM ↑", "codec SSIM", "target"), ("same token", "same token", "one"))
# A card's figure for each column: (key under eval, digits; under eval.DIRECTION unless per domain or global).
CARD_KEYS = {"SSIM": ("ssim", 3), "nearer": ("nearer_than_input", 2), "style acc.": ("style_accuracy", 2),
             "diversity": ("diversity_l1", 4), "guided SSIM": ("guided_ssim", 3),
             "style follow": ("style_follow_ssim", 3), "style follow L1": ("style_follow_l1", 3),
             "style spread": ("style_spread", 2),
             "codec SSIM": ("codec_ceiling_ssim", 3), "same token": ("same_item_same_token", 3)}


@dataclass
class Block:
    """One source table: its rows by name, each a mapping from column name (arrows dropped) to cell."""

    key: str
    steps: int | None = None
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    drift: set[str] = field(default_factory=set)  # rows trained with other settings than their row has now
    benchmark: str | None = None  # a recorded table's benchmark (a bench_quality block's key names its own)


def _column(name: str) -> str:
    return name.replace("↑", "").replace("↓", "").strip()


def parse_block(key: str, body: str) -> Block:
    """A bench_quality block: its step count, its drift line's rows, and its tables' rows. A learning curve's
    rows (a `step` column) are named `ROW@STEP`."""
    block = Block(key)
    if m := re.search(r"^### .*?: (\d+) steps per row", body, re.M):
        block.steps = int(m.group(1))
    for line in body.splitlines():
        if line.startswith("Reused runs trained with settings their row no longer has"):
            block.drift = set(re.findall(r"\*\*([^*]+)\*\*:", line))
    header: list[str] | None = None
    for line in body.splitlines() + [""]:
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [_column(c) for c in cells]
        elif not set(cells[0]) <= {"-", ":", " "}:
            row = dict(zip(header, cells))
            name = row["row"] + (f"@{row['step']}" if "step" in row and row["step"] != NONE else "")
            block.rows[name] = row
    return block


def parse_blocks(text: str) -> dict[str, Block]:
    """Every bench_quality block of a document, by key ("glyphs:cpu")."""
    return {m.group(1): parse_block(m.group(1), m.group(2)) for m in BLOCK_RE.finditer(text)}


def load_recorded(path: Path = RECORDED) -> dict[str, Block]:
    """docs/recorded_figures.yaml as blocks keyed `recorded:NAME`."""
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return {f"recorded:{name}": Block(f"recorded:{name}", entry.get("steps"),
                                      {row: {k: str(v) for k, v in cells.items()} | {"row": row}
                                       for row, cells in entry["rows"].items()}, benchmark=entry.get("benchmark"))
            for name, entry in (data or {}).items()}


def load_cards(folder: Path = CARDS) -> dict[str, dict]:
    """The built-in translators' cards, by name."""
    cards = {}
    for path in sorted(folder.glob("*/card.yaml")):
        card = yaml.safe_load(path.read_text())
        if card.get("kind") == "translator":
            cards[card["name"]] = card
    return cards


def _split(cell: str, index: int) -> str:
    parts = [p.strip() for p in cell.split(" / ")]
    return parts[index] if len(parts) == 2 else parts[0]


def cell(row: dict[str, str], column: str, how: str, direction: str) -> str:
    """A row's figure for one summary column and direction; "–" where the table lacks it."""
    i = DIRECTIONS.index(direction)
    if how == "dir":
        return row.get(f"{column} {direction}", NONE)
    if how == "one":
        return row.get(column, NONE)
    for name, value in row.items():
        if name.startswith(column + " ") and " / " in name:
            return _split(value, i if how == "pair" else 1 - i)  # "target": A→B lands in B
    return NONE


def card_cell(card: dict, column: str, how: str, direction: str) -> str:
    """A card's figure for one summary column and direction, rounded as the tables round that column."""
    key, digits = CARD_KEYS[column]
    ev = card.get("eval", {})
    d = "a_to_b" if direction == "A→B" else "b_to_a"
    if how == "target":
        value = ev.get(key, {}).get("b" if direction == "A→B" else "a")
    elif how == "one":
        value = ev.get(key)
    else:
        value = ev.get(d, {}).get(key)
    return NONE if value is None else f"{value:.{digits}f}"


def recipe_row(block: Block) -> str:
    """The row of a block trained with its benchmark's config as it is now."""
    name = CURRENT_RECIPE.get(block.key)
    return name if name in block.rows else "recipe"


def _source(block: Block, row: str) -> str:
    stale = " (trained before its config's last change)" if row in block.drift else ""
    return f"{block.key}, `{row}`{stale}"


def summary_rows(blocks: dict[str, Block], cards: dict[str, dict], recorded: dict[str, Block]) -> list[list[str]]:
    """The current-figures rows: per benchmark and direction, identity, paired ceilings, recipe, built-in
    models, the released code."""
    out = []
    for bench in BENCHMARKS:
        main = blocks.get(f"{bench}:cpu")
        if main is None:
            continue
        sources = [b for b in (main, blocks.get(f"{bench}:builtin")) if b is not None]
        picked: list[tuple[str, Block | None, str]] = [("identity", main, IDENTITY)] if IDENTITY in main.rows else []
        picked += [(f"paired ceiling (`{r}`)" if r != "paired" else "paired ceiling", main, r)
                   for r in main.rows if r == "paired" or r.startswith("paired-")]
        if (r := recipe_row(main)) in main.rows:
            picked.append(("recipe", main, r))
        for label, name in (("built-in model", "builtin"), ("previous built-in model", "previous-builtin")):
            holder = next((b for b in sources if name in b.rows), None)
            if holder is not None:
                picked.append((label, holder, name))
            elif name == "builtin" and bench in cards:
                picked.append((label, None, bench))
        released = recorded.get("recorded:released")
        if released is not None and released.benchmark == bench:
            picked += [("released VQ-I2I code", released, r) for r in released.rows]
        for direction in DIRECTIONS:
            for label, block, row in picked:
                if block is None:
                    cells = [card_cell(cards[row], col, how, direction) for _, col, how in COLUMNS]
                    source = (f"card of `{row}`, {cards[row]['trained']['steps']} steps "
                              f"(vqi2i/builtin/models/{row}/card.yaml)")
                else:
                    cells = [cell(block.rows[row], col, how, direction) for _, col, how in COLUMNS]
                    source = ("docs/recorded_figures.yaml" if block.key.startswith("recorded:")
                              else _source(block, row))
                out.append([bench, direction, label, *cells, source])
    return out


def summary_table(blocks: dict[str, Block], cards: dict[str, dict], recorded: dict[str, Block]) -> str:
    head = ["benchmark", "direction", "row", *(c[0] for c in COLUMNS), "source (table, row)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * 3 + " ---: |" * len(COLUMNS) + " --- |"]
    lines += ["| " + " | ".join(r) + " |" for r in summary_rows(blocks, cards, recorded)]
    return "\n".join(lines)


SUMMARY_LEAD = (
    "Written by `python scripts/docs_figures.py` from the tables under \"Quality tables\" (the source column names "
    "the table and its row), from a built-in model's card where no table has the model's row, and from "
    "`docs/recorded_figures.yaml` for the released VQ-I2I code (measured outside this repository; its budget is not "
    "recorded). A row read from a card gives its steps in the source column; every other row is 1500 steps of batch "
    "4. `recipe` is the row trained with the benchmark's config as "
    "it is now. Style spread and codec SSIM are per domain: a direction shows its target domain's. A test fails when "
    "this table differs from its sources.")


@dataclass(frozen=True)
class Lever:
    """One screened change: the rows (with the change, the row it changes) tried in order in a source table."""

    lever: str
    source: str  # a bench_quality block key, or recorded:NAME
    pairs: tuple[tuple[str, str], ...]
    verdict: str
    extra: tuple[str, ...] = ()  # columns shown beside SSIM and nearer


LEVERS = (
    Lever("look transfer, whitened styles, regression of random styles only (together)", "scenes:cpu",
          (("no-recon-ssim", "previous-builtin"),), "kept (scenes)", ("diversity", "style spread", "style follow")),
    Lever("look invariance of the content features (`loss.look_invariance=1`)", "scenes:cpu",
          (("look-invariance", "no-recon-ssim"),), "dropped"),
    Lever("(1 - SSIM) reconstruction term (`loss.recon_ssim=1`)", "scenes:cpu", (("lr-2e-4", "no-recon-ssim"),),
          "kept (scenes)", ("codec SSIM", "guided SSIM")),
    Lever("512 codes instead of 128 (`model.n_embed=512`)", "scenes:cpu", (("codebook-512", "no-recon-ssim"),),
          "128 kept", ("codec SSIM", "same token")),
    Lever("content adversarial weight 3 (`loss.content_adv=3`, 1 in the recipe)", "scenes:cpu",
          (("content-adv-3", "lr-2e-4"),), "1 kept", ("same token", "codec SSIM")),
    Lever("instance-normalised content encoder input (`model.content_input_norm=true`)", "scenes:cpu",
          (("content-in", "lr-2e-4"),), "dropped", ("same token", "style follow", "codec SSIM")),
    Lever("token cross-entropy: a translation encoded again must pick its source's codes (`loss.content_tokens=1`)",
          "scenes:cpu", (("content-tokens", "lr-2e-4"),), "off (option)",
          ("tokens kept", "same token", "codec SSIM", "diversity")),
    Lever("token cross-entropy at weight 0.3", "scenes:cpu", (("tokens-0.3", "relu-recon-ssim-1"),),
          "off (option)", ("tokens kept", "same token", "codec SSIM", "diversity")),
    Lever("code-usage entropy term beside the token cross-entropy at 0.3 (`loss.code_usage=1`)", "scenes:cpu",
          (("tokens-usage", "tokens-0.3"),), "dropped (removed)",
          ("codec SSIM", "same token", "tokens kept", "style spread", "diversity")),
    Lever("no latent content regression (`loss.content=0`)", "scenes:cpu", (("no-content", "relu-recon-ssim-1"),),
          "content regression kept", ("same token", "tokens kept", "guided SSIM")),
    Lever("latent content regression training the content encoder only (`loss.content_trains=encoder`)",
          "scenes:cpu", (("content-encoder", "relu-recon-ssim-1"),), "dropped (removed)",
          ("same token", "tokens kept", "guided SSIM")),
    Lever("the translator's learning rate 6e-4 instead of 2e-4 (`train.lr`)", "scenes:cpu",
          (("relu-recon-ssim-1", "lr-2e-4"),),
          "kept (scenes)", ("codec SSIM", "guided SSIM", "same token")),
    Lever("the discriminators' learning rate 6e-4 too (`train.disc_lr`, 2e-4 in the recipe)", "scenes:cpu",
          (("disc-lr-6e-4", "relu-recon-ssim-1"),), "2e-4 kept (a style encoder collapses)",
          ("style spread", "style follow", "diversity", "codec SSIM")),
    Lever("adversarial terms from step 300 (`train.disc_start=300`, 0 in the recipe)", "scenes:cpu",
          (("disc-start-300", "relu-recon-ssim-1"),), "0 kept", ("codec SSIM", "guided SSIM")),
    Lever("the translator's learning rate 1e-3 instead of 6e-4", "scenes:cpu", (("lr-1e-3", "relu-recon-ssim-1"),),
          "6e-4 kept",
          ("codec SSIM", "guided SSIM")),
    Lever("l2-normalised codes and encodings (`model.codebook.metric=cosine`, ViT-VQGAN)", "scenes:cpu",
          (("cosine-codes", "relu-recon-ssim-1"),), "l2 kept (option)", ("codec SSIM", "same token")),
    Lever("latent regression of the encoded (exemplar) styles too (`loss.style_encoded=1`, StarGAN v2)", "scenes:cpu",
          (("style-encoded", "relu-recon-ssim-1"),), "off (option: the style encoders collapse)",
          ("style spread", "style follow", "diversity")),
    Lever("adversarial weight 0.25 (`loss.adv`, 0.5 in the scenes recipe)", "scenes:cpu",
          (("adv-0.25", "relu-recon-ssim-1"),),
          "0.5 kept (gains within the noise, less diversity)", ("guided SSIM", "same token", "diversity")),
    Lever("two-layer PatchGANs (`disc.n_layers=2`: 34-px patches at the full scale, 70 px in the recipe)",
          "scenes:cpu", (("disc-layers-2", "relu-recon-ssim-1"),), "3 kept",
          ("guided SSIM", "same token", "codec SSIM")),
    Lever("another training seed for the recipe (`train.seed=1`; every other row: 0): the spread between two draws",
          "scenes:cpu", (("recipe-seed-1", "recipe"),), "(noise: no change)",
          ("guided SSIM", "codec SSIM", "same token")),
    Lever("another training seed for the recipe before weight 3 (`loss.recon_ssim=1`, ReLU style encoders)",
          "scenes:cpu", (("relu-recon-ssim-1-seed-1", "relu-recon-ssim-1"),), "(noise: no change)",
          ("guided SSIM", "codec SSIM", "same token")),
    Lever("(1 - SSIM) reconstruction term at weight 3 instead of 1 (`loss.recon_ssim`, ReLU style encoders)",
          "scenes:cpu", (("relu-recon-ssim-3", "relu-recon-ssim-1"),), "3 kept (scenes: gains from both seeds)",
          ("codec SSIM", "guided SSIM", "diversity")),
    Lever("(1 - SSIM) reconstruction term at weight 3 instead of 1, both from seed 1", "scenes:cpu",
          (("relu-recon-ssim-3-seed-1", "relu-recon-ssim-1-seed-1"),), "as above",
          ("codec SSIM", "guided SSIM", "diversity")),
    Lever("(1 - SSIM) reconstruction term at weight 5 instead of 3 with ReLU style encoders", "scenes:cpu",
          (("relu", "relu-recon-ssim-3"),), "not with ReLU (the summer style encoder collapses)",
          ("codec SSIM", "style spread", "style follow", "diversity")),
    Lever("(1 - SSIM) reconstruction term at weight 5 instead of 3 with ReLU, both from seed 1", "scenes:cpu",
          (("relu-seed-1", "relu-recon-ssim-3-seed-1"),), "as above",
          ("codec SSIM", "style spread", "style follow", "diversity")),
    Lever("mode seeking beside the SSIM term at weight 5 (`loss.mode_seek=1`, ReLU style encoders)", "scenes:cpu",
          (("relu-mode-seek", "relu-recon-ssim-3"),),
          "not adopted (at 1500 steps gains from both seeds; the built-in run at 4000 steps collapses)",
          ("codec SSIM", "guided SSIM", "style spread", "diversity")),
    Lever("mode seeking beside the SSIM term at weight 5, both from seed 1", "scenes:cpu",
          (("relu-mode-seek-seed-1", "relu-recon-ssim-3-seed-1"),), "as above",
          ("codec SSIM", "guided SSIM", "style spread", "diversity")),
    Lever("mode seeking added to the SSIM term at weight 5 (ReLU style encoders)", "scenes:cpu",
          (("relu-mode-seek", "relu"),), "(guards the ReLU style encoders at 1500 steps only)",
          ("style spread", "style follow", "diversity")),
    Lever("mode seeking added to the SSIM term at weight 5, both from seed 1", "scenes:cpu",
          (("relu-mode-seek-seed-1", "relu-seed-1"),), "as above",
          ("style spread", "style follow", "diversity")),
    Lever("LeakyReLU (0.2) style encoders beside the SSIM term at weight 5 (`model.style_act=lrelu`)", "scenes:cpu",
          (("recipe", "relu"),), "kept (no collapse from both seeds, nor in the 4000-step built-in)",
          ("style spread", "style follow", "diversity", "codec SSIM")),
    Lever("LeakyReLU (0.2) style encoders beside the SSIM term at weight 5, both from seed 1", "scenes:cpu",
          (("recipe-seed-1", "relu-seed-1"),), "as above",
          ("style spread", "style follow", "diversity", "codec SSIM")),
    Lever("LeakyReLU (0.2) style encoders at SSIM weight 3 (the recipe before)", "scenes:cpu",
          (("recon-ssim-3", "relu-recon-ssim-3"),), "(spread up, the rest within the noise)",
          ("style spread", "style follow", "guided SSIM", "codec SSIM")),
    Lever("LeakyReLU (0.2) style encoders at SSIM weight 3, both from seed 1", "scenes:cpu",
          (("recon-ssim-3-seed-1", "relu-recon-ssim-3-seed-1"),), "as above",
          ("style spread", "style follow", "guided SSIM", "codec SSIM")),
    Lever("(1 - SSIM) reconstruction term at weight 5 instead of 3 with LeakyReLU style encoders", "scenes:cpu",
          (("recipe", "recon-ssim-3"),), "5 kept (codec up from both seeds, encoders alive)",
          ("codec SSIM", "guided SSIM", "style spread")),
    Lever("(1 - SSIM) reconstruction term at weight 5 instead of 3 with LeakyReLU, both from seed 1", "scenes:cpu",
          (("recipe-seed-1", "recon-ssim-3-seed-1"),), "as above", ("codec SSIM", "guided SSIM", "style spread")),
    Lever("(1 - SSIM) reconstruction term at weight 8 instead of 5 (`loss.recon_ssim=8`)", "scenes:cpu",
          (("recon-ssim-8", "recipe"),), "not yet (one seed: codec SSIM past 0.92 in both seasons at 1500 steps)",
          ("codec SSIM", "guided SSIM", "style spread", "same token")),
    Lever("mode seeking alone at SSIM weight 3 (`loss.mode_seek=1`, ReLU style encoders)", "scenes:cpu",
          (("relu-recon-ssim-3-mode-seek", "relu-recon-ssim-3"),),
          "off (one seed: same token up, the sheet's fringes worse)", ("codec SSIM", "guided SSIM", "same token")),
    Lever("paired ceiling with LeakyReLU style encoders and the SSIM term at weight 5 (the recipe's)", "scenes:cpu",
          (("paired", "paired-relu-recon-ssim-3"),), "(the ceiling of the recipe)",
          ("guided SSIM", "codec SSIM", "same token")),
    Lever("paired ceiling with the SSIM term at weight 5 and mode seeking (ReLU style encoders)", "scenes:cpu",
          (("paired-relu-mode-seek", "paired-relu-recon-ssim-3"),), "(the ceiling of the option)",
          ("guided SSIM", "codec SSIM", "same token")),
    Lever("discriminators twice as wide (`disc.ndf=32`, 16 in the scenes recipe)", "scenes:cpu",
          (("disc-ndf-32", "relu-recon-ssim-1"),), "16 kept (from seed 1 a style encoder collapses)",
          ("guided SSIM", "codec SSIM", "diversity")),
    Lever("discriminators twice as wide, both from seed 1", "scenes:cpu",
          (("disc-ndf-32-seed-1", "relu-recon-ssim-1-seed-1"),),
          "16 kept (the summer style encoder collapses)", ("guided SSIM", "style spread", "diversity")),
    Lever("decoders twice as wide at the token grid (`model.dec_ch=128`, 64 in the scenes recipe)", "scenes:cpu",
          (("dec-ch-128", "relu-recon-ssim-1"),), "64 kept (the winter style encoder collapses)",
          ("style spread", "style follow", "diversity", "codec SSIM")),
    Lever("Gaussian noise (std 0.2) on translations before they are encoded again (`loss.regress_noise`)",
          "scenes:cpu", (("regress-noise-0.2", "relu-recon-ssim-1"),), "dropped (removed)",
          ("codec SSIM", "guided SSIM", "diversity")),
    Lever("2000 training scenes per season instead of 200 (`vqi2i data scenes --n-train 2000`)",
          "scenes:n-train-2000", (("recipe", "n-train-200"),), "200 kept (the summer style encoder collapses)",
          ("codec SSIM", "style spread", "style follow", "diversity")),
    Lever("(1 - SSIM) reconstruction term at weight 3 instead of 1 for the built-in scenes model (4000 steps, ReLU)",
          "scenes:builtin", (("builtin-relu-recon-ssim-3", "builtin-relu-recon-ssim-1"),), "3 kept (scenes built-in)",
          ("codec SSIM", "guided SSIM", "kept", "diversity")),
    Lever("the SSIM term at weight 5 with mode seeking for the built-in scenes model (4000 steps, ReLU)",
          "scenes:builtin", (("builtin-relu-mode-seek", "builtin-relu-recon-ssim-3"),),
          "not adopted (the summer style encoder dies)",
          ("codec SSIM", "guided SSIM", "style spread", "style follow", "diversity")),
    Lever("LeakyReLU style encoders and the SSIM term at weight 5 for the built-in scenes model (4000 steps)",
          "scenes:builtin", (("builtin", "builtin-relu-recon-ssim-3"),), "kept (scenes built-in)",
          ("codec SSIM", "guided SSIM", "style spread", "kept", "same token")),
    Lever("f = 4 (16x16 tokens) for the emoji built-in (`model.ch_mult=[1,2,2]`, f = 8 in the config)",
          "emoji:builtin", (("f4-recon-ssim-1", "previous-builtin"),), "kept (emoji built-in)",
          ("codec SSIM", "style acc.", "same token")),
    Lever("(1 - SSIM) reconstruction term at weight 3 (the scenes recipe's then) for the emoji built-in (f = 4; 1 in "
          "the config)", "emoji:builtin", (("builtin", "f4-recon-ssim-1"),), "kept (emoji built-in)",
          ("codec SSIM", "colour err.", "same token")),
    Lever("mode seeking (`loss.mode_seek=1`) for the emoji built-in",
          "emoji:builtin", (("f4-recon-ssim-3-mode-seek", "builtin"),),
          "off for emoji (the style encoders stay collapsed)",
          ("style spread", "diversity", "codec SSIM")),
    Lever("f = 4 (16x16 tokens) on the glyph config (`model.ch_mult=[1,2,2]`)", "glyphs:codec",
          (("f4", "builtin"),), "f = 8 kept (glyphs)", ("codec SSIM", "kept", "same token")),
    Lever("(1 - SSIM) reconstruction term at weight 3 (the scenes recipe's then) on the glyph config (f = 8)",
          "glyphs:codec", (("recon-ssim-3", "builtin"),), "off for glyphs (translations fall)",
          ("codec SSIM", "guided SSIM")),
    Lever("the scenes style terms unchanged (whitened styles, look transfer 5) on the emoji config", "emoji:style-path",
          (("style-path", "builtin"),), "not adopted (emoji)", ("style spread", "style follow", "codec SSIM")),
    Lever("the scenes style terms unchanged (whitened styles, look transfer 5) on the glyph config",
          "glyphs:style-path", (("style-path", "builtin"),), "not adopted (glyphs)",
          ("style spread", "style follow", "codec SSIM")),
    Lever("f = 8 and adversarial weight 0.5 (from f = 4 and 0.1)", "recorded:glyphs-screen500",
          (("f8-adv-0.5", "previous"),), "kept", ("style acc.",)),
    Lever("spectral-norm PatchGANs, feature matching, content adversarial, EMA (together)",
          "recorded:glyphs-screen500", (("recipe", "f8-adv-0.5"),), "kept"),
    Lever("low-pass term (`loss.lowpass=1`)", "glyphs:cpu", (("lowpass", "recipe"),), "kept (glyphs)", ("kept",)),
    Lever("low-pass term (`loss.lowpass=1`)", "hei-kai:cpu", (("lowpass", "recipe"),), "kept (glyphs)"),
    Lever("cycle consistency (`loss.cycle=1`)", "glyphs:cpu", (("cycle", "recipe"),), "off (option)"),
    Lever("variational style encoders, KL 0.1", "glyphs:cpu", (("style-kl-0.1", "recipe"),), "off for glyphs"),
    Lever("(1 − SSIM) reconstruction term (`loss.recon_ssim=1`)", "glyphs:cpu", (("recon-ssim", "recipe"),),
          "off for glyphs"),
    Lever("wider upsampling stages (`model.dec_up_ch=64`)", "glyphs:cpu", (("wide-up", "recipe"),), "off (option)"),
    Lever("one decoder for both domains (`shared_decoder`)", "glyphs:cpu", (("shared-decoder", "lowpass"),),
          "dropped (removed)", ("style acc.",)),
    Lever("no latent content regression (`loss.content=0`)", "glyphs:cpu-levers", (("no-content", "recipe"),),
          "content regression kept"),
    Lever("self-attention at the decoders' input (`dec_attn`)", "glyphs:cpu-levers", (("dec-attn", "recipe"),),
          "dropped (removed)"),
    Lever("the paired ceiling with `dec_attn`", "glyphs:cpu-levers", (("paired-dec-attn", "paired"),),
          "dropped (removed)"),
    Lever("the paired ceiling with decoders twice as wide (`model.dec_ch=128`)", "glyphs:cpu-levers",
          (("paired-dec128", "paired"),), "off (option)"),
    Lever("4x the steps (6000; one schedule, step 1500 checkpoint as the reference)", "glyphs:cpu-long",
          (("recipe@6000", "recipe@1500"),), "budget stays 1500 (no gain)"),
    Lever("the paired ceiling, 3x the steps (4500)", "glyphs:cpu-long-paired", (("paired@4500", "paired@1500"),),
          "not a recipe change: supervised training gains"),
    Lever("adversarial weight 0.1 instead of 0.5 (both without the style KL)", "emoji:cpu",
          (("no-style-kl", "adv-0.5-no-kl"),), "kept (emoji)"),
    Lever("variational style encoders, KL 0.1 (`model.style_vae`, `loss.style_kl`)", "emoji:cpu",
          (("recipe", "no-style-kl"),), "kept (emoji)", ("diversity",)),
    Lever("variational style encoders, KL 0.1", "noto-emojione:cpu", (("recipe", "no-style-kl"),), "kept (emoji)",
          ("kept",)),
    Lever("style KL weight 1 instead of 0.1", "emoji:cpu", (("style-kl-1", "recipe"),), "0.1 kept"),
    Lever("(1 − SSIM) reconstruction term (`loss.recon_ssim=1`)", "emoji:cpu", (("recon-ssim", "recipe"),),
          "kept (emoji)"),
    Lever("(1 − SSIM) reconstruction term", "noto-emojione:cpu", (("recon-ssim", "recipe"),), "kept (emoji)"),
    Lever("f = 4 (16x16 tokens)", "emoji:cpu", (("f4-recon-ssim", "recon-ssim"),), "f = 8 kept", ("kept",)),
    Lever("f = 4 with adversarial weight 0.3", "emoji:cpu", (("f4-adv-0.3", "f4-recon-ssim"),), "off"),
    Lever("low-pass term", "emoji:cpu", (("lowpass", "recon-ssim"),), "off for emoji"),
    Lever("mode seeking (`loss.mode_seek=1`)", "emoji:cpu", (("mode-seek", "recon-ssim"),), "off (option)",
          ("diversity",)),
    Lever("low-pass term and mode seeking", "emoji:cpu", (("lowpass-mode-seek", "recon-ssim"),), "off",
          ("diversity",)),
    Lever("1024 codes instead of 128 (`model.n_embed=1024`)", "emoji:cpu", (("codebook-1024", "recon-ssim"),),
          "off (option)"),
    Lever("random hue rotation of the training images (`data.hue`)", "emoji:cpu", (("hue", "recon-ssim"),),
          "dropped (removed)", ("recon. colour err.",)),
    Lever("TTUR: discriminators' learning rate 4x (`train.disc_lr=8e-4`)", "emoji:cpu-levers", (("ttur", "recipe"),),
          "off (option)"),
    Lever("batch-level feature matching of translations (`trans_fm`)", "emoji:cpu-levers", (("trans-fm", "recipe"),),
          "dropped (removed)", ("style acc.",)),
    Lever("no latent content regression (`loss.content=0`)", "emoji:cpu-levers", (("no-content", "recipe"),),
          "content regression kept", ("same token",)),
    Lever("self-attention at the decoders' input (`dec_attn`)", "emoji:cpu-levers", (("dec-attn", "recipe"),),
          "dropped (removed)"),
    Lever("the paired ceiling with `dec_attn`", "emoji:cpu-levers", (("paired-dec-attn", "paired"),),
          "dropped (removed)"),
    Lever("4x the steps (6000; one schedule, step 1500 checkpoint as the reference)", "emoji:cpu-long",
          (("recipe@6000", "recipe@1500"),), "budget stays 1500 (worse)"),
    Lever("the paired ceiling, 3x the steps (4500)", "emoji:cpu-long-paired", (("paired@4500", "paired@1500"),),
          "not a recipe change: flat"),
)


def _both(row: dict[str, str], column: str) -> str:
    """A row's figure for both directions (or both domains) as one "A→B / B→A" cell."""
    if f"{column} A→B" in row or f"{column} B→A" in row:
        return " / ".join(row.get(f"{column} {d}", NONE) for d in DIRECTIONS)
    return next((v for k, v in row.items() if k == column or (k.startswith(column + " ") and " / " in k)), NONE)


def screening_rows(blocks: dict[str, Block], recorded: dict[str, Block]) -> list[list[str]]:
    """One line per lever whose rows are in its source table now."""
    out = []
    for lever in LEVERS:
        block = blocks.get(lever.source) or recorded.get(lever.source)
        pair = next(((r, ref) for r, ref in lever.pairs if block and r in block.rows and ref in block.rows), None)
        if pair is None:
            continue
        row, ref = (block.rows[name] for name in pair)
        effect = "; ".join(f"{col} {_both(row, col)} against {_both(ref, col)}"
                           for col in ("SSIM", "nearer", *lever.extra))
        where = "docs/recorded_figures.yaml: " + lever.source.split(":", 1)[1] if block.key.startswith("recorded:") \
            else block.key
        steps = f", {block.steps} steps" if block.steps else ""
        out.append([lever.lever, f"{where}{steps}: `{pair[0]}` against `{pair[1]}`", effect, lever.verdict])
    return out


def screening_table(blocks: dict[str, Block], recorded: dict[str, Block]) -> str:
    lines = ["| lever | table: row against the row it changes | effect, A→B / B→A | kept / dropped |",
             "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(r) + " |" for r in screening_rows(blocks, recorded)]
    return "\n".join(lines)


def _replace(text: str, marks: tuple[str, str], content: str) -> str:
    if marks[0] not in text or marks[1] not in text:
        raise SystemExit(f"docs_figures: the document has no {marks[0]} ... {marks[1]} markers")
    start, end = text.index(marks[0]), text.index(marks[1]) + len(marks[1])
    return text[:start] + f"{marks[0]}\n{content}\n{marks[1]}" + text[end:]


def render(text: str, cards: dict[str, dict] | None = None, recorded: dict[str, Block] | None = None) -> str:
    """The document with both generated tables written from its own bench_quality blocks and the other sources."""
    cards = load_cards() if cards is None else cards
    if recorded is None:
        recorded = load_recorded()
    blocks = parse_blocks(text)
    text = _replace(text, MARKS, SUMMARY_LEAD + "\n\n" + summary_table(blocks, cards, recorded))
    return _replace(text, SCREEN_MARKS, screening_table(blocks, recorded))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 if the doc's tables are out of date")
    p.add_argument("--doc", type=Path, default=DOCS, help="the document (default: docs/benchmarks.md)")
    args = p.parse_args(argv)
    text = args.doc.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"docs_figures: {args.doc.name}'s generated tables differ from their sources; "
                  "run python scripts/docs_figures.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.doc.write_text(new)
        print(f"docs_figures: wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
