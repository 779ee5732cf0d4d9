"""`vqi2i models`: the built-in trained models, usable by name wherever a run folder is taken
(`vqi2i translate -c emoji ...`, `vqi2i generate -p scenes-prior ...`)."""

from __future__ import annotations

import argparse
import json

import yaml

from vqi2i.builtin import available, get
from vqi2i.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the built-in trained models (use their names as --checkpoint/--prior)")
    p.add_argument("name", nargs="?", help="show this model's whole card")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _scores(card: dict) -> str:
    ev = card.get("eval") or {}
    if card.get("kind") == "prior":
        bits = ev.get("val_bits_per_token")
        return f"held-out {bits:.2f} bits/token" if bits is not None else "–"
    parts = []
    for key, label in (("a_to_b", "A→B"), ("b_to_a", "B→A")):
        d = ev.get(key)
        if d:
            parts.append(f"{label} SSIM {d['ssim']:.3f} (input {d['identity_ssim']:.3f})")
    return ", ".join(parts) or "–"


def summary(name: str) -> dict:
    m = get(name)
    card = m.card
    doms = card.get("domains") or {}
    return {
        "name": name, "kind": m.kind,
        "domains": f"{doms['a']} ↔ {doms['b']}" if doms else f"tokens of {card.get('codec')}",
        "size_mb": round(m.size_bytes / 2**20, 1), "scores": _scores(card),
        "description": card.get("description", ""), "path": str(m.path),
    }


def run(args: argparse.Namespace) -> int:
    names = available()
    if args.name:
        card = get(args.name).card
        print(json.dumps(card, indent=2, ensure_ascii=False) if args.json else
              yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=110), end="")
        return 0
    if not names:
        raise UserError("no built-in models are installed (scripts/train_builtin.py makes them)")
    rows = [summary(n) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    cols = ("name", "kind", "domains", "size_mb", "scores")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    print("\nUse a name wherever a run folder goes, e.g. `vqi2i translate -c glyphs -i IMG -d a2b -o out/`; "
          "`vqi2i models NAME` shows its card.")
    return 0
