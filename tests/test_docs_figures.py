"""scripts/docs_figures.py: docs/benchmarks.md's current-figures and screening tables are what their sources give
(a figure retyped or left stale fails), and the parser reads bench_quality's own tables."""

from __future__ import annotations

import pytest
from conftest import ROOT, load_script

DOC = ROOT / "docs" / "benchmarks.md"


@pytest.fixture(scope="module")
def figures():
    return load_script("docs_figures")


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_quality")


def test_the_docs_generated_tables_equal_what_their_sources_give(figures):
    text = DOC.read_text()
    assert figures.render(text) == text, "docs/benchmarks.md's summaries differ: python scripts/docs_figures.py"
    current = text[text.index(figures.MARKS[0]):text.index(figures.MARKS[1])]
    for bench in ("scenes", "glyphs", "emoji"):  # identity, the recipe and the built-in model, both directions
        for direction in ("A→B", "B→A"):
            for row in ("identity", "recipe", "built-in model"):
                assert f"| {bench} | {direction} | {row} |" in current


def test_the_built_in_rows_of_the_tables_are_the_shipped_models(figures):
    """Where a table scores a built-in model, its SSIM is the one on the model's card."""
    blocks, cards = figures.parse_blocks(DOC.read_text()), figures.load_cards()
    checked = 0
    for name, card in cards.items():
        block = blocks.get(f"{name}:builtin")
        if block is None or "builtin" not in block.rows:
            continue
        for direction, d in (("A→B", "a_to_b"), ("B→A", "b_to_a")):
            # the card keeps 4 digits, the table 3 of the unrounded figure: they may part by a rounding tie
            table, on_card = float(block.rows["builtin"][f"SSIM {direction}"]), card["eval"][d]["ssim"]
            assert abs(table - on_card) <= 0.0005 + 1e-9, (name, direction, table, on_card)
        checked += 1
    assert checked >= 2  # glyphs, emoji


def _report(ssim: float, nearer: float = 0.6) -> dict:
    d = {"ground_truth": {"ssim": ssim, "l1": 0.1}, "identity": {"ssim": 0.4, "l1": 0.2},
         "nearer_than_input": nearer, "style_accuracy": 0.9, "diversity": {"pixel_l1": 0.01},
         "retrieval": {"output": 0.3, "identity": 0.5}, "guided": {"ssim": ssim + 0.01},
         "style_follow": {"ssim": 0.02, "l1": 0.03}}
    rec = {"a": {"ssim": 0.7, "kept": 0.9}, "b": {"ssim": 0.8, "kept": 0.8}}
    return {"directions": {"a_to_b": d, "b_to_a": d}, "codebook": {"token_agreement": 0.2}, "reconstruction": rec,
            "style": {"a": {"spread": 0.5}, "b": {"spread": 0.6}}}


def _doc(bench, recipe_ssim: float, drift: str = "") -> str:
    table = bench.table({"recipe": _report(recipe_ssim), "paired": _report(0.55, 0.8)}, {"recipe": 30.0})
    block = "\n".join(["### glyphs, cpu: 1500 steps per row, batch 4", "", "Some caption.", *([drift] if drift else []),
                       "", table])
    return (f"# Benchmarks\n\n<!-- docs_figures start -->\n<!-- docs_figures end -->\n\n"
            f"<!-- bench_quality:glyphs:cpu start -->\n{block}\n<!-- bench_quality:glyphs:cpu end -->\n\n"
            "<!-- docs_figures:screening start -->\n<!-- docs_figures:screening end -->\n")


