"""Factors (CVPRW 2024): how the developer's training choices change what MINT detects.

Four scenarios, each a full retraining of the audited model with one factor changed (methods.md 5):

| scenario   | table   | values (paper)                 | what changes                                         |
|------------|---------|--------------------------------|------------------------------------------------------|
| `exposure` | Table 2 | x1, x10, x20, x30              | members in four quarters, each repeated k× per epoch |
| `batch`    | Table 3 | 8, 32, 64, 256                 | batch size of the audited model                      |
| `dropout`  | Table 4 | with / without                 | the dropout in front of the output layer on or off   |
| `loss`     | Table 5 | AdaFace, CosFace, ArcFace      | the margin head (+ plain softmax CE for classifiers) |
| `baseline` | Table 1 | -                              | the base parameters                                  |

`sweep(scenario, values, P)` trains (or loads from the cache) one audited model per value, fits the
Factors' Vanilla MINT (two FC layers with ReLU, BatchNorm, dropout 0.3, 20 epochs, Adam 1e-3; widths
`mint_hidden1/2`, which the paper does not give) on each of the four stages, the outcome and all conv
layers, and returns tidy rows (`records.RESULT_COLUMNS`). Exposure trains ONE model and one MINT model
per quarter: MINT-training and evaluation members of that quarter, the non-members shared by all quarters.

Audited quality: the paper reports face verification accuracy (IR-50 on MS1Mv3). For `imagefolder:`
face data we compute verification accuracy on held-out images (10-fold threshold, cosine of the
outcome embeddings) and write it both as `fr_verification_accuracy` and as `audited_accuracy`; on
classification datasets the classes play identities and the audited quality is top-1 test accuracy.

Margin heads on non-face architectures: the zoo has margin heads only on the IResNets; for the CPU
default (`smallcnn`) `MarginSmallCNN` swaps the classifier for an embedding layer + the margin head of
`mintkit.models.iresnet` (same stage taps; its outcome is the head's output s·cos θ, the softmax model's the logits).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from mintkit.core import params as _params
from mintkit.models.convnets import SmallCNN
from mintkit.core.data import Pool, load_pool
from mintkit.models.iresnet import build_head
from mintkit.core.splits import Split, SplitError, _take_groups, build_split

PAPER = "factors"
SCENARIOS = {"baseline": "Table 1", "exposure": "Table 2", "batch": "Table 3", "dropout": "Table 4",
             "loss": "Table 5"}
TAPS = ("stage1", "stage2", "stage3", "stage4", "outcome")
FEATURE_SETS = {"Conv Layer #1": ["stage1"], "Conv Layer #2": ["stage2"], "Conv Layer #3": ["stage3"],
                "Conv Layer #4": ["stage4"], "Model Outcome": ["outcome"],
                "All Conv Layers": ["stage1", "stage2", "stage3", "stage4"]}  # paper: outcome kept apart
MINT_LABEL = "Vanilla MINT"
LOSS_LABELS = {"adaface": "AdaFace loss", "cosface": "CosFace loss", "arcface": "ArcFace loss",
               "softmax": "Softmax loss"}

PARAMS = _params.schema({
    "scenarios": (str, "exposure,batch,dropout,loss", "comma list of scenarios to run: exposure, batch, dropout, "
                  "loss (Table 1 = the base model is always added)"),
    "image_size": (int, 0, "resize images to this side (0 = native; 112 for face data as the paper)"),
    "arch": (str, "smallcnn", "audited architecture (paper: iresnet50 = IR-50)"),
    "loss": (str, "softmax", "base head/loss: softmax, adaface, cosface, arcface (paper baseline: adaface)"),
    "dropout": (float, 0.5, "p of the dropout before the output layer in the base model (paper: on)"),
    "audited_epochs": (int, 8, "epochs of every audited model (paper: 20 [INF])"),
    "exposure_epochs": (int, 1, "epochs of the exposure model, each epoch repeating quarter k exposures[k] times "
                        "(0 = audited_epochs)"),
    "batch_size": (int, 64, "base batch size of the audited model (paper: 256)"),
    "optimizer": (str, "adam", "optimizer of the audited model: adam or sgd (momentum 0.9; AdaFace repo: sgd)"),
    "lr": (float, 1e-3, "learning rate of the audited model (constant; no milestone schedule)"),
    "weight_decay": (float, 0.0, "weight decay of the audited model"),
    "exposures": (str, "1,10,20,30", "Table 2: repetitions per epoch of each member quarter (one per quarter)"),
    "batch_sizes": (str, "8,64,128", "Table 3: batch sizes (paper: 8,32,64,256; 256 barely trains on 500 digits)"),
    "losses": (str, "adaface,cosface,arcface,softmax", "Table 5: heads (paper: adaface,cosface,arcface)"),
    "margin_scale": (float, 16.0, "s of the margin heads (AdaFace repo: 64; 16 trains faster with few classes)"),
    "embedding_dim": (int, 64, "embedding width of the margin-head SmallCNN (face archs: 512)"),
    "n_members": (int, 500, "|D| of scenarios 2-4 (exposure: split in quarters)"),
    "n_external": (int, 300, "|E|: non-members that train every MINT model (shared by the quarters)"),
    "n_eval": (int, 50, "evaluation members = evaluation non-members per MINT model (exposure: per quarter)"),
    "exposure_members": (int, 400, "|D| of the exposure model (4 quarters of exposure_members/4)"),
    "identity_disjoint": (bool, False, "whole identities per set (face data: True, as MINT)"),
    "mint_epochs": (int, 20, "epochs of the Vanilla MINT model (paper: 20)"),
    "mint_hidden1": (int, 128, "width of the first FC layer of the MINT model [NF in the paper]"),
    "mint_hidden2": (int, 64, "width of the second FC layer of the MINT model [NF in the paper]"),
    "mint_dropout": (float, 0.3, "dropout of the MINT model (paper: 0.3)"),
    "n_boot": (int, 200, "bootstrap resamples of the confidence intervals (0 = none)"),
    "cache_dir": (str, ".cache/mintkit/models", "cache of trained audited models ('' = no cache)"),
    "out_dir": (str, "runs/factors-scratch", "run folder to write"),
})


# ----------------------------------------------------------------------------- parameters


def as_list(text: str, typ: type = str) -> list:
    """'8, 64,256' -> [8, 64, 256] (presets keep lists for grids, so a scenario's values are a string)."""
    return [typ(v.strip()) for v in str(text).split(",") if v.strip()]


def scenario_values(P: dict, scenario: str) -> list:
    """The values a scenario sweeps, from P: exposures, batch sizes, dropout on/off, heads."""
    if scenario == "exposure":
        return as_list(P["exposures"], int)
    if scenario == "batch":
        return as_list(P["batch_sizes"], int)
    if scenario == "dropout":
        return [P["dropout"], 0.0] if P["dropout"] > 0 else [0.0]
    if scenario == "loss":
        return as_list(P["losses"])
    if scenario == "baseline":
        return [None]
    raise _params.ParameterError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")


def condition(scenario: str, value) -> str:
    """The paper's column label of a value (paper_tables README)."""
    if scenario == "exposure":
        return f"x{value}"
    if scenario == "batch":
        return f"batch {value}"
    if scenario == "dropout":
        return "with dropout" if value > 0 else "without dropout"
    if scenario == "loss":
        return LOSS_LABELS.get(value, f"{value} loss")
    return "Baseline"


# ----------------------------------------------------------------------------- models


class MarginSmallCNN(SmallCNN):
    """SmallCNN whose classifier is an embedding layer (Linear width -> `embedding`) followed by a
    margin head of `mintkit.models.iresnet` (ArcFace/CosFace/AdaFace). Same stage taps as SmallCNN; the
    margin is applied only when labels are given in training mode (as `iresnet.FaceModel`)."""

    needs_labels = True

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
                 head: str = "arcface", embedding: int = 64, **head_kw) -> None:
        super().__init__(num_classes, in_channels, image_size, dropout)
        self.fc = nn.Linear(self.fc.in_features, embedding)
        self.margin = build_head(head, embedding, num_classes, **head_kw)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = super().forward(x)
        return self.margin(emb, labels if (labels is not None and self.training) else None)


