"""The null control: an audited model that never saw the members, run through the same pipeline.

A membership number means something only if the pipeline reads chance when there is nothing to detect. With
``null_model`` set, a paper notebook keeps its split (the members D, the non-members, every evaluated set)
and changes one thing, what trains the audited model:

===============  ============================================================================================
``off``          the run as defined: the audited model trains on D.
``other-data``   it trains, with the same recipe, on |D| *stand-ins*: pool samples of D's origin (the official
                 training split where there is one) outside every set of the split, drawn with the seed. Where a
                 paper also trains something else on D (aMINT's MINT loss), the stand-in of each member takes its
                 place there too, so neither the model nor its head ever sees D. The strongest control: a
                 trained, generalising model with no member to find.
``untrained``    it keeps its initial weights (no training at all). Cheap, needs no extra data, but a random
                 network is an easy case; prefer ``other-data`` where the pool allows it.
===============  ============================================================================================

Every method and attack must then score D like the non-members: accuracy and AUC within the sampling error of
the counts around 0.5 (docs/protocol.md, "Null control"). A method or protocol variant far above chance on the
null model measures the pipeline (an ordering artifact, a distribution shift between D's and the non-members'
sources, a head scored on its own training samples), not membership. Results rows carry ``null=<mode>`` in
their ``variant``, so the report never mixes them into the defined cells.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from mintkit.core.data import Pool
from mintkit.core.records import DEFINITION
from mintkit.core.splits import Split, SplitError
from mintkit.core.train import TrainConfig

NULL_MODELS: tuple[str, ...] = ("off", "other-data", "untrained")
CHANCE_ALPHA = 1e-3  # two-sided binomial test of a null-control cell's accuracy against 0.5
ACCURACY_KEYS = ("accuracy",)  # every method's accuracy at its decision threshold (records.RENAMED_METRICS: old keys)
CELL = ["table", "setup", "condition", "feature", "protocol"]
POSITIVE = "control=leaky"  # the results-variant part of a positive control
POSITIVE_HELP = ("positive control: labels the run's rows control:leaky. Run it with a deliberately leaky recipe "
                 "(a few hundred members, no early stopping: patience 0); its loss attack must read well above "
                 "chance, or the claims ledger does not count it (docs/protocol.md, Claims ledger)")
NULL_HELP = ("null control: off, other-data (the audited model trains on |D| pool samples outside every set, never "
             "on D: every method must read chance), untrained (its initial weights)")


def null_label(mode: str) -> str:
    """The results-variant part of a null mode: '' when off, else 'null=<mode>'."""
    if mode not in NULL_MODELS:
        raise ValueError(f"null_model={mode!r}; valid: {', '.join(NULL_MODELS)}")
    return "" if mode == "off" else f"null={mode}"


def join_variant(*parts: str, definition: str = DEFINITION) -> str:
    """One variant label from its parts, leaving out the definition and empty ones: 'definition' when none is
    left (e.g. ('definition', 'null=untrained') -> 'null=untrained')."""
    kept = [p for p in parts if p and p != definition]
    return ",".join(kept) or definition


def stand_ins(pool: Pool, split: Split, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """[|D|] pool indices that replace D in the null control's training, position i for ``split['members'][i]``
    (the split keeps its sets sorted): samples of D's origin in no set of `split` nor in `exclude` (e.g. an
    early-stopping validation slice), a seeded draw. Raises SplitError naming the counts and the fix when the
    pool has too few."""
    members = split["members"]
    used = np.concatenate([*split.sets.values(), np.asarray(exclude if exclude is not None else [], np.int64)])
    origin = pool.origin.cpu().numpy()
    home = np.bincount(origin[members]).argmax() if len(members) else 0
    free = np.setdiff1d(np.flatnonzero(origin == home), used)
    if len(free) < len(members):
        raise SplitError(f"null_model='other-data' needs {len(members)} stand-ins for D outside every set; the pool "
                         f"offers {len(free)}. Lower n_members / n_external, or use null_model='untrained'")
    return np.random.default_rng([seed, 23]).permutation(free)[:len(members)]


def substitute(idx: np.ndarray, members: np.ndarray, standins: np.ndarray) -> np.ndarray:
    """`idx` with every member replaced by its stand-in (members[i] -> standins[i]); other indices kept. [n]"""
    idx = np.asarray(idx, dtype=np.int64)
    pos = np.searchsorted(members, idx)
    pos = np.minimum(pos, len(members) - 1) if len(members) else pos
    hit = (members[pos] == idx) if len(members) else np.zeros(len(idx), bool)
    out = idx.copy()
    out[hit] = standins[pos[hit]]
    return out


def training_split(split: Split, standins: np.ndarray) -> Split:
    """The split the null model trains on: the stand-ins as members, the non-member sets unchanged, nothing
    evaluated (the run still evaluates `split`). Checked like any split: the stand-ins touch no other set."""
    empty = np.empty(0, dtype=np.int64)
    sets = dict(split.sets) | {"members": standins, "mint_train_members": empty, "eval_members": empty}
    return Split(sets, split.pool, split.pool_size, split.seed, "none",
                 meta={"null_model": "other-data", "members_replaced": int(len(standins))})


def null_training(pool: Pool, split: Split, mode: str, seed: int, cfg: TrainConfig,
                  exclude: np.ndarray | None = None) -> tuple[Split, TrainConfig]:
    """(split, cfg) the audited model trains with under null mode `mode`: unchanged when off; the stand-ins'
    split (`training_split`) for other-data; zero epochs (its initial weights, no early stopping) for
    untrained. `exclude`: samples the stand-ins must avoid besides the split's sets (a validation slice)."""
    null_label(mode)
    if mode == "other-data":
        return training_split(split, stand_ins(pool, split, seed, exclude)), cfg
    if mode == "untrained":
        return split, dataclasses.replace(cfg, epochs=0, patience=0)
    return split, cfg


def chance_table(rows: pd.DataFrame | list[dict], alpha: float = CHANCE_ALPHA) -> pd.DataFrame:
    """One line per membership cell of results rows (a run's ``run.rows`` or read_results' frame): its accuracy at
    0.5, AUC, the evaluated counts n = members + non-members, the two-sided binomial p of round(accuracy * n)
    successes against 0.5, and ``beyond_chance`` (p < alpha). On a null model every line must be False.
    Columns: [run_id,] CELL, accuracy, auc, n, p, beyond_chance; cells without evaluation counts are left out."""
    df = pd.DataFrame(rows)
    cols = ["run_id"] * ("run_id" in df.columns) + CELL
    none = pd.DataFrame(columns=[*cols, "accuracy", "auc", "n", "p", "beyond_chance"])
    if df.empty:
        return none
    wide = df.pivot_table(index=cols, columns="metric", values="value", aggfunc="first").reset_index()
    acc = next((m for m in ACCURACY_KEYS if m in wide.columns), None)
    if acc is None or not {"n_eval_members", "n_eval_nonmembers"} <= set(wide.columns):
        return none
    wide = wide.dropna(subset=[acc, "n_eval_members", "n_eval_nonmembers"])
    n = (wide["n_eval_members"] + wide["n_eval_nonmembers"]).astype(int)
    p = [binomtest(int(round(a * k)), k, 0.5).pvalue for a, k in zip(wide[acc], n)]
    out = wide[cols].assign(accuracy=wide[acc], auc=wide["auc"] if "auc" in wide.columns else np.nan, n=n, p=p)
    return out.assign(beyond_chance=out["p"] < alpha).reset_index(drop=True)
