"""The controls a ledger verdict rests on, read from the same cells (mintkit.batch.cells).

* **Null control** (``null=other-data``, mintkit.core.null): the same reading on an audited model that never saw
  the members. Each of its cells is tested against 0.5 with a two-sided binomial test on its pooled counts
  (evaluated samples a seed × seeds) at ``CHANCE_ALPHA``; one cell beyond chance and the reading measures the
  pipeline, not membership: a *holds* under it is an **artifact**.
* **Positive control** (``control=leaky``): the same pipeline on a deliberately leaky audited model (a few hundred
  members, no early stopping). It *detects* when both its loss attack and its best method cell are above 0.5 with
  their whole (1 − ALPHA) interval; a *does not hold* of a detection claim needs one that detects.
* **Free baselines**: the generalisation-gap attack (a sample is called a member when the audited model classifies
  it correctly: accuracy 0.5 + (train acc − test acc) / 2 on balanced sets) and the loss attack.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from mintkit.batch import verdicts as V
from mintkit.batch.cells import NULL_PART, base_variant, control_variant
from mintkit.core.null import CHANCE_ALPHA, POSITIVE

ATTACK = re.compile(r"et al\.|LiRA|RMIA|LOSS|MIA \(|Domain control|^MINT$")
SAME = ["dataset", "model", "protocol", "precision"]


@dataclass(frozen=True)
class Controls:
    null_text: str = ""
    null_fails: bool = False
    positive_text: str = ""
    positive_detects: bool = False

    def summary(self) -> str:
        return "; ".join(t for t in (self.null_text, self.positive_text) if t) or "none at this scope"


def is_attack(row) -> bool:
    return any(ATTACK.search(str(row[k])) for k in ("setup", "condition", "feature"))


def scope_cells(cells: pd.DataFrame, paper: str, scope: dict, variant: str) -> pd.DataFrame:
    m = (cells["ref"] == paper) & (cells["variant"] == variant)
    for k in SAME:
        m &= cells[k] == scope[k]
    return cells[m]


def loss_cells(cells: pd.DataFrame, paper: str, scope: dict, variant: str | None = None) -> pd.DataFrame:
    """The loss attack's cells (Yeom et al. on the audited model) of a scope."""
    rows = scope_cells(cells, paper, scope, scope["variant"] if variant is None else variant)
    text = rows["condition"].astype(str) + " " + rows["feature"].astype(str)
    return rows[text.str.contains("Yeom|LOSS", regex=True) & ~text.str.contains("on M+", regex=False)]


def gap_attack(rows: pd.DataFrame) -> float | None:
    """The generalisation-gap attack's balanced accuracy from the audited accuracies of `rows` (None: unknown)."""
    tr, te = pd.to_numeric(rows["audited_train"], errors="coerce"), pd.to_numeric(rows["audited"], errors="coerce")
    if tr.notna().any() and te.notna().any():
        return float(0.5 + (tr.mean() - te.mean()) / 2)
    return None


def chance_reading(rows: pd.DataFrame) -> tuple[int, int, str]:
    """(cells beyond chance, cells with counts, text) of a null control's cells."""
    rows = rows[rows["n_eval"] > 0]
    if rows.empty:
        return 0, 0, ""
    n = (rows["n_eval"] * rows["n"]).astype(int).to_numpy()
    p = np.array([binomtest(int(round(a * k)), k, 0.5).pvalue for a, k in zip(rows["mean"], n)])
    far = int((p < CHANCE_ALPHA).sum())
    text = (f"null control: {far} of {len(rows)} cells beyond chance (binomial p < {CHANCE_ALPHA:g}), accuracy "
            f"{rows['mean'].min():.3f}-{rows['mean'].max():.3f}, {int(rows['n'].min())} seed(s), "
            f"{int(rows['n_eval'].min())} evaluated a seed")
    return far, len(rows), text


def positive_reading(rows: pd.DataFrame, loss: pd.DataFrame) -> tuple[bool, str]:
    """(detects, text) of a positive control's cells and its loss-attack cells."""
    method = rows[[not is_attack(r) for _, r in rows.iterrows()]]
    if method.empty:
        return False, ""
    best = V.extreme(*[method[c].to_numpy() for c in ("mean", "sd")], method["n"].to_numpy(int),
                     method["n_eval"].to_numpy(int), "max")
    parts = [f"positive control: best method cell {best.text()}"]
    ok = best.low > 0.5
    if len(loss):
        r = loss.iloc[0]
        le = V.single(float(r["mean"]), float(r["sd"]), int(r["n"]), int(r["n_eval"]))
        parts.append(f"loss attack {le.text()}")
        ok &= le.low > 0.5
    else:
        parts.append("no loss attack")
        ok = False
    tr, te = rows["audited_train"].astype(float).mean(), rows["audited"].astype(float).mean()
    if np.isfinite(tr) and np.isfinite(te):
        parts.append(f"audited train/test {tr:.3f}/{te:.3f}")
    parts.append(f"{int(method['n'].min())} seed(s): " + ("detects" if ok else "does not detect"))
    return bool(ok), ", ".join(parts)


def controls_of(cells: pd.DataFrame, paper: str, scope: dict) -> Controls:
    """The null and positive controls of `scope`'s reading (its variant without control parts)."""
    base = base_variant(scope["variant"])
    far, n, null_text = chance_reading(scope_cells(cells, paper, scope, control_variant(base, NULL_PART)))
    pos = scope_cells(cells, paper, scope, control_variant(base, POSITIVE))
    detects, pos_text = positive_reading(pos, loss_cells(cells, paper, scope, control_variant(base, POSITIVE))) \
        if len(pos) else (False, "")
    return Controls(null_text, bool(n and far), pos_text, detects)


def control_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One line per control scope in `cells`: paper, scope, variant, kind, reading, verdict (the null control must
    read chance: holds / does not hold; the positive control must detect: detects / does not detect)."""
    out = []
    for key, rows in cells.groupby(["ref", *SAME, "variant"], sort=True):
        paper, *scope_vals, variant = key
        scope = dict(zip(SAME, scope_vals), variant=variant)
        if "null=" in variant:
            far, n, text = chance_reading(rows)
            out.append({"paper": paper, **scope, "kind": "null", "reading": text or "no evaluated counts",
                        "verdict": ("does not hold" if far else "holds") if n else V.UNTESTABLE})
        elif POSITIVE in variant:
            ok, text = positive_reading(rows, loss_cells(cells, paper, scope))
            out.append({"paper": paper, **scope, "kind": "positive", "reading": text,
                        "verdict": "detects" if ok else "does not detect"})
    return pd.DataFrame(out, columns=["paper", *SAME, "variant", "kind", "reading", "verdict"])
