"""scripts/gpu_check.py on the CPU: the tiny run writes a report with every section, a check that raises or
hangs costs only its own figures, and what is missing is one line. No test looks at a timing figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"kernels", "training", "prior", "translate"}

gpu_check = load_script("gpu_check")
Check = gpu_check.Check


def test_tiny_cpu_run_reports_every_section(tmp_path):
    # the two slowest checks (dynamo tracing; three torchrun launches, ~45 s together here) are left out for
    # time: they are reported as not selected, and `--tiny --device cpu` without --skip runs them
    out = tmp_path / "report"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--tiny", "--device", "cpu", "--out", str(out),
         "--skip", "training.compile,training.torchrun"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    log = (out / "gpu_check.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log", "gpu_check.md"]
    assert set(report["sections"]) == SECTIONS
    assert report["device"] == "cpu" and report["tiny"] and report["failures"] == []
    assert report["environment"]["project"]["from_tree"]
    for section, checks in report["sections"].items():
        for name, result in checks.items():
            where = f"{section}.{name}"
            if where in ("training.compile", "training.torchrun"):
                assert result == {"status": "skipped", "reason": gpu_check.NOT_SELECTED}
                continue
            assert result["status"] == "ok", (where, result)
            assert result["figures"]["rows"], where
            assert f"===== {where} =====" in log
    kernels = report["sections"]["kernels"]
    assert all(r["ok"] for r in kernels["correctness"]["figures"]["rows"])
    assert {r["kernel"] for r in kernels["correctness"]["figures"]["rows"]} == {"lookup", "attention fwd+bwd", "decode"}
    assert "speedup_triton_vs_taming" in kernels["lookup"]["figures"]["rows"][0]
    assert all(r["losses_finite"] for n in ("fp32", "bf16", "channels_last", "fused_adam")
               for r in report["sections"]["training"][n]["figures"]["rows"])
    assert {r["variant"] for r in report["training_ratios"]} == {"bf16", "channels_last", "fused_adam"}
    md = (out / "gpu_check.md").read_text()
    assert "#### kernels.correctness: ok" in md and "#### translate.throughput: ok" in md
    assert "#### What failed and why" in md


def _raises(ctx):
    raise ValueError("deliberately broken")


def _fine(ctx):
    return {"rows": [{"figure": 1.5}]}


def _hangs(ctx):
    ctx.partial({"rows": [{"step": 1}]})
    time.sleep(300)
    return {"rows": [{"step": 2}]}


def _stubborn(ctx):
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ignores the cap's SIGTERM: killed after the grace
    ctx.partial({"rows": [{"step": 3}]})
    time.sleep(300)


def _time_boxed(ctx):
    try:
        time.sleep(300)
    except gpu_check.CapReached:
        return {"rows": [{"steps": 7}]}


def _run(tmp_path, checks, *extra):
    out = tmp_path / "report"
    rc = gpu_check.main(["--tiny", "--device", "cpu", "--out", str(out), *extra], checks=checks)
    return rc, json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_a_check_that_raises_is_reported_and_the_others_still_run(tmp_path):
    checks = [Check("alpha", "broken", _raises, 1.0), Check("alpha", "after", _fine, 1.0),
              Check("beta", "needs_broken", _fine, 1.0, after="alpha.broken"), Check("beta", "fine", _fine, 1.0)]
    rc, report, md = _run(tmp_path, checks, "--budget", "60")
    assert rc == 1
    broken = report["sections"]["alpha"]["broken"]
    assert broken["status"] == "error" and broken["reason"] == "ValueError: deliberately broken"
    assert any("deliberately broken" in line for line in broken["traceback"])
    assert report["sections"]["alpha"]["after"]["figures"] == {"rows": [{"figure": 1.5}]}
    assert report["sections"]["beta"]["fine"]["status"] == "ok"
    skipped = report["sections"]["beta"]["needs_broken"]
    assert skipped["status"] == "skipped" and "alpha.broken" in skipped["reason"]
    assert "alpha.broken: error: ValueError: deliberately broken" in report["failures"]
    assert "- alpha.broken: error: ValueError: deliberately broken" in md


def test_the_time_cap_holds_on_a_slow_check(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "GRACE_S", 2.0)
    checks = [Check("alpha", "slow", _hangs, 1.0), Check("alpha", "stubborn", _stubborn, 1.0),
              Check("alpha", "boxed", _time_boxed, 1.0), Check("beta", "after", _fine, 2.0)]
    t0 = time.perf_counter()
    rc, report, _ = _run(tmp_path, checks, "--budget", "10")  # caps: 2 s, then the budget left, shared
    assert time.perf_counter() - t0 < 40
    slow = report["sections"]["alpha"]["slow"]
    assert slow["status"] == "timeout" and slow["cap_s"] == pytest.approx(2.0, abs=0.1)
    assert slow["seconds"] < 2.0 + 2.0  # the cap; SIGTERM stops it at once
    assert slow["figures"] == {"rows": [{"step": 1}]}  # what it reported before it was cut off
    stubborn = report["sections"]["alpha"]["stubborn"]
    assert stubborn["status"] == "timeout" and stubborn["seconds"] < stubborn["cap_s"] + 2.0 + 3
    assert stubborn["figures"] == {"rows": [{"step": 3}]}
    boxed = report["sections"]["alpha"]["boxed"]  # a time-boxed check stops at its cap and reports
    assert boxed["status"] == "ok" and boxed["figures"] == {"rows": [{"steps": 7}]}
    assert report["sections"]["beta"]["after"]["status"] == "ok"
    assert rc == 1 and any(line.startswith("alpha.slow: timeout") for line in report["failures"])


def test_check_only_names_what_is_missing_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "PACKAGES", [*gpu_check.PACKAGES, ("no_such_module_xyz", "no-such-dist==1.0",
                                                                     "nothing real")])
    assert gpu_check.main(["--check-only"], checks=[]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    missing = [line for line in out.splitlines() if "no_such_module_xyz" in line]
    assert len(missing) == 1 and missing[0].startswith("MISSING") and "pip: no-such-dist==1.0" in missing[0]
    assert "pip download --no-deps --only-binary=:all:" in out and "no-such-dist==1.0" in out
    assert "--wheels" in out


@pytest.mark.parametrize("argv,message", [
    (["--tiny", "--device", "cpu"], "give --out FOLDER"),
    (["--tiny", "--device", "cpu", "--out", "x", "--budget", "0"], "--budget must be > 0"),
    (["--tiny", "--device", "cpu", "--out", "x", "--only", "alpha.fien"], "unknown check or section alpha.fien"),
    (["--device", "cpu", "--out", "x"], "use --tiny --device cpu"),
])  # fmt: skip
def test_user_mistakes_are_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert gpu_check.main(argv, checks=[Check("alpha", "fine", _fine, 1.0)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_check: error:") and message in err[0]