def build_audited(arch: str, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
                  head: str = "softmax", embedding: int = 64, **head_kw) -> nn.Module:
    """The zoo's model, or `MarginSmallCNN` for a margin head on `smallcnn` (the zoo has none)."""
    from mintkit.models.zoo import build_model
    if arch != "smallcnn" or head == "softmax":
        return build_model(arch, num_classes, in_channels, image_size, dropout=dropout, head=head, **head_kw)
    model = MarginSmallCNN(num_classes, in_channels, image_size, dropout, head=head, embedding=embedding, **head_kw)
    model.arch = "smallcnn"  # the taps of SmallCNN resolve unchanged
    model.config = dict(arch=arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                        dropout=dropout, head=head, embedding=embedding, **head_kw)
    return model


def head_kw(P: dict, head: str) -> tuple[object, dict]:
    """(build_fn, model_kw) for pipeline.train_audited: margin scale for margin heads, the wrapper on smallcnn."""
    if head == "softmax":
        return None, {}
    kw = {"s": P["margin_scale"]}
    if P["arch"] == "smallcnn":
        return build_audited, kw | {"embedding": P["embedding_dim"]}
    return None, kw


# ----------------------------------------------------------------------------- exposure


def exposure_split(pool: Pool, n_members: int, n_external: int, n_eval: int, n_quarters: int = 4, seed: int = 0,
                   identity_disjoint: bool = False) -> Split:
    """Split for the exposure scenario: D in `n_quarters` equal parts, each with `n_eval` evaluation members
    and the rest as MINT-training members; E and `n_eval` evaluation non-members shared by all quarters.

    split.meta['quarter'][i] is the quarter of split['members'][i] (sorted order, as train_audited uses).
    """
    rng = np.random.default_rng(seed)
    group = pool.group.cpu().numpy() if identity_disjoint else np.arange(len(pool))
    avail = rng.permutation(len(pool))
    members, avail = _take_groups(avail, group, n_members, "members")
    external, avail = _take_groups(avail, group, n_external, "external")
    eval_non, _ = _take_groups(avail, group, n_eval, "eval_nonmembers")
    per = len(members) // n_quarters
    if per <= n_eval:
        raise SplitError(f"exposure: {per} members per quarter cannot hold n_eval={n_eval} evaluation members "
                         f"and MINT-training members; raise exposure_members or lower n_eval")
    quarter_of, mint, evals = {}, [], []
    rest = members
    for q in range(n_quarters):
        part, rest = (rest, rest[:0]) if q == n_quarters - 1 else _take_groups(rest, group, per, f"quarter {q + 1}")
        ev, tr = _take_groups(rng.permutation(part), group, n_eval, f"eval members of quarter {q + 1}")
        quarter_of |= {int(i): q for i in part}  # a group cut at a quarter's border is left out of D
        mint.append(tr)
        evals.append(ev)
    members = np.fromiter(quarter_of, dtype=np.int64)
    split = Split({"members": members, "external": external, "mint_train_members": np.concatenate(mint),
                   "eval_members": np.concatenate(evals), "eval_nonmembers": eval_non}, pool.name, len(pool), seed,
                  "none", {"nonmember_origin": "pool", "identity_disjoint": identity_disjoint,
                           "n_quarters": n_quarters})
    split.meta["quarter"] = [quarter_of[int(i)] for i in split["members"]]
    return split


