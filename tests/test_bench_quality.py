"""scripts/bench_quality.py's pieces that decide what a table shows: which evaluations may be reused, and
the table itself (identity row, the content-kept columns)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import load_script

from vqi2i.data.scenes import held_out_scene_with_look


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_quality")


def _report(step=1500, seed=0, retrieval=True):
    d = {"ground_truth": {"ssim": 0.5, "l1": 0.1, "coarse_l1": 0.05}, "identity": {"ssim": 0.4, "l1": 0.2,
         "coarse_l1": 0.15}, "nearer_than_input": 0.6,
         "style_accuracy": 0.9, "diversity": {"pixel_l1": 0.01}}
    if retrieval:
        d["retrieval"] = {"output": 0.3, "identity": 0.5}
    rec = ({"a": {"ssim": 0.7, "kept": 0.9, "coarse_l1": 0.02}, "b": {"ssim": 0.7, "kept": 0.8, "coarse_l1": 0.03}}
           if retrieval else {"a": {}, "b": {}})
    return {"step": step, "seed": seed, "directions": {"a_to_b": d, "b_to_a": d}, "codebook": {},
            "reconstruction": rec}


def test_an_evaluation_is_reused_only_for_the_same_checkpoint_seed_and_metrics(bench, tmp_path):
    path = tmp_path / "eval.json"
    assert not bench.current_eval(path, 1500, 0)  # none yet
    path.write_text(json.dumps(_report()))
    assert bench.current_eval(path, 1500, 0)
    assert not bench.current_eval(path, 500, 0) and not bench.current_eval(path, 1500, 1)
    path.write_text(json.dumps(_report(retrieval=False)))  # written before the content-kept metric
    assert not bench.current_eval(path, 1500, 0)


def test_a_row_trains_with_its_own_seed_or_the_commands(bench):
    assert bench.row_seed("recipe-seed-1", 0) == 1 and bench.row_seed("recipe-seed-1", 5) == 1
    assert bench.row_seed("recipe", 0) == 0 and bench.row_seed("recipe", 3) == 3


def test_the_table_puts_identity_first_with_its_content_kept_share(bench):
    lines = bench.table({"recipe": _report()}, {"recipe": 30.0}).splitlines()
    assert "kept A→B" in lines[0] and lines[0].count("|") == lines[1].count("|")
    identity, row = lines[2].split(" | "), lines[3].split(" | ")
    assert identity[0] == "| identity (no translation)" and identity[5:7] == ["0.50", "0.50"]
    assert row[0] == "| recipe" and row[5:7] == ["0.30", "0.30"] and len(row) == len(identity)
    assert row[-9] == "0.90 / 0.80"  # the codec's own content-kept bar, per domain
    assert row[-8:-6] == ["0.050 / 0.050", "0.020 / 0.030"]  # colour error: translations, reconstructions
    assert identity[-8] == "0.150 / 0.150"  # ... and the untouched input's, beside them
    assert identity[-6:-1] == ["0.400 / 0.400", "0", "0", "–", "–"]  # guided = identity for doing nothing: no follow
    older = _report()
    older["reconstruction"] = {"a": {"ssim": 0.7}, "b": {"ssim": 0.7}}  # evaluated before those bars existed
    old_dir = older["directions"]["a_to_b"]  # the same dict for both directions
    del old_dir["ground_truth"]["coarse_l1"], old_dir["identity"]["coarse_l1"]
    alone = bench.table({"recipe": older}, {}).splitlines()
    assert alone[3].split(" | ")[-9:-6] == ["– / –", "– / –", "– / –"] and alone[2].split(" | ")[-8] == "– / –"
    both = bench.table({"old": older, "new": _report()}, {}).splitlines()
    assert both[2].split(" | ")[-8] == "0.150 / 0.150"  # identity's colour error from the first row that has it
    styled = _report()
    styled["directions"]["a_to_b"]["guided"] = {"ssim": 0.8}  # the same dict for both directions
    styled["directions"]["a_to_b"]["style_follow"] = {"ssim": 0.1, "l1": 0.05}
    styled["style"] = {"a": {"spread": 0.9}, "b": {"spread": 0.7}}
    styled["reconstruction"]["a"]["ssim"], styled["reconstruction"]["b"]["ssim"] = 0.91, 0.92
    styled["codebook"]["token_agreement_across_looks"] = {"a": 0.65, "b": 0.71}  # synthetic scenes only
    cells = bench.table({"recipe": styled}, {"recipe": 30.0}).splitlines()[3].split(" | ")
    assert cells[-6:] == ["0.800 / 0.800", "0.100 / 0.100", "0.050 / 0.050", "0.90 / 0.70", "0.910 / 0.920",
                          "30.0 |"]
    assert cells[-11] == "0.65 / 0.71" and row[-11] == "– / –" and identity[-11] == "–"


def test_config_drift_names_each_changed_setting_and_ignores_bookkeeping(bench):
    saved = {"name": "old", "loss": {"adv": 0.1, "recon_ssim": 0.0}, "train": {"seed": 0, "ckpt_every": 250}}
    wanted = {"name": "new", "loss": {"adv": 0.1, "recon_ssim": 1.0, "lowpass": 1.0},
              "train": {"seed": 0, "ckpt_every": 1500}}
    assert bench.config_drift(saved, wanted) == ["loss.recon_ssim"]  # only the saved keys are compared
    saved["loss"]["lowpass"] = 0.0  # an older config completed with today's defaults: the option counts
    assert bench.config_drift(saved, wanted) == ["loss.lowpass", "loss.recon_ssim"]
    assert bench.config_drift(wanted, wanted) == []
    assert bench.config_drift({"model": {"ch_mult": [1, 2, 2]}}, {"model": {"ch_mult": [1, 2, 2, 2]}}) == [
        "model.ch_mult"]


def test_the_judges_data_is_built_whatever_the_rows(bench):
    assert bench.data_kinds(["paired"]) == ["disjoint", "shared"]
    assert bench.data_kinds(["recipe"]) == ["disjoint"]
    assert bench.data_kinds(["recipe", "paired-f4"]) == ["disjoint", "shared"]


def test_a_learning_curve_scores_every_kept_checkpoint_and_the_last(bench):
    assert bench.curve_points(6000, 1500) == [1500, 3000, 4500, 6000]
    assert bench.curve_points(1000, 300) == [300, 600, 900, 1000]  # the last step even off the grid
    assert bench.curve_points(1500, None) == [1500]


def test_the_curve_table_has_a_line_per_checkpoint_in_step_order(bench):
    early, late = _report(step=1500), _report(step=3000)
    late["directions"] = {d: {**v, "ground_truth": {**v["ground_truth"], "ssim": 0.55}}
                          for d, v in late["directions"].items()}
    lines = bench.curve_table({"recipe": {3000: late, 1500: early}}, {"recipe": late}).splitlines()
    assert lines[2].startswith("| identity | – | 0.400 | 0.400 |")
    assert lines[3].startswith("| recipe | 1500 | 0.500 | 0.500 | 0.60 | 0.60 | 0.100 |")
    assert lines[4].startswith("| recipe | 3000 | 0.550 | 0.550 |")
    assert len(lines) == 5 and all(line.count("|") == lines[0].count("|") for line in lines)


def test_scenes_follow_ceiling_is_what_a_perfect_exemplar_follower_scores(bench, scenes_dir, tmp_path):
    from vqi2i.eval.evaluate import EvalOptions, _guided_scores

    ceiling = bench.scenes_follow_ceiling(scenes_dir)
    assert bench.scenes_follow_ceiling(tmp_path) is None  # not a scenes data set

    class PerfectFollower:
        """Content = the scene's index, style = the look's index; decoding draws the scene with that look."""

        multimodal = True

        def __init__(self, dst):
            self.dst = dst

        def encode_content(self, x):
            return None, torch.arange(len(x))

        def encode_style(self, x, domain):
            return torch.cat([(truth == x[i]).flatten(1).all(1).nonzero() for i in range(len(x))]).flatten()

        def decode(self, index, look, domain):
            return torch.stack([image(self.dst, int(i), int(j)) for i, j in zip(index, look)])

    info = json.loads((scenes_dir / "scenes.json").read_text())

    def image(dst, i, j):
        a = held_out_scene_with_look(info["seed"], dst, i, j, info["size"])
        return torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1

    for dst in "ab":
        truth = torch.stack([image(dst, i, i) for i in range(info["n_test"])])
        x = torch.zeros_like(truth)  # the content is the index alone
        out = _guided_scores(PerfectFollower(dst), x, truth, "b" if dst == "a" else "a", dst,
                             EvalOptions(batch_size=8, progress=False), "cpu")
        assert out["guided"]["ssim"] == pytest.approx(1.0, abs=1e-5)
        assert out["style_follow"]["ssim"] == pytest.approx(ceiling[dst]["ssim"], abs=1e-5)
        assert out["style_follow"]["l1"] == pytest.approx(ceiling[dst]["l1"], abs=1e-5)
        assert 0 < ceiling[dst]["ssim"] < 0.2 and 0 < ceiling[dst]["l1"] < 0.3
