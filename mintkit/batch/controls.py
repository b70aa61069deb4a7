"""The controls a ledger verdict rests on, read from the same cells (mintkit.batch.cells).

* **Null control** (``null=other-data``, mintkit.core.null): the same reading on an audited model that never saw
  the members. Each of its cells is tested against 0.5 with a two-sided binomial test on its pooled counts
  (evaluated samples a seed × seeds) at ``CHANCE_ALPHA``; one cell beyond chance and the reading measures the
  pipeline, not membership: a *holds* under it is an **artifact**. A null run at the positive control's recipe
  (``null=other-data,control=leaky``: the leaky recipe, trained on other data) is read the same way, beside it:
  the positive control's detection counts only where its own null reads chance.
* **Positive control** (``control=leaky``): the same pipeline on a deliberately leaky audited model (about a thousand
  members, no early stopping). It is *valid* when its loss attack reads above 0.5 with its whole (1 − ALPHA)
  interval on its pooled counts (evaluated samples × seeds, binomial; the question is whether a signal is there,
  as the null control's): membership is there to find. A *does not hold* of a detection claim needs a valid one; whether the
  method itself detects there (its best cell above 0.5) is shown beside: a method that misses even the leaky model
  fails for want of sensitivity of its own, not of the data.
* **Shuffled-order control** (gMINT's readings that carry state over all of D, then all of E: ``order=members_first``):
  the same reading over one seeded permutation of D ∪ E (``order=shuffled``), the method's cells only (the
  attacks on the same audited model read its real signal). Where the members-first reading is far from chance
  and the shuffled one reads chance, what it measured is the sequence, not membership.
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
from mintkit.batch.cells import (NULL_PART, ORDER_FIRST, ORDER_SHUFFLED, base_variant, control_variant,
                                 is_order_control)
from mintkit.core.null import CHANCE_ALPHA, POSITIVE

ATTACK = re.compile(r"et al\.|LiRA|RMIA|LOSS|MIA \(|Domain control|^MINT$")
SAME = ["dataset", "model", "protocol", "precision"]


@dataclass(frozen=True)
class Controls:
    null_text: str = ""
    null_fails: bool = False
    positive_text: str = ""
    positive_valid: bool = False   # its loss attack detects: membership is there to find at this scope
    positive_detects: bool = False  # and the method finds it too
    order_text: str = ""            # gMINT's members-first readings: the same over a shuffled order

    def summary(self) -> str:
        return "; ".join(t for t in (self.null_text, self.positive_text, self.order_text) if t) or "none at this scope"


def is_attack(row) -> bool:
    return any(ATTACK.search(str(row[k])) for k in ("setup", "condition", "feature"))


def method_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The method's own cells of `rows`, the attacks' left out (on the audited model itself they read its
    real membership signal, whatever the method's reading)."""
    return rows[np.array([not is_attack(r) for _, r in rows.iterrows()], dtype=bool)]  # a list [] would pick columns


def scope_cells(cells: pd.DataFrame, paper: str, scope: dict, variant: str) -> pd.DataFrame:
    m = (cells["ref"] == paper) & (cells["variant"] == variant)
    for k in SAME:
        m &= cells[k] == scope[k]
    return cells[m]


def loss_cells(cells: pd.DataFrame, paper: str, scope: dict, variant: str | None = None) -> pd.DataFrame:
    """The loss attack's cells (Yeom et al.) of a scope: on the plainly trained audited model, else (aMINT runs
    without the attacks) on M+, the model the active head audits."""
    rows = scope_cells(cells, paper, scope, scope["variant"] if variant is None else variant)
    text = rows["condition"].astype(str) + " " + rows["feature"].astype(str)
    loss = rows[text.str.contains("Yeom|LOSS", regex=True).to_numpy(bool)]
    plain = loss[~text[loss.index].str.contains("on M+", regex=False).to_numpy(bool)]
    return plain if len(plain) else loss


def gap_attack(rows: pd.DataFrame) -> float | None:
    """The generalisation-gap attack's balanced accuracy from the audited accuracies of `rows` (None: unknown)."""
    tr, te = pd.to_numeric(rows["audited_train"], errors="coerce"), pd.to_numeric(rows["audited"], errors="coerce")
    if tr.notna().any() and te.notna().any():
        return float(0.5 + (tr.mean() - te.mean()) / 2)
    return None


