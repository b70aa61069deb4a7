"""The audit, step by step: prepare (load and check everything), split, score each method, test.

    A = prepare(P)                 # folders, model, taps, split: every check, nothing written
    res = score_model(A, A.model)  # features once, then MINT / gMINT / loss on held-out samples
    run = open_run(A)              # only now the run folder is written

`run_audit(P)` does all of it and writes the report (``mintkit.audit.report``). The split follows
``mintkit.core.splits``: members D = the members tree; the MINT model's non-members E = the external
tree, or a seeded share of the non-members tree; held-out members and non-members are never seen by
any MINT model (``docs/audit.md``, "The split"). Every audit also runs the blind baseline on the same split
(``mintkit.audit.blind``), and the verdict accounts for it (``stats.verdict``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mintkit.attacks.references import ReferenceModels
from mintkit.audit import taps as tapmod
from mintkit.audit.attacks import attack_methods
from mintkit.audit.blind import BlindResult, run_blind
from mintkit.audit.checks import (
    assert_protocol,
    check_control,
    check_model_takes_images,
    check_sizes,
    resolve_gmint_layers,
    resolve_taps,
)
from mintkit.audit.custody import check_owner_split, file_digest, tree_digest
from mintkit.audit.data import AuditInputError, AuditPool, load_trees
from mintkit.audit.models import AuditedModel, load_audited_model
from mintkit.audit.params import AuditParams
from mintkit.audit.stats import DESIGNS, Verdict, beats_blind, holm, rank_test, verdict
from mintkit.core import precision as prec
from mintkit.core.records import Run
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split, build_split, set_hash
from mintkit.core.train import apply_threads, pick_device, sample_losses, seed_everything
from mintkit.methods import registry
from mintkit.methods.loss import loss_attack, loss_sets
from mintkit.methods.mint import MINT_SETS, MintData, run_mint

REPORTED = ("auc", "auc_ci_low", "auc_ci_high", "balanced_accuracy", "accuracy", "accuracy_calibrated",
            "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "n_eval_members", "n_eval_nonmembers")


@dataclass
class Audit:
    """Everything checked and ready: parameters, data, model(s), taps, split, device."""

    P: AuditParams
    pool: AuditPool
    model: AuditedModel
    control: AuditedModel | None
    split: Split
    methods: list[str]
    taps: list[str]
    tap_infos: list[tapmod.TapInfo]
    gmint_layers: list[str]
    device: torch.device
    attacks: list[str] = field(default_factory=list)  # reference attacks (mintkit.audit.attacks), after the methods
    refs: ReferenceModels | None = None               # their reference models, once trained
    design: dict = field(default_factory=lambda: {"name": DESIGNS[1]})  # + the owner-split record's facts
    custody: dict = field(default_factory=dict)       # sha256 and size of the model file(s), tree digests
    blind_cache: dict = field(default_factory=dict, repr=False)  # split's set hashes -> blind baseline


@dataclass
class MethodResult(BlindResult):
    """One method on one model: the fields of a blind classifier's result (every membership method's fields, the
    rank test, Holm p) plus its paired comparison with the blind baseline."""

    p_vs_blind: float = float("nan")       # one-sided DeLong p of beating every blind classifier (largest)
    p_vs_blind_holm: float = float("nan")  # ... Holm-adjusted over the methods
    vs_blind: str = ""                     # the blind classifier that largest p belongs to


@dataclass
class ModelResult:
    """All methods on one model, the verdict, and the model's accuracy on labelled non-members."""

    label: str
    methods: dict[str, MethodResult]
    nonmember_accuracy: float
    n_nonmember_accuracy: int
    verdict: Verdict
    seconds: dict[str, float] = field(default_factory=dict)
    blind: dict[str, BlindResult] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- preparation