def quarters(split: Split) -> np.ndarray:
    """Quarter [len(members)] of each member, aligned with split['members']."""
    return np.asarray(split.meta["quarter"], dtype=np.int64)


def exposure_repeats(split: Split, exposures: list[int]) -> torch.Tensor:
    """The exposure sampler's counts: [len(members)] int64, member i repeated exposures[quarter(i)] times per
    epoch (train.epoch_indices repeats and shuffles them within the epoch)."""
    q = quarters(split)
    if q.max() >= len(exposures):
        raise ValueError(f"{q.max() + 1} quarters but {len(exposures)} exposures")
    return torch.as_tensor(np.asarray(exposures, dtype=np.int64)[q])


def quarter_features(feats: dict, split: Split, q: int) -> dict:
    """Features of the MINT sets restricted to quarter q's members (non-member sets unchanged)."""
    qmap = dict(zip(split["members"].tolist(), quarters(split).tolist()))
    out = {}
    for s, taps in feats.items():
        if s in ("mint_train_members", "eval_members"):
            keep = torch.as_tensor([qmap[int(i)] == q for i in split[s]])
            out[s] = {t: v[keep] for t, v in taps.items()}
        else:
            out[s] = taps
    return out


# ----------------------------------------------------------------------------- audited quality


def verification_accuracy(emb: torch.Tensor, ident: np.ndarray, n_pairs: int = 3000, folds: int = 10,
                          seed: int = 0) -> float:
    """Face verification accuracy (LFW protocol): genuine and impostor pairs of `emb` [N, D] by identity,
    cosine similarity, threshold chosen on the other folds, accuracy averaged over `folds`."""
    rng = np.random.default_rng(seed)
    e = nn.functional.normalize(emb.float(), dim=1)
    ident = np.asarray(ident)
    by_id = [np.flatnonzero(ident == g) for g in np.unique(ident)]
    by_id = [ix for ix in by_id if len(ix) > 1]
    if not by_id:
        return float("nan")
    gen = np.array([rng.choice(by_id[k], 2, replace=False) for k in rng.integers(len(by_id), size=n_pairs)])
    imp = rng.integers(len(ident), size=(4 * n_pairs, 2))
    imp = imp[ident[imp[:, 0]] != ident[imp[:, 1]]][:n_pairs]
    pairs, same = np.r_[gen, imp], np.r_[np.ones(len(gen)), np.zeros(len(imp))].astype(bool)
    sim = (e[pairs[:, 0]] * e[pairs[:, 1]]).sum(1).numpy()
    fold = rng.permutation(len(sim)) % folds
    accs = []
    for f in range(folds):
        tr, te = fold != f, fold == f
        cand = np.quantile(sim[tr], np.linspace(0, 1, 401))  # thresholds: 400 quantiles of the other folds
        best = cand[np.argmax([((sim[tr] >= t) == same[tr]).mean() for t in cand])]
        accs.append(((sim[te] >= best) == same[te]).mean())
    return float(np.mean(accs))


