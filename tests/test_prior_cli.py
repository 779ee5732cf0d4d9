"""train-prior, generate, extend and complete end to end on tiny checkpoints (CPU, seconds)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vqi2i.apps.complete import complete_tokens
from vqi2i.apps.extend import extend_tokens
from vqi2i.checkpoint import checkpoint_id, resolve_checkpoint, save_checkpoint
from vqi2i.cli import main
from vqi2i.config import load_config
from vqi2i.inference import load_prior, open_prior_with_codec
from vqi2i.models.build import build_model
from vqi2i.sampling import known_region

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def make_codec(root: Path, data: Path, seed: int) -> Path:
    cfg = load_config(CONFIGS / "tiny.yaml", [f"data.root={data}"])
    torch.manual_seed(seed)
    save_checkpoint(root, 1, cfg, {"model": build_model(cfg)})
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory, scenes_dir, tiny_run):
    """The session's scenes (32 px) and trained tiny translator (conftest), an untrained second codec, and a
    prior trained on the tiny translator's tokens."""
    tmp = tmp_path_factory.mktemp("prior")
    data, codec = scenes_dir, tiny_run
    other = make_codec(tmp / "other_codec", data, seed=1)
    prior = tmp / "prior"
    rc = main(["train-prior", str(CONFIGS / "prior_tiny.yaml"), "--codec", str(codec), "--out", str(prior),
               "--no-progress"])
    assert rc == 0
    return {"tmp": tmp, "data": data, "codec": codec, "other": other, "prior": prior}


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_train_prior_writes_checkpoints_metrics_samples_and_token_cache(setup):
    prior_dir = setup["prior"]
    records = [json.loads(line) for line in (prior_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3, 4, 6]
    assert "val_bits_per_token" in records[-1]
    assert records[-1]["val_bits_per_token"] == pytest.approx(records[-1]["val_loss"] / 0.6931471805599453)
    assert (prior_dir / "samples" / "step-0000006.png").is_file()
    prior, cfg = load_prior(prior_dir)
    assert cfg.codec.checkpoint_id == checkpoint_id(setup["codec"])
    assert (prior.cfg.block_rows, prior.cfg.block_cols, prior.cfg.vocab_size) == (8, 8, 64)
    caches = sorted((prior_dir / "tokens").glob("*.safetensors"))
    assert [c.name.split("-")[1] for c in caches] == ["test", "train"]
    train = load_file(str(caches[1]))
    assert train["tokens"].shape == (32, 8, 8)  # 8 images x 2 domains x (original + mirror)
    assert int(train["flipped"].sum()) == 16 and int(train["domain"].sum()) == 16


def test_resume_is_exact_and_reads_the_token_cache(setup, capsys):
    tmp, codec = setup["tmp"], setup["codec"]
    cfg = str(CONFIGS / "prior_tiny.yaml")
    assert run_cli(capsys, "train-prior", cfg, "--codec", codec, "--out", tmp / "straight", "--no-progress")[0] == 0
    rc, out, _ = run_cli(capsys, "train-prior", cfg, "--codec", codec, "--out", tmp / "split", "--stop-at", 2,
                         "--no-progress")
    assert rc == 0 and "encoded 32 train token grids" in out
    rc, out, _ = run_cli(capsys, "train-prior", "--resume", tmp / "split", "--no-progress")
    assert rc == 0 and "read 32 train token grids" in out  # not re-encoded
    a = load_file(str(resolve_checkpoint(tmp / "straight") / "model.safetensors"))
    b = load_file(str(resolve_checkpoint(tmp / "split") / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_generate_extend_complete_write_pngs_and_sheets(setup, capsys):
    tmp, prior = setup["tmp"], setup["prior"]
    test_a = setup["data"] / "testA"
    rc, out, _ = run_cli(capsys, "generate", "-p", prior, "-o", tmp / "gen", "-n", 2, "--no-progress")
    assert rc == 0 and "tokens/s" in out
    assert sorted(p.name for p in (tmp / "gen").iterdir()) == [
        "grid.png", "sample_000_a.png", "sample_000_b.png", "sample_001_a.png", "sample_001_b.png"]
    rc, out, _ = run_cli(capsys, "generate", "-p", prior, "-o", tmp / "wide", "-n", 1, "--grid", "8x12",
                         "--window", "--domain", "b", "--style", setup["data"] / "testB" / "0000.png",
                         "--no-progress")
    assert rc == 0
    from vqi2i.images import load_image

    assert load_image(tmp / "wide" / "sample_000_b.png").shape == (3, 32, 48)
    rc, out, _ = run_cli(capsys, "extend", "-p", prior, "-i", test_a, "--from", "a", "--to", "b", "--side", "both",
                         "--pixels", 8, "-o", tmp / "ext", "-n", 2, "--no-progress")
    assert rc == 0 and "tokens/s" in out
    assert load_image(tmp / "ext" / "0000_extend_both_001.png").shape == (3, 32, 48)
    assert (tmp / "ext" / "grid.png").is_file()
    rc, out, _ = run_cli(capsys, "complete", "-p", prior, "-i", test_a / "0000.png", "--from", "a", "--keep", "left",
                         "-o", tmp / "comp", "-n", 2, "--no-progress")
    assert rc == 0 and "tokens/s" in out
    assert sorted(p.name for p in (tmp / "comp").iterdir()) == [
        "0000_complete_left_000.png", "0000_complete_left_001.png", "grid.png"]
    # the same seed gives the same images; outputs are not overwritten unless asked
    rc, _, err = run_cli(capsys, "complete", "-p", prior, "-i", test_a / "0000.png", "--from", "a", "--keep", "left",
                         "-o", tmp / "comp", "-n", 2, "--no-progress")
    assert rc == 2 and "--overwrite" in err
    rc, _, _ = run_cli(capsys, "complete", "-p", prior, "-i", test_a / "0000.png", "--from", "a", "--keep", "left",
                       "-o", tmp / "comp2", "-n", 2, "--no-progress")
    assert torch.equal(load_image(tmp / "comp" / "0000_complete_left_001.png"),
                       load_image(tmp / "comp2" / "0000_complete_left_001.png"))


@pytest.mark.parametrize("side", ["right", "left", "both"])
def test_extend_keeps_the_original_tokens(setup, side):
    from vqi2i.images import load_image

    prior, _, codec, _ = open_prior_with_codec(setup["prior"], None, "cpu")
    x = load_image(setup["data"] / "testA" / "0001.png")[None]
    g = torch.Generator().manual_seed(0)
    grid, tokens, offset, _ = extend_tokens(codec, prior, x, "a", side, 5, 3, generator=g)  # 13 > 8: windows
    assert grid.shape == (3, 8, 8 + 5 * (2 if side == "both" else 1))
    assert offset == (5 if side in ("left", "both") else 0)
    assert torch.equal(grid[:, :, offset : offset + 8], tokens.expand(3, -1, -1))


@pytest.mark.parametrize("kind", ["quarter", "left", "top"])
def test_complete_keeps_every_known_token(setup, kind):
    from vqi2i.images import load_image

    prior, _, codec, _ = open_prior_with_codec(setup["prior"], None, "cpu")
    x = load_image(setup["data"] / "testB" / "0000.png")[None]
    known = known_region(kind, 8, 8)
    grid, tokens, _ = complete_tokens(codec, prior, x, known, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(grid[:, known], tokens[known].expand(3, -1))


def test_bad_input_gives_one_clear_line(setup, capsys):
    tmp, prior, codec, other = setup["tmp"], setup["prior"], setup["codec"], setup["other"]
    img = setup["data"] / "testA" / "0000.png"
    cases = [
        (["generate", "-p", prior, "--codec", other, "-o", tmp / "x1"], "belongs to codec"),
        (["extend", "-p", prior, "-i", img, "--from", "a", "--pixels", 6, "-o", tmp / "x2"],
         "not a multiple of the codec's downsampling factor 4"),
        (["generate", "-p", prior, "--grid", "8x12", "-o", tmp / "x3"], "larger than the prior's context of 8x8"),
        (["generate", "-p", codec, "-o", tmp / "x4"], "not a prior checkpoint"),
        (["train-prior", str(CONFIGS / "prior_tiny.yaml"), "--codec", prior, "--out", tmp / "x5"],
         "is a prior checkpoint"),
        (["train-prior", str(CONFIGS / "prior_tiny.yaml"), "--out", tmp / "x6"], "--codec RUN"),
        (["train-prior", str(CONFIGS / "prior_tiny.yaml"), "model.n_layers=3", "--codec", codec, "--out", tmp / "x7"],
         "did you mean 'model.n_layer'"),
        (["train-prior", str(CONFIGS / "tiny.yaml"), "--codec", codec, "--out", tmp / "x8"], "not a prior config"),
        (["extend", "-p", prior, "-i", img, "--from", "a", "--to", "b", "--style", "own", "--pixels", 4,
          "-o", tmp / "x9"], "--style own"),
        (["complete", "-p", prior, "-i", img, "--from", "a", "--mask", "0,0,64,4", "-o", tmp / "x10"], "--mask"),
        (["generate", "-p", prior, "--top-p", "1.5", "-o", tmp / "x11"], "top-p"),
        (["generate", "-p", prior, "--grid", "1x4", "-o", tmp / "x12"], "at least 2x2 tokens"),
        (["generate", "-p", prior, "--domain", "a", "--style", tmp / "tiny.png", "-o", tmp / "x13"],
         "needs at least"),
        (["generate", "-p", prior, "--style", img, "-o", tmp / "x14"], "--domain a or --domain b"),
        (["extend", "-p", prior, "-i", img, "--from", "a", "--pixels", 4, "--size", 2, "-o", tmp / "x15"],
         "--size must be"),
        (["extend", "-p", prior, "-i", img, "--from", "a", "--pixels", 4, "--size", 4, "-o", tmp / "x16"],
         "is 4x4 px once fitted; this codec needs at least 8x8"),
    ]
    from vqi2i.images import save_image

    save_image(torch.zeros(3, 3, 3), tmp / "tiny.png", overwrite=True)
    for argv, message in cases:
        rc, _, err = run_cli(capsys, *argv)
        assert rc == 2, argv
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