def chance_reading(rows: pd.DataFrame, label: str = "null control") -> tuple[int, int, str]:
    """(cells beyond chance, cells with counts, text starting with `label`) of a null control's cells."""
    rows = rows[rows["n_eval"] > 0]
    if rows.empty:
        return 0, 0, ""
    n = (rows["n_eval"] * rows["n"]).astype(int).to_numpy()
    p = np.array([binomtest(int(round(a * k)), k, 0.5).pvalue for a, k in zip(rows["mean"], n)])
    far = int((p < CHANCE_ALPHA).sum())
    text = (f"{label}: {far} of {len(rows)} cells beyond chance (binomial p < {CHANCE_ALPHA:g}), accuracy "
            f"{rows['mean'].min():.3f}-{rows['mean'].max():.3f}, {int(rows['n'].min())} seed(s), "
            f"{int(rows['n_eval'].min())} evaluated a seed")
    return far, len(rows), text


def positive_reading(rows: pd.DataFrame, loss: pd.DataFrame) -> tuple[bool, bool, str]:
    """(valid, method detects, text) of a positive control's cells and its loss-attack cells: valid when the loss
    attack reads above 0.5 with its whole interval (membership is there to find); the method's best cell beside."""
    method = method_rows(rows)
    parts, valid, detects = [], False, False
    if len(loss):
        r = loss.iloc[0]
        le = V.pooled(float(r["mean"]), int(r["n"]), int(r["n_eval"]))
        valid = bool(le.low > 0.5)
        parts.append(f"loss attack {le.text()}")
    else:
        parts.append("no loss attack")
    if len(method):
        best = V.extreme(method["mean"].to_numpy(float), method["sd"].to_numpy(float), method["n"].to_numpy(int),
                         method["n_eval"].to_numpy(int), "max", on_counts=True)
        detects = bool(best.low > 0.5)
        parts.append(f"best method cell {best.text()}")
    tr, te = pd.to_numeric(rows["audited_train"], errors="coerce").mean(), pd.to_numeric(
        rows["audited"], errors="coerce").mean()
    if np.isfinite(tr) and np.isfinite(te):
        parts.append(f"audited train/test {tr:.3f}/{te:.3f}")
    seeds = int(rows["n"].min()) if len(rows) else 0
    verdict = (("signal present, the method detects it" if detects else "signal present, the method misses it")
               if valid else "no signal (its loss attack reads chance): not a valid control")
    return valid, detects, "positive control: " + ", ".join(parts) + f", {seeds} seed(s): {verdict}"


def controls_of(cells: pd.DataFrame, paper: str, scope: dict) -> Controls:
    """The null and positive controls of `scope`'s reading (its variant without control parts)."""
    base = base_variant(scope["variant"])
    far, n, null_text = chance_reading(scope_cells(cells, paper, scope, control_variant(base, NULL_PART)))
    lfar, ln, leaky_text = chance_reading(scope_cells(cells, paper, scope, control_variant(
        control_variant(base, NULL_PART), POSITIVE)), "null control at the positive control's recipe")
    if ln:
        null_text = "; ".join(t for t in (null_text, leaky_text) if t)
        far, n = far + lfar, n + ln
    pos = scope_cells(cells, paper, scope, control_variant(base, POSITIVE))
    valid, detects, pos_text = positive_reading(pos, loss_cells(cells, paper, scope, control_variant(
        base, POSITIVE))) if len(pos) else (False, False, "")
    if valid and lfar:  # the leaky recipe reads "members" on a model that never saw them: its detection is no signal
        valid, detects = False, False
        pos_text += " (not valid: its own null control reads beyond chance)"
    order_text = ""
    if ORDER_FIRST in base:
        order_text = chance_reading(method_rows(scope_cells(cells, paper, scope, base.replace(
            ORDER_FIRST, ORDER_SHUFFLED))), "shuffled-order control")[2]
    return Controls(null_text, bool(n and far), pos_text, valid, detects, order_text)


def control_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One line per control scope in `cells`: paper, scope, variant, kind, reading, verdict (the null and the
    shuffled-order controls must read chance: holds / does not hold; the positive control must detect: detects /
    does not detect)."""
    out = []
    for key, rows in cells.groupby(["ref", *SAME, "variant"], sort=True):
        paper, *scope_vals, variant = key
        scope = dict(zip(SAME, scope_vals), variant=variant)
        if "null=" in variant or is_order_control(variant):  # both must read chance
            null = "null=" in variant
            far, n, text = chance_reading(rows) if null else chance_reading(method_rows(rows), "shuffled-order control")
            out.append({"paper": paper, **scope, "kind": "null" if null else "shuffled order",
                        "reading": text or "no evaluated counts",
                        "verdict": ("does not hold" if far else "holds") if n else V.UNTESTABLE})
        elif POSITIVE in variant:
            valid, detects, text = positive_reading(rows, loss_cells(cells, paper, scope))
            out.append({"paper": paper, **scope, "kind": "positive", "reading": text,
                        "verdict": ("method detects" if detects else "method misses") if valid else "not valid"})
    return pd.DataFrame(out, columns=["paper", *SAME, "variant", "kind", "reading", "verdict"])