def audited_quality(model: nn.Module, pool: Pool, split: Split, device: torch.device) -> dict:
    """audited_train_accuracy (members) and audited_accuracy: top-1 on the evaluation non-members, or for face
    data (imagefolder:) verification accuracy on them (also written as fr_verification_accuracy)."""
    from mintkit.core.extract import extract
    from mintkit.core.train import accuracy
    out = {"audited_train_accuracy": accuracy(model, pool, split["members"], device)}
    if pool.name.startswith("imagefolder:"):
        idx = split["eval_nonmembers"]
        emb = extract(model, pool, idx, ["outcome"], device)["outcome"]
        out["fr_verification_accuracy"] = verification_accuracy(emb, pool.group.cpu().numpy()[idx])
        out["audited_accuracy"] = out["fr_verification_accuracy"]
    else:
        out["audited_accuracy"] = accuracy(model, pool, split["eval_nonmembers"], device)
    return out


# ----------------------------------------------------------------------------- the sweep


def setup(P: dict, run_dir: str | None = None):
    """Seed, device, pool (on the device), run folder: (run, pool, device)."""
    from mintkit.core.records import Run
    from mintkit.core.train import pick_device, seed_everything
    bad = [s for s in as_list(P["scenarios"]) if s not in SCENARIOS]
    if bad:
        raise _params.ParameterError(f"unknown scenario(s) {bad}; valid: {', '.join(list(SCENARIOS)[1:])}")
    seed_everything(P["seed"])
    device = pick_device(P["device"])
    pool = load_pool(P["dataset"], P["data_root"], image_size=P["image_size"] or None).to(device)
    return Run(run_dir or P["out_dir"], PAPER, P, seed=P["seed"], device=device, protocol=P["protocol"]), pool, device


def make_split(P: dict, pool: Pool, scenario: str) -> Split:
    """The exposure split (quarters) or the shared split of the other scenarios (one audited model cache)."""
    if scenario == "exposure":
        return exposure_split(pool, P["exposure_members"], P["n_external"], P["n_eval"],
                              len(as_list(P["exposures"])), P["seed"], P["identity_disjoint"])
    return build_split(pool, P["n_members"], P["n_external"], P["n_eval"], seed=P["seed"],
                       identity_disjoint=P["identity_disjoint"])


def variant(P: dict, scenario: str, value, split: Split) -> dict:
    """Keyword arguments of pipeline.train_audited for one value of a scenario."""
    from mintkit.core.train import TrainConfig
    batch = value if scenario == "batch" else P["batch_size"]
    head = value if scenario == "loss" else P["loss"]
    epochs = (P["exposure_epochs"] or P["audited_epochs"]) if scenario == "exposure" else P["audited_epochs"]
    build_fn, model_kw = head_kw(P, head)
    return {"cfg": TrainConfig(epochs=epochs, batch_size=batch, lr=P["lr"], optimizer=P["optimizer"],
                               weight_decay=P["weight_decay"]),
            "dropout": value if scenario == "dropout" else P["dropout"], "head": head,
            "repeats": exposure_repeats(split, value) if scenario == "exposure" else None,
            "build_fn": build_fn, "model_kw": model_kw}


