"""The glyph benchmark: Ming -> Kai translation of held-out characters, scored against exact ground truth.

Builds the data (`vqi2i data glyphs`), trains configs/glyphs64.yaml for a fixed number of steps as the
multimodal model and as the unimodal baseline (`model.variant=unimodal`), trains the domain classifier
once, evaluates both runs (`vqi2i eval`), prints a JSON summary, and writes the table with the machine,
steps and wall times into the `## Glyph benchmark` section of docs/benchmarks.md, between markers
named by --label, so that prose around it and other schedules' tables are kept.

    python scripts/bench_glyphs.py                          # the CPU schedule (under an hour on 2 cores)
    python scripts/bench_glyphs.py --steps 20000 --device cuda --label gpu --batch-size 16
    python scripts/bench_glyphs.py --steps 20 --num-chars 60 --no-docs   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "glyphs64.yaml"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Glyph benchmark"
VARIANTS = ("multimodal", "unimodal")
sys.path.insert(0, str(ROOT))


def start(args: list[str], log: Path, threads: int | None = None) -> tuple[subprocess.Popen, float]:
    """Start one `vqi2i` command with its output going to a log file (and, given threads, that many torch threads)."""
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
        sys.exit(f"bench_glyphs: `{' '.join(proc.args[3:5])}` failed (exit {rc}); see {log}")
    seconds = time.perf_counter() - t0
    print(f"  done: {' '.join(proc.args[3:5])} in {seconds:.1f} s", flush=True)
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


def fmt(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def comparison_table(reports: dict[str, dict]) -> str:
    """Rows: metrics; columns: each variant's A→B and B→A."""
    from vqi2i.eval.report import metric_rows

    rows = {v: metric_rows(r) for v, r in reports.items()}
    names = [name for name, *_ in rows[VARIANTS[0]]]
    head = "| metric | " + " | ".join(f"{v} A→B | {v} B→A" for v in reports) + " |"
    lines = [head, "| --- |" + " ---: |" * (2 * len(reports))]
    for i, name in enumerate(names):
        cells = [c for v in reports for c in rows[v][i][1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for v, r in reports.items():
        cb = r["codebook"]
        lines.append("")
        lines.append(f"{v}: codebook {cb['all']['codes_used']}/{cb['all']['n_embed']} codes used on the test set, "
                     f"perplexity {cb['all']['perplexity']:.1f}; same token for the same character in both fonts "
                     f"{fmt(cb.get('token_agreement'))}; domain classifier accuracy on real test glyphs "
                     f"{fmt(r['classifier']['test_accuracy'])}.")
    return "\n".join(lines)


def write_docs(block: str, label: str) -> None:
    """Put `block` between this label's markers inside the glyph section; create what is missing."""
    start, end = f"<!-- bench_glyphs:{label} start -->", f"<!-- bench_glyphs:{label} end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    marked = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + marked + text[text.index(end) + len(end):]
    elif SECTION in text:
        at = text.index(SECTION) + len(SECTION)
        nxt = text.find("\n## ", at)
        at = len(text) if nxt < 0 else nxt
        text = text[:at].rstrip("\n") + "\n\n" + marked + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{marked}\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    tmp = DOCS.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, DOCS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500, help="training steps per variant (default: %(default)s)")
    p.add_argument("--batch-size", type=int, help="override train.batch_size")
    p.add_argument("--num-chars", type=int, default=2000, help="characters, train + test (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "bench_glyphs", help="work folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                   help="2: train both variants at once (default); 1: one after the other")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per command; 0: torch's default (default: %(default)s, which on a "
                   "shared 2-core box beats two threads that wait on each other)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="cpu", help="names this schedule's block in docs (default: %(default)s)")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    data = out / "data"
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    threads = args.threads or None
    times["data"] = vqi2i("data", "glyphs", str(data), "--num-chars", str(args.num_chars), "--seed", str(args.seed),
                          "--overwrite", log=log)
    times["classifier"] = vqi2i("train-classifier", "--data", str(data), "--seed", str(args.seed), "--device",
                                args.device, "--no-progress", log=log, threads=threads)
    # the two variants train side by side (--jobs 1: one after the other)
    runs = {v: out / v for v in VARIANTS}
    training = {}
    for variant, run in runs.items():
        overrides = [f"data.root={data}", f"train.max_steps={args.steps}", f"model.variant={variant}",
                     f"name=glyphs64-{variant}", f"train.ckpt_every={args.steps}"]
        if args.batch_size:
            overrides.append(f"train.batch_size={args.batch_size}")
        cmd = ["train", str(CONFIG), *overrides, "--out", str(run), "--overwrite", "--device", args.device,
               "--seed", str(args.seed), "--no-progress"]
        training[variant] = start(cmd, out / f"train_{variant}.txt", threads)
        if args.jobs == 1:
            times[f"train_{variant}"] = finish(training.pop(variant), out / f"train_{variant}.txt")
    for variant, started in training.items():
        times[f"train_{variant}"] = finish(started, out / f"train_{variant}.txt")
    reports = {}
    for variant, run in runs.items():
        report = run / "eval.json"
        times[f"eval_{variant}"] = vqi2i("eval", "--checkpoint", str(run), "--data", str(data), "--out", str(report),
                                         "--device", args.device, "--seed", str(args.seed), "--overwrite",
                                         "--no-progress", log=log, threads=threads)
        reports[variant] = json.loads(report.read_text())
    total = time.perf_counter() - t_all

    from omegaconf import OmegaConf

    batch = args.batch_size or int(OmegaConf.load(CONFIG).train.batch_size)
    n_train = json.loads((data / "glyphs.json").read_text())["num_train"]
    summary = {
        "machine": machine(), "device": args.device, "steps": args.steps, "batch_size": batch,
        "num_chars": args.num_chars, "num_train": n_train, "num_test": reports[VARIANTS[0]]["num_test"]["a"],
        "wall_s": {k: round(v, 1) for k, v in times.items()} | {"total": round(total, 1)},
        "results": {v: {"directions": r["directions"], "codebook": r["codebook"],
                        "classifier_test_accuracy": r["classifier"]["test_accuracy"]} for v, r in reports.items()},
    }
    print(json.dumps(summary, indent=1))

    minutes = {k: f"{v / 60:.1f}" for k, v in times.items()}
    block = "\n".join([
        f"### {args.label}: {args.steps} steps per variant, batch {batch}",
        "",
        f"Machine: {summary['machine']}; device {args.device}. "
        f"Data: {args.num_chars} characters ({n_train} train, {summary['num_test']} held-out test), 64 px.",
        f"Command: `python scripts/bench_glyphs.py --steps {args.steps} --device {args.device} --label {args.label} "
        f"--jobs {args.jobs} --threads {args.threads}"
        + (f" --batch-size {args.batch_size}" if args.batch_size else "") + "`.",
        ("Both variants trained at the same time. " if args.jobs == 2 else "")
        + (f"{args.threads} torch thread(s) per command. " if args.threads else "")
        + f"Wall time: {total / 60:.1f} min in all (data {minutes['data']}, classifier {minutes['classifier']}, "
        + ", ".join(f"train {v} {minutes['train_' + v]}, eval {v} {minutes['eval_' + v]}" for v in VARIANTS)
        + " min).",
        f"Sample sheets: `{out.name}/<variant>/eval-samples.png` (rows: input | 4 random styles | ground truth).",
        "",
        comparison_table(reports),
    ])
    if not args.no_docs:
        write_docs(block, args.label)
        print(f"wrote the {args.label} table to {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
