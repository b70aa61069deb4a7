"""MINT paper: tidy result rows, the paper-shaped tables and the figures of `notebooks/mint.ipynb`.

Reads what the stages of `mintkit.papers.mint` return; writes nothing but rows, scores and figures
(docs/mint.md, "Results and rows").
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import NullFormatter

from mintkit.core.plots import (colours, published_vs_reproduced, results_table, roc_linear, roc_loglog,
                                save_figure, score_histogram, use_style)
from mintkit.core.null import POSITIVE, join_variant, null_label
from mintkit.core.records import KEY_COLUMNS, Run
from mintkit.core.result import MembershipResult
from mintkit.models.audited import AuditedInfo
from mintkit.papers.mint.fitting import HEADLINE
from mintkit.papers.mint.params import LAYERS, MIA_FEATURE, Params
from mintkit.reference import published

AUDITED_KEYS = ("audited_accuracy", "audited_train_accuracy")
SIZE_TABLES = {"mlp": "Table 3", "cnn": "Table 5"}


def record(run: Run, results: dict, sweep: dict, control: dict, baselines: dict[str, MembershipResult],
           audited: dict, control_info: AuditedInfo, P: Params) -> None:
    """Write every result as tidy rows: Tables 1/2 (Vanilla), 4 (CNN), 3/5 (sizes), 6 (vs MIA), Fig. 5 (AUC),
    domain-control and baseline rows (``baselines``: {row feature: result}, `mintkit.papers.mint.baselines`);
    each with the audited accuracies, counts and MINT-training size."""
    keys = {"dataset": P.dataset_row_label, "model": P.model_row_label}
    aud = {m: audited[m] for m in AUDITED_KEYS}
    only = set(P.table_filter)

    def add(table: str, feature: str, r: dict, metrics=None, aud_=aud) -> None:
        if only and table not in only:
            return
        cond = P.condition_label(r.n_train)
        run.add_metrics(r.metrics, aud_, metric_names=metrics, table=table, condition=cond, feature=feature,
                        **keys)
        if metrics is None:
            run.add("n_mint_train", r.n_train, table=table, condition=cond, feature=feature, **keys)
            if table in (P.vanilla_table, P.cnn_table):
                run.add("params", r.params, table=table, condition=cond, feature=feature, **keys)

    for (fam, _x), r in results.items():
        add(P.family_table(fam), r.label, r)
    for (fam, _x, _fr), r in sweep.items():
        add(SIZE_TABLES[fam], r.label, r)
    for fam, x in HEADLINE:
        if (fam, x) in results:
            add(SIZE_TABLES[fam], results[(fam, x)].label, results[(fam, x)])
            add("Table 6", results[(fam, x)].label, results[(fam, x)])
    if ("mlp", "outcome") in results:
        add("Table 6", MIA_FEATURE, results[("mlp", "outcome")])
    if results and (not only or "Table 6" in only):
        ref = next(iter(results.values()))
        for feature, b in baselines.items():
            run.add_metrics(b.metrics, aud, table="Table 6", condition=P.condition_label(ref.n_train),
                            feature=feature, **keys)
    for (fam, x), r in results.items():  # Fig. 5: AUC of the curves the paper draws
        if fam == "mlp" and x in (*LAYERS, "combination") or (fam, x) == ("cnn", "stage1"):
            add("Fig. 5", r.label, r, metrics=["auc"], aud_={})
    if ("mlp", "outcome") in results:
        add("Fig. 5", MIA_FEATURE, results[("mlp", "outcome")], metrics=["auc"], aud_={})
    caud = {m: control_info.accuracy.get(m, float("nan")) for m in AUDITED_KEYS}
    for (fam, _x), r in control.items():
        add(P.family_table(fam), P.control_label(r.label), r, aud_=caud)


def _row(label: str, r: MembershipResult, audited: dict, what: str = "MINT",
         n_train: float | None = None) -> dict:
    m = r.metrics
    ci = f"[{m['auc_ci_low']:.2f}, {m['auc_ci_high']:.2f}]" if not math.isnan(m["auc_ci_low"]) else "-"
    return {"what": what, "feature": label, "accuracy@0.5": m["accuracy"],
            "accuracy (calibrated)": m["accuracy_calibrated"], "AUC": m["auc"], "AUC 95% CI": ci,
            "TPR@1%FPR": m["tpr_at_1pct_fpr"], "TPR@0.1%FPR": m["tpr_at_0.1pct_fpr"],
            "n_train": getattr(r, "n_train", float("nan")) if n_train is None else n_train,
            "n_eval (mem/non)": f"{m['n_eval_members']}/{m['n_eval_nonmembers']}",
            "audited train acc": audited.get("audited_train_accuracy", float("nan")),
            "audited test acc": audited.get("audited_accuracy", float("nan"))}


def summary(results: dict, control: dict, baselines: dict[str, MembershipResult], audited: dict,
            control_info: AuditedInfo, P: Params) -> pd.DataFrame:
    """Every model of this run side by side: accuracy at 0.5 and calibrated, AUC (+CI), TPR at low FPR, counts,
    audited accuracies (the control's own for control rows)."""
    rows = [_row(r.label, r, audited) for r in results.values()]
    if ("mlp", "outcome") in results:
        rows.append(_row(MIA_FEATURE, results[("mlp", "outcome")], audited, "baseline"))
    n_train = next(iter(results.values())).n_train if results else float("nan")
    rows += [_row(feature, b, audited, "baseline", n_train) for feature, b in baselines.items()]
    rows += [_row(P.control_label(r.label), r, control_info.accuracy, "control") for r in control.values()]
    return pd.DataFrame(rows).set_index(["what", "feature"])


def sweep_table(results: dict, sweep: dict) -> pd.DataFrame:
    """Tables 3/5 shape: MINT accuracy (and AUC) vs number of MINT-training samples."""
    runs = list(sweep.values()) + [r for (f, x), r in results.items() if (f, x) in HEADLINE]
    rows = [{"model": r.label, "n_train": r.n_train, "accuracy@0.5": r.metrics["accuracy"],
             "AUC": r.metrics["auc"]} for r in runs]
    if not rows:
        return pd.DataFrame(columns=["model", "n_train", "accuracy@0.5", "AUC"])
    return pd.DataFrame(rows).sort_values(["model", "n_train"]).set_index(["model", "n_train"])


def paper_tables(rows: list[dict] | pd.DataFrame, metric: str = "accuracy") -> dict[str, pd.DataFrame]:
    """Tables 1/2, 4 and 6 in the paper's layout from the run's rows: auditable data down, the run's
    (dataset, model, condition) across; domain-control rows kept beside the real ones."""
    df = pd.DataFrame(rows)
    df = df[df["metric"] == metric]
    out = {}
    for table in dict.fromkeys(("Table 1", "Table 2", "Table 4", "Table 6", *df["table"].unique())):
        if table in ("Fig. 5", "Table 3", "Table 5"):
            continue
        t = df[df["table"] == table]
        if len(t):
            t = t.assign(data=t["feature"], col=t["dataset"] + " / " + t["model"] + " / " + t["condition"])
            out[table] = results_table(t, index="data", columns="col")
    return out


def compare_published(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """The run's rows joined with the published MINT numbers on the key columns (empty when the run is not a
    paper setting, e.g. the digits default)."""
    rep = pd.DataFrame(rows)
    rep = rep.assign(value=pd.to_numeric(rep["value"], errors="coerce"))
    return published_vs_reproduced(rep, published(Params.PAPER), keys=list(KEY_COLUMNS), how="inner")


# ------------------------------------------------------------------------------------------ figures
def view(P: Params) -> str:
    """The results variant of a run of `P` (as mintkit.papers.common names its rows), for the figures' banner."""
    return join_variant(null_label(getattr(P, "null_model", "off")),
                        POSITIVE if getattr(P, "positive_control", False) else "")


def _fig5_curves(results: dict, control: dict, P: Params) -> list[tuple[str, dict]]:
    cur = [(r.label, r) for (f, x), r in results.items()
           if (f, x) == ("cnn", "stage1") or (f == "mlp" and x in (*LAYERS, "combination"))]
    if ("mlp", "outcome") in results:
        cur.append(("MIA* (outcome)", results[("mlp", "outcome")]))
    cur += [(P.control_label(r.label), r) for r in control.values() if r.feature != "outcome"]
    return cur


def plot_roc(results: dict, control: dict, baselines: dict[str, MembershipResult], P: Params, *,
             out_dir: str | Path | None = None):
    """Fig. 5 shape (linear ROC, AUC in the legend) and a log-log ROC with TPR at 1% / 0.1% FPR.

    One colour per curve name for the whole figure (core.plots.colours: no colour repeats up to 20 curves, a
    curve drawn in both panels keeps its colour) and one legend below the panels, outside the axes at the style's
    legend size, so nine or more curves stay readable inline; the saved figure keeps it (tight bounding box)."""
    use_style()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    curves = _fig5_curves(results, control, P)
    best = max(((l, r) for l, r in curves if "control" not in l), key=lambda lr: lr[1].metrics["auc"], default=None)
    logged = [c for c in [best] if c] + [(l, r) for l, r in curves if "control" in l]
    logged += [(feature.split(";")[0], b) for feature, b in baselines.items()]  # "Loss threshold (Yeom et al.)"
    colour = colours([label for label, _ in curves + logged])
    for label, r in curves:
        roc_linear(axes[0], r.scores, r.labels, label=label, color=colour[label])
    for label, r in logged:
        roc_loglog(axes[1], r.scores, r.labels, label=label, color=colour[label])
    handles: dict[str, object] = {}
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
        for h, t in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(t, h)  # the same curve has the same label (its AUC) in both panels
    axes[0].set_title("ROC (paper Fig. 5)")
    axes[1].set_title("ROC, log scale")
    fig.tight_layout()
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=2 if len(handles) > 4 else 1, fontsize=7)
    if out_dir:
        save_figure(fig, out_dir, "mint_roc", variant=view(P))
    return fig


def plot_scores(results: dict, control: dict, P: Params, *, out_dir: str | Path | None = None):
    """Member / non-member score distributions of the best Vanilla, the CNN Conv #1 and the controls."""
    use_style()
    pick = []
    mlp = [r for (f, _), r in results.items() if f == "mlp"]
    if mlp:
        pick.append(max(mlp, key=lambda r: r.metrics["auc"]))
    if ("cnn", "stage1") in results:
        pick.append(results[("cnn", "stage1")])
    pick += [replace(r, label=P.control_label(r.label)) for r in control.values() if r.feature != "outcome"]
    fig, axes = plt.subplots(1, max(len(pick), 1), figsize=(3.4 * max(len(pick), 1), 3), squeeze=False)
    for ax, r in zip(axes[0], pick):
        score_histogram(ax, r.scores, r.labels, bins=30)
        ax.set_title(r.label.replace(";", "\n"), fontsize="small")
    fig.tight_layout()
    if out_dir:
        save_figure(fig, out_dir, "mint_scores", variant=view(P))
    return fig


def plot_sweep(table: pd.DataFrame, out_dir: str | Path | None = None, variant: str | None = None):
    """Accuracy vs MINT-training samples (Tables 3 and 5 as a figure); a `variant` other than the definition
    (the run's, e.g. a null control) is named above it."""
    use_style()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    df = table.reset_index()
    for model, t in df.groupby("model", sort=False):
        ax.plot(t["n_train"], t["accuracy@0.5"], marker="o", label=model)
    ax.axhline(0.5, ls="--", lw=0.8, color="0.5")
    ax.set_xscale("log")
    # ticks at the sizes run, in plain numbers: within one decade the log axis labels its minor ticks too
    # (2x10^2, 3x10^2, ...), which collided with each other (48 / 144 / 480)
    sizes = sorted({int(n) for n in df["n_train"].dropna()})
    if sizes:
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes], rotation=45 if len(sizes) > 5 else 0,
                      ha="right" if len(sizes) > 5 else "center")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("MINT training samples (members + non-members)")
    ax.set_ylabel("MINT accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    if out_dir:
        save_figure(fig, out_dir, "mint_sweep", variant=variant)
    return fig


def save_scores(run: Run, results: dict, control: dict, baselines: dict[str, MembershipResult]) -> None:
    """scores.npz: <family>_<feature>[_control]_scores / _labels for every evaluated model, <name>_scores /
    _labels for every baseline (the loss attack: loss_scores)."""
    arrays = {}
    for tag, res in (("", results), ("_control", control)):
        for (f, x), r in res.items():
            arrays[f"{f}_{x}{tag}_scores"], arrays[f"{f}_{x}{tag}_labels"] = r.scores, r.labels
    for b in baselines.values():
        arrays[f"{b.name}_scores"], arrays[f"{b.name}_labels"] = b.scores, b.labels
    run.save_scores(**arrays)
