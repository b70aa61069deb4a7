"""The audit's report: ROC and score figures, results.csv / scores.npz rows, and ``audit.md``.

`run_audit(P)` is the whole audit as the CLI runs it: prepare (every check, nothing written), open
the run folder, score the audited model (and the control), write the figures and ``audit.md``, mark
the folder complete. ``status.json`` is written last, so an interrupted audit leaves no folder that
a later reader would take as finished (``docs/audit.md``, "The run folder").
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from matplotlib.figure import Figure

from mintkit.audit.attacks import record_references, train_reference_models
from mintkit.audit.blind import what_differs
from mintkit.audit.data import describe_pool
from mintkit.audit.params import AuditParams
from mintkit.audit.pipeline import Audit, ModelResult, open_run, prepare, record, score_model
from mintkit.audit.stats import DESIGNS, PAIRED_NAME, TEST_NAME, fmt_p
from mintkit.audit.taps import tap_label
from mintkit.core import plots
from mintkit.core.records import Run, atomic_write_bytes


def figures(out_dir: str | Path, results: list[ModelResult]) -> dict[str, Figure]:
    """roc.png/pdf (log-log and linear ROC of every method) and scores.png/pdf (score distributions).

    Figures are made without pyplot (no backend is touched, a notebook's inline display keeps working)
    and returned for display.
    """
    plots.use_style()
    main = results[0]
    fig = Figure(figsize=(7.0, 3.4))
    axes = fig.subplots(1, 2)
    for k, r in main.methods.items():
        plots.roc_loglog(axes[0], r.scores, r.labels, label=k)
        plots.roc_linear(axes[1], r.scores, r.labels, label=k)
    for k, b in main.blind.items():  # grey, dashed: what the two sets give away without the model
        for ax, roc in ((axes[0], lambda *a, **kw: plots.roc_loglog(*a, mark_fprs=(), **kw)),
                        (axes[1], plots.roc_linear)):
            n = len(ax.lines)
            roc(ax, b.scores, b.labels, label=k)
            for line in ax.lines[n:]:
                if line.get_label().startswith(f"{k} (AUC"):
                    line.set_linestyle("--")
                    line.set_alpha(0.7)
    for r in results[1:]:
        for k, m in r.methods.items():
            plots.roc_linear(axes[1], m.scores, m.labels, label=f"{k} ({r.label})")
            axes[1].lines[-2].set_linestyle(":")  # the curve just drawn (the chance diagonal came last)
    for ax in axes:  # again, so the legend shows the blind curves dashed
        ax.legend(loc="lower right", fontsize="x-small")
    axes[0].set_title("ROC, log-log (held-out)")
    axes[1].set_title("ROC, linear")
    fig.tight_layout()
    plots.save_figure(fig, out_dir, "roc")
    roc = fig
    rows, cols = len(results), len(main.methods)
    fig = Figure(figsize=(2.6 * cols, 2.3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, r in enumerate(results):
        for j, (k, m) in enumerate(r.methods.items()):
            plots.score_histogram(axes[i][j], m.scores, m.labels, bins=30)
            axes[i][j].set_title(f"{k}, {r.label}: AUC {m.test.auc:.2f}", fontsize="small")
            axes[i][j].set_xlabel("-log(loss)" if k == "loss" else "MINT score (members high)" if "mint" in k
                                  else "attack score (members high)")
    fig.tight_layout()
    plots.save_figure(fig, out_dir, "scores")
    return {"roc": roc, "scores": fig}


def results_table(res: ModelResult, blind: bool = True) -> list[str]:
    """Markdown rows: one per method with AUC [CI], TPR at low FPR, p, Holm-adjusted p and the paired p of
    beating the blind baseline; then (blind) one row per blind classifier (Holm over the blind family)."""
    lines = [("| method | what it reads | AUC [95% CI] | TPR @ 1% FPR | TPR @ 0.1% FPR | balanced acc. | p | "
              "p (Holm) | p beats blind (Holm) | held-out |"), "|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(k, r, f"{fmt_p(r.p_vs_blind_holm)} (vs {r.vs_blind})") for k, r in res.methods.items()]
    rows += [(k, b, "—") for k, b in res.blind.items()] if blind else []
    for k, r, vs in rows:
        m = r.metrics
        ci = "" if math.isnan(m.get("auc_ci_low", math.nan)) else f" [{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}]"
        lines.append(f"| {k} | {r.label} | {r.test.auc:.3f}{ci} | {m['tpr_at_1pct_fpr']:.3f} | "
                     f"{m['tpr_at_0.1pct_fpr']:.3f} | {m['balanced_accuracy']:.3f} | {fmt_p(r.test.p)} | "
                     f"{fmt_p(r.p_holm)} | {vs} | {r.test.n_members} + {r.test.n_nonmembers} |")
    return lines


def blind_lines(A: Audit, main: ModelResult) -> list[str]:
    """audit.md's section on the blind baseline: what it is, what it found and, when it separates, what to change."""
    v = main.verdict
    out = ["## The blind baseline", "",
           (f"Three classifiers that never touch the audited model (rows `blind-*` above) are trained on the same "
            f"MINT-training sets and tested on the same held-out samples with the same rank test; their p-values are "
            f"Holm-adjusted over the three. A method counts past a separating blind baseline only if it beats every "
            f"blind classifier by the {PAIRED_NAME} (the largest of the three p-values, Holm-adjusted over methods)."),
           ""]
    if not v.blind_separates:
        return out + [(f"Here the blind baseline does not separate the two sets (smallest Holm p = {fmt_p(v.blind_p)}, "
                       f"{v.blind_method}). That is no proof they are the same kind of data: these classifiers see "
                       "capture, processing and coarse content, not every possible difference."), ""]
    top = what_differs(A.pool, A.split)
    out += [(f"**Here the blind baseline separates the two sets** ({v.blind_method}, Holm p = {fmt_p(v.blind_p)}): "
             "members and non-members differ without the model, so a method's separation alone says nothing about "
             "training use. The pixel statistics that differ most between held-out members and non-members:"), "",
            "| statistic (channel:name) | AUC | median, members | median, non-members |", "|---|---|---|---|",
            *[f"| {n} | {a:.3f} | {m:.3g} | {o:.3g} |" for n, a, m, o in top], "",
            (f"What to change: the non-members (`{A.P.nonmembers}`"
             + (f", and the external tree `{A.P.external}`" if A.P.external else "")
             + f") or the members (`{A.P.members}`), so that both come from the same source, capture and processing "
             "(same camera or scanner, same resizing and compression, same class mix). Best: a random split of your "
             "own data before publishing it, audited with `--owner-split` (`docs/audit.md`, \"Designs\")."), ""]
    return out


def design_lines(A: Audit) -> list[str]:
    """audit.md lines on the design the verdict rests on, and the custody of the audited files."""
    d, c = A.design, A.custody
    if d["name"] == DESIGNS[0]:
        text = (f"**{DESIGNS[0]}**: members and non-members are the released and kept halves of the owner's split "
                f"(seed {d['seed']}, fraction {d['fraction']:g}; record `{d['record']}`, sha256 "
                f"`{d['record_sha256']}`; released {d['released']['files']} files, digest `{d['released']['sha256']}`; "
                f"kept {d['kept']['files']} files, digest `{d['kept']['sha256']}`; checked file by file). Under "
                "\"not trained on the released half\" the two halves are exchangeable by construction.")
    else:
        text = (f"**{DESIGNS[1]}**: no `--owner-split` record says how the members and the non-members were "
                "chosen (a random split of one source, or two sources), so the audit cannot assume they are "
                "exchangeable apart from training; the verdict leans on the blind baseline to catch a difference "
                "between the two sets.")
    lines = ["## Design and custody", "", text, "",
             f"- audited file `{c['model']['path']}`: sha256 `{c['model']['sha256']}`, {c['model']['bytes']} bytes"]
    if "control" in c:
        lines.append(f"- control file `{c['control']['path']}`: sha256 `{c['control']['sha256']}`, "
                     f"{c['control']['bytes']} bytes")
    lines += [f"- {r} tree `{t['path']}`: {t['files']} files, content digest `{t['sha256']}`"
              for r, t in c["trees"].items()]
    return lines + ["", "(the same in `params.json`, keys `custody` and `design`)", ""]


def reference_lines(A: Audit) -> list[str]:
    """audit.md lines on the reference models (none without them)."""
    if A.refs is None:
        return []
    r, plan = A.refs, A.refs.plan
    t = r.recipe.train
    sizes = plan.inside.sum(1)
    return [f"- reference attacks ({', '.join(A.attacks)}): {plan.k} offline reference models of the audited "
            f"architecture, {sizes.min()}–{sizes.max()} images each, drawn from E"
            + (" and the reference tree" if A.P.reference else "")
            + f" (never a member or a held-out image: asserted, indices in `references.json`); recipe {t.epochs} "
            f"epochs, {t.optimizer} lr {t.lr:g}, batch {t.batch_size} — the audited model's own recipe is "
            f"unknown to the audit, and the attacks are strongest when these match it; trained in {r.seconds:.0f} s "
            f"({sum(i.cache_hit for i in r.infos)} of {plan.k} from the cache)"]


def markdown(A: Audit, main: ModelResult, control: ModelResult | None, command: str = "") -> str:
    """The text of audit.md."""
    P, d = A.P, describe_pool(A.pool)
    s = A.split.sizes()
    e_from = "the external tree" if d["images"].get("external") else \
        f"a seeded {P.external_fraction:.0%} share of the non-members tree"
    out = [f"# Membership audit of `{P.model}`", "", f"**{main.verdict.sentence}**", "", *design_lines(A)]
    if control is not None:
        out += [f"Control model `{P.control}` (not trained on the members): {control.verdict.sentence}", ""]
        if control.verdict.evidence:
            out += [("> **Warning.** The control model, which never saw the members, also tells them apart from the "
                    "non-members: members and non-members differ in distribution, and the verdict above cannot be "
                    "read as evidence of training use."), ""]
    out += ["## The question and the test", "",
            ("*Null hypothesis*: for this model, the candidate members and the non-members are exchangeable — the "
            "model treats a member no differently from a non-member. Each method scores held-out members and "
            f"non-members that no MINT model saw; the test is the {TEST_NAME}, whose statistic divided by "
            f"n1·n0 is the AUC. The p-values of the {len(main.methods)} method(s) are Holm-adjusted; the verdict "
            f"is \"evidence\" when the smallest adjusted p-value is below alpha = {P.alpha:g} and the blind baseline "
            "does not separate the two sets, or when a method beats the blind baseline (below)."), "",
            ("Rejecting the null says the members are special *to this model*. It is evidence of training use only "
            "if the non-members are the same kind of data as the members; the design (a random split by the owner) "
            "makes them so, the blind baseline and a control model (`--control`) check it. Not rejecting it is not "
            "proof of non-use: a model that generalises well leaves little to detect."), "",
            "## Results", "", *results_table(main), ""]
    if control is not None:
        out += ["Control model:", "", *results_table(control, blind=False), ""]
    out += blind_lines(A, main)
    out += [f"Accuracy of the audited model on the labelled non-members (never on members): "
            f"{main.nonmember_accuracy:.3f} ({main.n_nonmember_accuracy} images)"
            + (f"; control model: {control.nonmember_accuracy:.3f}" if control else "") + ".", "",
            "![ROC](roc.png)", "", "![score distributions](scores.png)", "",
            "## The model", "",
            f"- file `{P.model}`: {A.model.source} ({A.model.kind})" + "".join(f"; {n}" for n in A.model.notes),
            (f"- MINT taps (per-channel maximum of each map): "
            f"{', '.join(tap_label(t) for t in A.taps) or 'none (mint not run)'}"),
            f"- gMINT layers ({P.gmint_rule}, mean per output filter): {', '.join(A.gmint_layers) or 'none'}",
            *reference_lines(A),
            "", "## The data and the split", "",
            f"- members `{P.members}`, non-members `{P.nonmembers}`"
            + (f", external `{P.external}`" if P.external else ""),
            (f"- images per tree {d['images']}, {d['classes']} classes, image shape {d['shape']}, normalisation "
            f"`{d['normalize']}` (mean {d['mean']}, std {d['std']})"),
            f"- MINT training: {s['mint_train_members']} members and {s['external']} non-members (E, from {e_from})",
            (f"- held out: {s['eval_members']} members and {s['eval_nonmembers']} non-members, disjoint from everything "
            "a MINT model saw (asserted; hashes in `split.json`)"), "",
            "## Reproduce", "", f"seed {P.seed}; every parameter in `params.json`."]
    if command:
        out += ["", "```", command, "```"]
    times = {f"{main.label} {k}": v for k, v in main.seconds.items()}
    out += ["", "Wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + "."]
    return "\n".join(out) + "\n"


def run_audit(P: AuditParams, command: str = "",
              progress: bool = False) -> tuple[Audit, ModelResult, ModelResult | None, Run]:
    """Check everything, then audit, write the run folder and audit.md; returns (audit, main, control, run)."""
    A = prepare(P)
    run = open_run(A)
    t0 = time.perf_counter()
    train_reference_models(A, progress)
    main = score_model(A, A.model, "audited", progress)
    control = score_model(A, A.control, "control", progress) if A.control is not None else None
    run.time("audit", time.perf_counter() - t0)
    write_report(A, run, main, control, command)
    return A, main, control, run


def write_report(A: Audit, run: Run, main: ModelResult, control: ModelResult | None = None,
                 command: str = "") -> dict[str, Figure]:
    """results.csv and scores.npz rows, the figures, audit.md, then status.json (the folder is complete)."""
    for res in [main] + ([control] if control else []):
        record(run, res)
    record_references(run, A)
    figs = figures(run.dir, [main] + ([control] if control else []))
    atomic_write_bytes(run.dir / "audit.md", markdown(A, main, control, command).encode())
    run.finish()
    return figs
