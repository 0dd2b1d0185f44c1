"""Table 2's verdicts and its Markdown: the targets evaluated, and ``table2.md`` beside the paper's numbers."""

from __future__ import annotations

from typing import Any

#: The paper's Table 2 (Kinetics-400, top-1 %); ``pretrained`` is its pretrained-encoder set-up.
PAPER_TABLE2 = {
    "pretrained": {"kd_top1": 2.92, "svm": 5.82, "rf": 3.67, "xgboost": 5.34},
    "scratch": {"svm": 15.11, "xgboost": 10.94, "rf": 8.25},
    "teacher_top1": 88.7,
    "no_kd": {"rf": 57.00, "svm": 55.00, "xgboost": 54.00},
}
DISPLAY = {
    "scratch": "Scratch (joint, end to end)", "pretrained": "Pretrained encoder, unfrozen",
    "frozen": "Pretrained encoder, frozen", "feature_kd": "Scratch + feature KD (δ)",
    "ce_only": "Scratch, CE only (no teacher)", "no_kd": "Unsupervised AE latents (no KD)",
}




def targets(runs: dict[str, dict[str, Any]], no_kd: dict[str, float], n_test: int = 0) -> dict[str, Any]:
    """Table 2's two targets, evaluated.

    ``kd_beats_ce_only``: the scratch KD student's end-to-end test top-1 against the same student trained with
    CE only. ``kd_latents_beat_ae_latents``: the best set-up (highest top-1 of any classifier on its latents)
    against the unsupervised AE's latents with that same classifier. ``frozen`` is left out there: its encoder
    is the AE's, so its latents are the AE's latents. ``test_clip_pct`` is what one test clip is worth, in
    top-1 points, to judge the differences by.
    """
    result: dict[str, Any] = {"test_clip_pct": 100.0 / n_test if n_test else None}
    if "ce_only" in runs and "scratch" in runs:
        kd, ce = runs["scratch"]["kd_top1"], runs["ce_only"]["kd_top1"]
        result["kd_beats_ce_only"] = {"scratch_kd_top1": kd, "ce_only_top1": ce, "met": kd is not None and ce is not None and kd > ce}
    candidates = [n for n in runs if n not in ("ce_only", "frozen")]
    if no_kd and candidates:
        def best_kind(name: str) -> str:
            return max((k for k in no_kd if k in runs[name]), key=lambda k: runs[name][k])

        best = max(candidates, key=lambda n: runs[n][best_kind(n)])
        kind = best_kind(best)
        result["kd_latents_beat_ae_latents"] = {
            "classifier": kind, "best_setup": best, "kd_latents_top1": runs[best][kind],
            "ae_latents_top1": no_kd[kind], "met": runs[best][kind] > no_kd[kind],
        }
    return result


def _pct(value: Any) -> str:
    """A top-1 fraction as a percentage with two decimals ("–" for None)."""
    return "–" if value is None else f"{100 * float(value):.2f}"


def render_table(metrics: dict[str, Any], classifiers: list[str]) -> str:
    """``table2.md``: our Table 2 (top-1 % on the test split) and the paper's beside it."""
    heads = ["KD model (end to end)", *[k.upper() if k in ("mlp", "svm", "dt") else {"rf": "RF", "xgboost": "XGBoost"}.get(k, k) for k in classifiers]]
    lines = ["# Table 2: knowledge distillation (top-1 %, test split)", "",
             f"Teacher: `{metrics['teacher']}`, its test top-1: {_pct(metrics['teacher_top1'])} %. "
             f"Clips: {metrics['n_train']} train / {metrics['n_val']} val / {metrics['n_test']} test, "
             f"{len(metrics['classes'])} classes.", "",
             "| Student set-up | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    rows = [(name, values) for name, values in metrics["setups"].items()]
    if metrics.get("ce_only"):
        rows.append(("ce_only", metrics["ce_only"]))
    for name, values in rows:
        lines.append(f"| {DISPLAY.get(name, name)} | {_pct(values.get('kd_top1'))} | "
                     + " | ".join(_pct(values.get(k)) for k in classifiers) + " |")
    if metrics.get("no_kd"):
        lines.append(f"| {DISPLAY['no_kd']} | – | " + " | ".join(_pct(metrics['no_kd'].get(k)) for k in classifiers) + " |")
    paper = metrics["paper"]
    lines += ["", "The paper's Table 2 (Kinetics-400, ILA-ViT-B/16 teacher at 88.7 %), top-1 %:", "",
              "| Student set-up | KD model | SVM | RF | XGBoost |", "|---|---:|---:|---:|---:|",
              f"| Pretrained encoder | {paper['pretrained']['kd_top1']} | {paper['pretrained']['svm']} | "
              f"{paper['pretrained']['rf']} | {paper['pretrained']['xgboost']} |",
              f"| Scratch (joint) | – | {paper['scratch']['svm']} | {paper['scratch']['rf']} | {paper['scratch']['xgboost']} |",
              f"| No KD (Table 1) | – | {paper['no_kd']['svm']} | {paper['no_kd']['rf']} | {paper['no_kd']['xgboost']} |", ""]
    for key, target in metrics.get("targets", {}).items():
        if not isinstance(target, dict):
            continue
        verdict = "met" if target.get("met") else "NOT met"
        detail = ", ".join(f"{k} {_pct(v) if isinstance(v, float) else v}" for k, v in target.items() if k != "met")
        lines.append(f"- Target `{key}`: **{verdict}** ({detail})")
    one = metrics.get("targets", {}).get("test_clip_pct")
    if one:
        lines.append(f"- One test clip is {one:.2f} points of top-1: differences of a few clips are noise.")
    lines.append("")
    return "\n".join(lines)