def make_split(pool: AuditPool, n_eval: int, external_fraction: float, seed: int) -> Split:
    """The five sets over the pool: E from the external tree or a seeded share of the non-members.

    n_eval 0: as many held-out pairs as the folders allow (at most half the members).
    """
    members, non, ext = pool.of("members"), pool.of("nonmembers"), pool.of("external")
    rng = np.random.default_rng(seed)
    if len(ext):
        external_from, eval_from = ext, non
    else:
        perm = rng.permutation(non)
        k = round(len(non) * external_fraction)
        external_from, eval_from = perm[:k], perm[k:]
    n = n_eval or min(len(members) // 2, len(eval_from))
    if n > len(eval_from) or n >= len(members):
        raise AuditInputError(f"--n-eval {n}: held-out pairs, but only {len(members)} members and {len(eval_from)} "
                              "non-members are left for evaluation (members also train the MINT model); "
                              "lower --n-eval or add images")
    check_sizes(pool, n, len(external_from), len(members) - n)
    split = build_split(pool, n_members=len(members), n_external=len(external_from), n_eval=n, seed=seed,
                        n_mint_members=len(members) - n, external_from=external_from, nonmembers_from=eval_from,
                        members_from=members)
    assert_protocol(split, pool)
    return split


def load_model_for(P: AuditParams, path: str, pool: AuditPool) -> AuditedModel:
    return load_audited_model(path, P.arch, P.build, pool.num_classes, pool.in_channels)


def prepare(P: AuditParams, pool: AuditPool | None = None, model: AuditedModel | None = None) -> Audit:
    """Load and check the folders, the model (and control), the taps and gMINT layers; draw the split.

    `pool` / `model`: already loaded from P (the notebook loads them step by step). Raises
    AuditInputError (or ParameterError) on bad input; writes nothing.
    """
    seed_everything(P.seed)
    device = pick_device(P.device)
    apply_threads(P.threads, device)
    prec.resolve(P.precision, device)  # bf16 on a CPU without it fails here, before any data is read
    if pool is None:
        pool = load_trees(P.members, P.nonmembers, P.external, P.image_size, P.channels, P.normalize, P.reference)
    if model is None:
        model = load_model_for(P, P.model, pool)
    infos = check_model_takes_images(model, pool)
    methods = P.method_list(model.differentiable)
    reads = {m: registry.get(m).layers for m in methods}  # an unknown name fails here, before any work
    taps = resolve_taps(P.tap_list, infos) if "taps" in reads.values() else []
    weighed = [m for m, kind in reads.items() if kind == "weights"]
    layers = resolve_gmint_layers(model, P.gmint_layer_list, weighed) if weighed else []
    control = None
    if P.control:
        control = load_model_for(P, P.control, pool)
        check_control(model, control)
        check_model_takes_images(control, pool)
    if P.n_reference and model.kind != "python":
        raise AuditInputError(f"--n-reference {P.n_reference}: reference models are built like the audited model, and "
                              f"a {model.kind} file holds no recipe to build one; give a state dict with --arch or --build")
    split = make_split(pool, P.n_eval, P.external_fraction, P.seed)
    design = {"name": DESIGNS[1]}
    if P.owner_split:
        design = {"name": DESIGNS[0]} | check_owner_split(P.owner_split, P.members, P.nonmembers)
    return Audit(P, pool.to(device), model, control, split, methods, taps, infos, layers, device, list(P.attack_list),
                 design=design, custody=custody(P))


def custody(P: AuditParams) -> dict:
    """sha256 and size of the audited (and control) model file; content digests of every tree given."""
    out = {"model": file_digest(P.model)} | ({"control": file_digest(P.control)} if P.control else {})
    trees = {r: getattr(P, r) for r in ("members", "nonmembers", "external", "reference") if getattr(P, r)}
    return out | {"trees": {r: tree_digest(t, r) for r, t in trees.items()}}


def open_run(A: Audit) -> Run:
    """The run folder: params.json, env.json, split.json (only after every check passed)."""
    # a rerun into the same folder keeps the earlier audit's files beside it (mintkit.core.records.keep_earlier_run)
    run = Run(A.P.out_dir, "audit", A.P.as_dict() | {"custody": A.custody, "design": A.design}, seed=A.P.seed,
              device=A.device, protocol="heldout", precision=prec.resolve(A.P.precision, A.device))
    run.save_split(A.split)
    return run


# ---------------------------------------------------------------------------------------- scoring
def _rows(indices: np.ndarray, order: np.ndarray) -> torch.Tensor:
    """Rows of `indices` within the sorted index array `order`."""
    return torch.as_tensor(np.searchsorted(order, indices), dtype=torch.long)


def _mint_data(x: torch.Tensor, order: np.ndarray, split: Split) -> MintData:
    """MINT-training (mint_train_members = 1, E = 0) and held-out rows of features x [len(order), D]."""
    def pair(pos: str, neg: str) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[_rows(split[pos], order)], x[_rows(split[neg], order)]
        return torch.cat([a, b]), torch.cat([torch.ones(len(a)), torch.zeros(len(b))]).long()
    xt, yt = pair("mint_train_members", "external")
    xe, ye = pair("eval_members", "eval_nonmembers")
    return MintData(xt, yt, xe, ye)


def _tested(res: MembershipResult) -> MethodResult:
    """A method's result with the rank test of its held-out scores (members vs non-members)."""
    test = rank_test(res.members, res.nonmembers)
    return MethodResult(res.name, res.label, res.scores, res.labels, res.calib_scores, res.calib_labels, res.metrics,
                        res.seconds, test=test)


def blind_baseline(A: Audit) -> dict[str, BlindResult]:
    """The blind baseline on A's split, computed once per split (a relabelled copy of A gets its own)."""
    key = (id(A.pool.x), *(set_hash(A.split[s]) for s in ("mint_train_members", "external", "eval_members",
                                                           "eval_nonmembers")))  # these images, this split
    if key not in A.blind_cache:
        A.blind_cache[key] = run_blind(A.pool, A.split, A.P.n_boot, A.P.seed)
    return A.blind_cache[key]


def _loss_method(A: Audit, losses: np.ndarray, order: np.ndarray) -> MembershipResult:
    """The loss attack on the per-sample losses [len(order)], threshold calibrated on the MINT-training sets."""
    L = {s: losses[_rows(idx, order).numpy()] for s, idx in loss_sets(A.split).items()}
    res = loss_attack(L, n_boot=A.P.n_boot, seed=A.P.seed)

    # -log(loss) ranks as -loss (the rank test and the AUC are unchanged) and spreads small losses apart
    def log_score(pos: str, neg: str) -> np.ndarray:
        return -np.log(np.concatenate([L[pos], L[neg]]) + 1e-12)
    return replace(res, label="the loss attack", scores=log_score("eval_members", "eval_nonmembers"),
                   calib_scores=log_score("mint_train_members", "external"))


def _method(A: Audit, model: AuditedModel, method: str, feats: dict, losses: np.ndarray, order: np.ndarray,
            progress: bool) -> MembershipResult:
    """One registered method (mintkit.methods.registry) on the held-out samples; label = what it read. A MINT
    method's features go through the one MINT fit; a score method runs from the losses of the one pass."""
    spec = registry.get(method)  # unknown: a ValueError listing the valid names, never another method
    P = A.P
    if spec.features is None:
        return SCORE_METHODS[method](A, losses, order)
    taps = spec.layers == "taps"
    layers = A.taps if taps else A.gmint_layers
    x = spec.features(registry.Inputs(model.module, A.pool, order, layers, A.device, rule=P.gmint_rule,
                                      activations=torch.cat([feats[t] for t in A.taps], dim=1) if taps else None,
                                      progress=progress))
    shown = [tapmod.tap_label(t) for t in layers] if taps else layers
    return run_mint(_mint_data(x, order, A.split), "mlp", A.device, P.mint_epochs, P.seed, lr=P.mint_lr,
                    n_boot=P.n_boot, model_kw=spec.head, name=method, label=spec.describe(shown, P.gmint_rule),
                    precision=P.precision)


# the registry's score methods (features None) and what runs each here; tests/test_registry.py checks that every
# registered method is a MINT method or listed here
SCORE_METHODS = {"loss": _loss_method}


def _against_blind(A: Audit, out: dict[str, MethodResult]) -> dict[str, BlindResult]:
    """Holm over the methods, then each method's paired comparison with the blind baseline (Holm again)."""
    for k, p in holm({k: r.test.p for k, r in out.items()}).items():
        out[k].p_holm = p
    blind = blind_baseline(A)
    for r in out.values():
        assert all(np.array_equal(r.labels, b.labels) for b in blind.values()), "blind and method labels differ"
        r.p_vs_blind, r.vs_blind = beats_blind(r.scores, r.labels, {k: b.scores for k, b in blind.items()})
    for k, p in holm({k: r.p_vs_blind for k, r in out.items()}).items():
        out[k].p_vs_blind_holm = p
    return blind


def _summary(r: BlindResult) -> dict:
    """What the verdict reads of one result."""
    return {"test": r.test, "p_holm": r.p_holm, "auc_ci_low": r.metrics.get("auc_ci_low", float("nan")),
            "auc_ci_high": r.metrics.get("auc_ci_high", float("nan")), "what": r.label,
            "p_vs_blind": getattr(r, "p_vs_blind_holm", float("nan"))}


def score_model(A: Audit, model: AuditedModel, label: str = "audited", progress: bool = False) -> ModelResult:
    """Features of every sample once, then each method's held-out scores, tests and the verdict, all in the
    audit's own ``precision`` (set for the call, the caller's policy restored after: docs/precision.md)."""
    with prec.using(A.P.precision):
        return _score_model(A, model, label, progress)


def _score_model(A: Audit, model: AuditedModel, label: str, progress: bool) -> ModelResult:
    P, pool, split = A.P, A.pool, A.split
    seed_everything(P.seed)  # the control gets the same MINT initialisation as the audited model
    order = np.unique(np.concatenate([split[s] for s in MINT_SETS] + [pool.of("nonmembers")]))
    t0 = time.perf_counter()
    feats, logits = tapmod.extract(model, pool, order, A.taps, A.device, P.batch_size)
    y = pool.y[torch.as_tensor(order)].cpu()
    losses = sample_losses(logits, y)
    non = _rows(pool.of("nonmembers"), order)
    acc = float((logits[non].argmax(1) == y[non]).float().mean())
    seconds = {"features": time.perf_counter() - t0}
    out: dict[str, MethodResult] = {}
    for method in A.methods:
        t0 = time.perf_counter()
        res = _method(A, model, method, feats, losses, order, progress)
        res.seconds = seconds[method] = time.perf_counter() - t0
        out[method] = _tested(res)
    if A.attacks:  # one family with the methods: the same held-out samples, the same rank test and Holm step
        for name, r in attack_methods(A, model).items():
            out[name] = _tested(r)
            seconds[name] = r.seconds
    t0 = time.perf_counter()
    blind = _against_blind(A, out)
    seconds["blind"] = time.perf_counter() - t0
    v = verdict({k: _summary(r) for k, r in out.items()}, P.alpha, "the members" if label == "audited" else
                "the members (control model)", {k: _summary(b) for k, b in blind.items()}, A.design["name"])
    return ModelResult(label, out, acc, len(non), v, seconds, blind)


def record(run: Run, res: ModelResult) -> None:
    """Tidy rows (results.csv) and per-sample scores (scores.npz) of one model's results."""
    for k, r in res.methods.items():
        extra = {"p_value": r.test.p, "p_holm": r.p_holm, "mann_whitney_u": r.test.u, "p_vs_blind": r.p_vs_blind,
                 "p_vs_blind_holm": r.p_vs_blind_holm}
        run.add_metrics(r.metrics | extra, audited={"audited_nonmember_accuracy": res.nonmember_accuracy},
                        metric_names=[m for m in REPORTED if m in r.metrics] + list(extra),
                        model=res.label, setup=k, feature=r.label)
        run.save_scores(**{f"{res.label}_{k}_scores": r.scores, f"{res.label}_{k}_labels": r.labels})
    for k, b in res.blind.items():  # the blind baseline: once per run folder, model = "blind"
        if any(row["model"] == "blind" and row["setup"] == k for row in run.rows):
            continue
        run.add_metrics(b.metrics | {"p_value": b.test.p, "p_holm": b.p_holm, "mann_whitney_u": b.test.u},
                        metric_names=[m for m in REPORTED if m in b.metrics] + ["p_value", "p_holm", "mann_whitney_u"],
                        model="blind", setup=k, feature=b.label)
        run.save_scores(**{f"blind_{k}_scores": b.scores, f"blind_{k}_labels": b.labels})