def _mint_rows(feats: dict, P: dict, device, keys: dict, n_boot: int) -> tuple[list, dict]:
    """Vanilla MINT on each feature set: (rows [(metric, value, keys)], scores {name: array})."""
    from mintkit.core.metrics import METRICS
    from mintkit.core.stages import mint_data, run_mint
    rows, scores = [], {}
    for name, taps in FEATURE_SETS.items():
        res = run_mint(mint_data(feats, taps), "mlp", device, P["mint_epochs"], P["seed"], lr=1e-3,
                       n_boot=n_boot, model_kw={"hidden": (P["mint_hidden1"], P["mint_hidden2"]),
                                                "dropout": P["mint_dropout"]})
        k = keys | {"feature": f"{MINT_LABEL};{name}"}
        rows += [(m, res["metrics"][m], k) for m in METRICS if m in res["metrics"]]
        tag = f"{keys['table']}|{keys['condition']}|{name}".replace(" ", "_")
        scores[f"{tag}|scores"], scores[f"{tag}|labels"] = res["scores"], res["labels"]
    return rows, scores


def sweep(scenario: str, values: list | None, P: dict, pool: Pool | None = None, device=None, run=None,
          progress: bool = False) -> pd.DataFrame:
    """Train (or load cached) one audited model per value of `scenario`, run Vanilla MINT on every feature set,
    and return tidy rows (records.RESULT_COLUMNS); with `run`, rows go to results.csv and scores to scores.npz.

    values: None -> scenario_values(P, scenario). exposure: one model, `values` = exposure per quarter.
    """
    from mintkit.core.stages import set_features, train_audited
    from mintkit.reference import label_dataset, label_model
    from mintkit.core.train import pick_device
    values = scenario_values(P, scenario) if values is None else list(values)
    device = device or pick_device(P["device"])
    pool = pool if pool is not None else load_pool(P["dataset"], P["data_root"], P["image_size"] or None).to(device)
    split = make_split(P, pool, scenario)
    if run is not None and not (run.dir / "split.json").exists() and scenario != "exposure":
        run.save_split(split)
    if run is not None and scenario == "exposure":
        split.save(run.dir / "split_exposure.json")
    base = {"table": SCENARIOS[scenario], "dataset": label_dataset(P["dataset"]), "model": label_model(P["arch"]),
            "setup": ""}
    records, scores = [], {}
    for value in (values if scenario != "exposure" else [values]):
        t0 = time.perf_counter()
        model, info = train_audited(pool, split, P["arch"], device=device, seed=P["seed"],
                                    cache_dir=P["cache_dir"] or None, progress=progress,
                                    **variant(P, scenario, value, split))
        t_train = info.get("seconds", 0.0) if not info.get("cache_hit") else 0.0
        audited = audited_quality(model, pool, split, device)
        t1 = time.perf_counter()
        feats = set_features(model, pool, split, list(TAPS), device)
        t_feat = time.perf_counter() - t1
        parts = [(condition(scenario, v), quarter_features(feats, split, q)) for q, v in enumerate(value)] \
            if scenario == "exposure" else [(condition(scenario, value), feats)]
        for cond, f in parts:
            t2 = time.perf_counter()
            keys = base | {"condition": cond}
            rows, sc = _mint_rows(f, P, device, keys, P["n_boot"])
            for name in FEATURE_SETS:  # the audited model's quality under the keys of every MINT result
                rows += [(m, v, keys | {"feature": f"{MINT_LABEL};{name}"}) for m, v in audited.items()]
            rows += [("time_mint", time.perf_counter() - t2, keys | {"feature": ""}),
                     ("time_train", t_train, keys | {"feature": ""}),
                     ("time_features", t_feat, keys | {"feature": ""}),
                     ("time_total", time.perf_counter() - t0, keys | {"feature": ""})]
            records += rows
            scores |= sc
    return _record(records, scores, P, run)


