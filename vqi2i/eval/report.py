"""An evaluation report as a markdown table: what `vqi2i eval` prints and the benchmark writes to docs."""

from __future__ import annotations


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _both(report: dict, getter, digits: int = 3) -> list[str]:
    cells = []
    for key in ("a_to_b", "b_to_a"):
        try:
            cells.append(_fmt(getter(report["directions"][key]), digits))
        except (KeyError, TypeError):
            cells.append("–")
    return cells


def metric_rows(report: dict) -> list[tuple[str, str, str]]:
    """(metric, A->B, B->A) rows; ↑ / ↓ say which way is better. "identity" is the score of the source
    image itself (no translation), the bar a translation has to clear."""
    rows = []

    def add(name, getter, digits=3):
        rows.append((name, *_both(report, getter, digits)))

    if report.get("ground_truth_pairs"):
        add("L1 to ground truth ↓", lambda d: d["ground_truth"]["l1"])
        add("  identity (no translation)", lambda d: d["identity"]["l1"])
        add("PSNR to ground truth, dB ↑", lambda d: d["ground_truth"]["psnr"], 2)
        add("  identity", lambda d: d["identity"]["psnr"], 2)
        add("colour / layout error (8×8 cells, L1) ↓", lambda d: d["ground_truth"]["coarse_l1"])
        add("  identity", lambda d: d["identity"]["coarse_l1"])
        add("SSIM to ground truth ↑", lambda d: d["ground_truth"]["ssim"])
        add("  identity", lambda d: d["identity"]["ssim"])
        add("nearer the target than the input (SSIM) ↑", lambda d: d["nearer_than_input"])
        if any("guided" in d for d in report["directions"].values()):
            add("guided SSIM (style of its own ground truth) ↑", lambda d: d["guided"]["ssim"])
            add("  shuffled exemplar (another ground truth's style)", lambda d: d["shuffled"]["ssim"])
            add("  style follows the exemplar (guided − shuffled) ↑", lambda d: d["style_follow"]["ssim"])
            add("guided L1 ↓", lambda d: d["guided"]["l1"])
        add("content kept (own ground truth most correlated) ↑", lambda d: d["retrieval"]["output"])
        add("  identity", lambda d: d["retrieval"]["identity"])
    if any("tokens_kept" in d for d in report["directions"].values()):
        add("tokens kept (the translation encoded again: the source's token) ↑", lambda d: d["tokens_kept"])
    add("style accuracy ↑", lambda d: d["style_accuracy"])
    add("FD, classifier features ↓", lambda d: d["classifier_features"]["fd"])
    add("  identity", lambda d: d["classifier_features"]["fd_identity"])
    add("KID, classifier features ↓", lambda d: d["classifier_features"]["kid"], 4)
    if any("inception" in d for d in report["directions"].values()):
        add("FD, Inception ↓", lambda d: d["inception"]["fd"], 2)
        add("  identity", lambda d: d["inception"]["fd_identity"], 2)
        add("KID, Inception ↓", lambda d: d["inception"]["kid"], 4)
    add("diversity, pixel L1", lambda d: d["diversity"]["pixel_l1"], 4)
    if any("random_style_recovery" in d for d in report["directions"].values()):
        add("random styles read back (correlation, 1: all) ↑", lambda d: d["random_style_recovery"])
    add("diversity, classifier features", lambda d: d["diversity"]["feature_l2"], 4)
    rec = report.get("reconstruction", {})
    if report.get("style"):
        rows.append(("style spread (encoded test styles; random: 1)", _fmt(report["style"]["a"]["spread"]),
                     _fmt(report["style"]["b"]["spread"])))
        if "dead" in report["style"]["a"]:
            rows.append(("style encoder: dead channels, largest share in a layer (1: collapsed)",
                         _fmt(report["style"]["a"]["dead"]), _fmt(report["style"]["b"]["dead"])))
    if "ssim" in rec.get("a", {}):
        rows.append(("codec ceiling: reconstruction SSIM (a→a, b→b) ↑", _fmt(rec["a"]["ssim"]),
                     _fmt(rec["b"]["ssim"])))
    rows.append(("reconstruction L1 (a→a, b→b) ↓", _fmt(rec.get("a", {}).get("l1")),
                 _fmt(rec.get("b", {}).get("l1"))))
    if "coarse_l1" in rec.get("a", {}):
        rows.append(("reconstruction colour / layout error ↓", _fmt(rec["a"]["coarse_l1"]),
                     _fmt(rec["b"]["coarse_l1"])))
    if "kept" in rec.get("a", {}):
        rows.append(("reconstruction content kept ↑", _fmt(rec["a"]["kept"], 2), _fmt(rec["b"]["kept"], 2)))
    return rows


def markdown_table(report: dict) -> str:
    """The direction table, then one line each for the classifier and the codebook."""
    lines = ["| metric | A→B | B→A |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {ab} | {ba} |" for name, ab, ba in metric_rows(report)]
    judge = report["classifier"]
    cb = report["codebook"]
    lines.append("")
    lines.append(f"Domain classifier accuracy on real test images: {_fmt(judge.get('test_accuracy'))} "
                 f"({judge.get('source')}).")
    agreement = cb.get("token_agreement")
    lines.append(
        f"Codebook: {cb['all']['codes_used']}/{cb['all']['n_embed']} codes used on the test set, perplexity "
        f"{cb['all']['perplexity']:.1f} (A {cb['a']['perplexity']:.1f}, B {cb['b']['perplexity']:.1f})"
        + (f"; same token for the same image in both domains: {agreement:.3f}" if agreement is not None else "")
        + (f" (one domain, another look: {' / '.join(f'{d.upper()} {v:.3f}' for d, v in looks.items())})"
           if (looks := cb.get("token_agreement_across_looks")) else "")
        + "."
    )
    return "\n".join(lines)