def _row(text: str, label: str, direction: str = "A→B") -> list[str]:
    line = next(li for li in text.splitlines() if li.startswith(f"| glyphs | {direction} | {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_figure_changed_in_a_table_shows_in_the_summary(figures, bench):
    first = figures.render(_doc(bench, 0.5), cards={}, recorded={})
    row = _row(first, "recipe")
    # benchmark, direction, row, SSIM, nearer, style acc., diversity, guided, follow, follow L1, spread, codec,
    # same token, source
    assert row[3:13] == ["0.500", "0.60", "0.90", "0.0100", "0.510", "0.020", "0.030", "0.60", "0.800", "0.200"]
    assert row[13] == "glyphs:cpu, `recipe`"
    assert _row(first, "recipe", "B→A")[10:12] == ["0.50", "0.700"]  # B→A lands in domain A
    assert _row(first, "identity")[3:5] == ["0.400", "0"] and _row(first, "paired ceiling")[3] == "0.550"
    assert _row(figures.render(_doc(bench, 0.512), cards={}, recorded={}), "recipe")[3] == "0.512"


def test_a_row_trained_before_its_config_changed_is_marked(figures, bench):
    drift = ("Reused runs trained with settings their row no longer has (the config file changed since): "
             "**recipe**: loss.lowpass: run 0.0, now 1.0.")
    text = figures.render(_doc(bench, 0.5, drift), cards={}, recorded={})
    assert _row(text, "recipe")[13] == "glyphs:cpu, `recipe` (trained before its config's last change)"


def test_a_built_in_model_without_a_table_row_comes_from_its_card(figures, bench):
    card = {"name": "glyphs", "kind": "translator", "eval": {
        "a_to_b": {"ssim": 0.4448, "nearer_than_input": 0.75, "style_accuracy": 0.99, "diversity_l1": 0.0178},
        "b_to_a": {"ssim": 0.3189}, "codec_ceiling_ssim": {"a": 0.6, "b": 0.7}}, "trained": {"steps": 2500}}
    text = figures.render(_doc(bench, 0.5), cards={"glyphs": card}, recorded={})
    row = _row(text, "built-in model")
    assert row[3:7] == ["0.445", "0.75", "0.99", "0.0178"] and row[11] == "0.700" and row[5 + 3] == "–"
    assert "card of `glyphs`, 2500 steps" in row[13]  # a card row may be trained longer than the tables


def test_the_screening_table_compares_each_lever_with_the_row_it_changes(figures):
    text = figures.render(DOC.read_text())
    screening = text[text.index(figures.SCREEN_MARKS[0]):text.index(figures.SCREEN_MARKS[1])]
    lowpass = next(li for li in screening.splitlines() if "glyphs:cpu, 1500 steps: `lowpass` against `recipe`" in li)
    rows = figures.parse_blocks(text)["glyphs:cpu"].rows
    assert f"SSIM {rows['lowpass']['SSIM A→B']} / {rows['lowpass']['SSIM B→A']} against " \
           f"{rows['recipe']['SSIM A→B']} / {rows['recipe']['SSIM B→A']}" in lowpass


def test_check_fails_on_a_retyped_figure_with_one_line(figures, bench, tmp_path, capsys):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(figures.render(_doc(bench, 0.5)))
    assert figures.main(["--check", "--doc", str(doc)]) == 0
    doc.write_text(doc.read_text().replace("| glyphs | A→B | recipe | 0.500 |", "| glyphs | A→B | recipe | 0.501 |"))
    assert figures.main(["--check", "--doc", str(doc)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert figures.main(["--doc", str(doc)]) == 0 and figures.main(["--check", "--doc", str(doc)]) == 0


def test_bench_quality_puts_a_new_table_at_the_end_of_the_quality_tables(bench, tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{bench.SECTION}\n\nlead\n\n## Screening history\n\ntext\n")
    monkeypatch.setattr(bench, "DOCS", doc)
    bench.write_docs("### emoji, new: 10 steps per row, batch 4", "emoji:new")
    text = doc.read_text()
    assert text.index(bench.SECTION) < text.index("<!-- bench_quality:emoji:new start -->") \
        < text.index("<!-- bench_quality:emoji:new end -->") < text.index("## Screening history")
    assert bench.SECTION in DOC.read_text()  # the section the script writes into is in the doc