def _record(records: list, scores: dict, P: dict, run) -> pd.DataFrame:
    """Rows into the run (results.csv, scores.npz) and as a DataFrame of RESULT_COLUMNS."""
    from mintkit.core.records import RESULT_COLUMNS
    if run is not None:
        n0 = len(run.rows)
        for metric, value, keys in records:
            run.add(metric, value, **keys)
        run.save_scores(**{k.replace("|", "__").replace("#", "").replace(";", "_"): v for k, v in scores.items()})
        return pd.DataFrame(run.rows[n0:], columns=RESULT_COLUMNS)
    rows = [{"paper": PAPER, "setup": "", "metric": m, "value": float(v), "protocol": P["protocol"],
             "seed": P["seed"], "run_id": ""} | k for m, v, k in records]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


# ----------------------------------------------------------------------------- tables and figures


def selected(P: dict) -> list[str]:
    """Scenarios of this run, in the paper's order."""
    chosen = as_list(P["scenarios"])
    return [s for s in SCENARIOS if s in chosen and s != "baseline"]


def run_all(P: dict, pool: Pool, device, run=None, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Table 1 (the base model) and every selected scenario: {scenario: tidy rows}."""
    return {s: sweep(s, None, P, pool, device, run=run, progress=progress) for s in ["baseline", *selected(P)]}


def paper_table(rows: pd.DataFrame, scenario: str, metric: str = "mint_accuracy") -> pd.DataFrame:
    """The paper's layout of one scenario: auditable data x condition, cells 'reproduced (published)'; a last
    row gives the audited model's quality (paper: FR verification accuracy)."""
    from mintkit.core.plots import published_vs_reproduced
    from mintkit.reference import published
    table = SCENARIOS[scenario]
    keys = ["table", "condition", "feature", "metric"]
    pub = published(PAPER)
    mine = rows[rows["metric"] == metric]
    both = published_vs_reproduced(mine, pub[(pub.table == table) & (pub.metric == metric)], keys, how="outer")
    aud = rows[rows["metric"] == "audited_accuracy"].drop_duplicates("condition")
    conds = list(dict.fromkeys(list(mine["condition"]) + list(both["condition"])))
    fr = pub[(pub.table == table) & (pub.metric == "fr_verification_accuracy")].set_index("condition")["value"]

    def cell(ours, paper) -> str:
        a = "-" if pd.isna(ours) else f"{ours:.2f}"
        return a if pd.isna(paper) else f"{a} ({paper:.2f})"

    out = {c: {f.split(";", 1)[1]: cell(r.reproduced, r.published) for r in both[both.condition == c].itertuples()
               for f in [r.feature]} for c in conds}
    for c in conds:
        ours = aud.loc[aud.condition == c, "value"]
        out[c]["Audited quality"] = cell(ours.iloc[0] if len(ours) else np.nan, fr.get(c, fr.get("all quarters")))
    df = pd.DataFrame(out).reindex([*FEATURE_SETS, "Audited quality"])
    df.index.name = f"{table}: ours (paper)"
    return df.fillna("-")


def plot_factor(rows: pd.DataFrame, scenario: str, ax, metric: str = "mint_accuracy"):
    """MINT accuracy of each feature set against the factor's values; audited accuracy on a second axis."""
    mine = rows[rows["metric"] == metric]
    conds = list(dict.fromkeys(mine["condition"]))
    x = np.arange(len(conds))
    for name in FEATURE_SETS:
        v = mine[mine.feature == f"{MINT_LABEL};{name}"].set_index("condition")["value"].reindex(conds)
        ax.plot(x, v.values, marker="o", label=name)
    aud = rows[rows.metric == "audited_accuracy"].drop_duplicates("condition").set_index("condition")["value"]
    ax2 = ax.twinx()
    ax2.plot(x, aud.reindex(conds).values, "k--", marker="s", label="audited accuracy")
    ax2.set_ylabel("audited accuracy")
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(x, conds)
    ax.set_ylabel("MINT accuracy")
    ax.set_title(f"{SCENARIOS[scenario]}: {scenario}")
    return ax, ax2


def figure(results: dict[str, pd.DataFrame]):
    """One panel per scenario (plot_factor), a shared legend."""
    import matplotlib.pyplot as plt
    names = [s for s in results if s != "baseline"] or list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.0), squeeze=False, constrained_layout=True)
    for s, ax in zip(names, axes[0]):
        plot_factor(results[s], s, ax)
    h1, l1 = axes[0][0].get_legend_handles_labels()
    fig.legend(h1 + [plt.Line2D([], [], color="k", ls="--", marker="s")], l1 + ["audited accuracy"],
               loc="outside lower center", ncol=7, fontsize=7)
    return fig
