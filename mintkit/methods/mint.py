"""MINT (docs/mint.md): the data of the membership classifier, its training on balanced batches, its scores.

The MINT model T (`mintkit.models.classifiers`) learns member (1) vs non-member (0) from the audited model's
activations: trained on the MINT-training members and the external data, evaluated on the evaluation members
and non-members; its calibrated threshold comes from MINT-training scores, never from evaluation data.

Precision (docs/precision.md): the heads' fits and scores are membership signals, fp32 on CPU whatever was asked;
on CUDA they run in the ``precision`` they are given (None: the process's policy; ``auto``: bf16 autocast).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.fit import DID_NOT_TRAIN, FitCheck, check_head
from mintkit.core.metrics import membership_metrics
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.core.precision import autocast
from mintkit.core.train import EarlyStopping, ensure_finite, signal_precision
from mintkit.models.classifiers import CNNMint, VanillaMLP
from mintkit.models.extract import extract, features_for

MINT_SETS = ("mint_train_members", "external", "eval_members", "eval_nonmembers")


def balanced_batches(labels: torch.Tensor, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch of index batches [B] with B/2 members and B/2 non-members (the smaller class cycles)."""
    pos, neg = torch.nonzero(labels == 1).flatten(), torch.nonzero(labels == 0).flatten()
    half = max(batch_size // 2, 1)
    n = max(len(pos), len(neg))

    def stream(idx: torch.Tensor) -> torch.Tensor:
        reps = math.ceil(n / len(idx))
        return torch.cat([idx[torch.randperm(len(idx), generator=gen)] for _ in range(reps)])[:n]

    p, q = stream(pos), stream(neg)
    return [torch.cat([p[s:s + half], q[s:s + half]]) for s in range(0, n, half)]


@torch.no_grad()
def score(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 1024,
          precision: str | None = None) -> np.ndarray:
    """Membership scores in [0, 1], [N], eval mode; `precision` as the module docstring says."""
    model.eval().to(device)
    out = []
    for s in range(0, len(x), batch_size):
        with autocast(device, signal_precision(device, precision)):
            out.append(torch.sigmoid(model(x[s:s + batch_size].to(device)).float()).cpu())
    return torch.cat(out).numpy() if out else np.empty(0)


def fit_mint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, epochs: int = 20,
             lr: float = 1e-3, batch_size: int = 128, l1: float = 0.0, weight_decay: float = 0.0,
             val: tuple[torch.Tensor, torch.Tensor] | None = None, seed: int = 0,
             precision: str | None = None) -> dict:
    """Train a MINT model with BCE on balanced batches; returns history {loss, val_acc, best_epoch}.

    x: [N, ...] features; y: [N] 1 = member, 0 = non-member. `l1` penalises the first layer's weights
    (Keras kernel_regularizer=l1(l1): l1 · Σ|W|, as the MINT paper's Vanilla model). With `val`, the epoch
    with the best validation accuracy is kept — `val` must never be the evaluation data. `precision`: the module
    docstring's.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    y = torch.as_tensor(y).long()
    if len(torch.unique(y)) != 2:
        raise ValueError("MINT training data needs members (1) and non-members (0)")
    model.prepare(x)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    hist: dict = {"loss": [], "val_acc": []}
    stop = EarlyStopping("max")  # the best validation epoch is kept; every epoch runs
    for epoch in range(epochs):
        model.train()
        total, steps = torch.zeros((), device=device), 0
        for b in balanced_batches(y, batch_size, gen):
            xb, yb = x[b].to(device, non_blocking=True), y[b].to(device).float()
            with autocast(device, signal_precision(device, precision)):
                loss = loss_fn(model(xb).float(), yb)
            if l1:
                loss = loss + l1 * model.first_layer().weight.abs().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
        hist["loss"].append(ensure_finite((total / max(steps, 1)).item(),
                                          f"epoch {epoch + 1} of the MINT model; lower lr (now {lr})"))
        if val is not None:
            hit = score(model, val[0], device, precision=precision) > 0.5
            acc = float((hit == val[1].numpy().astype(bool)).mean())
            hist["val_acc"].append(acc)
            stop.update(acc, epoch, lambda: copy.deepcopy(model.state_dict()))
    if stop.best_state is not None:
        model.load_state_dict(stop.best_state)
        hist["best_epoch"] = stop.best_epoch
    model.eval()
    return hist


def set_features(model: nn.Module, pool: Pool, split: Split, taps: list[str], device: torch.device,
                 reduce: str | dict[str, str] = "max", sets: tuple[str, ...] = MINT_SETS
                 ) -> dict[str, dict[str, torch.Tensor]]:
    """{set: {tap: [n_set, C] or [n_set, C, H, W]}} for the four MINT sets."""
    return {s: extract(model, pool, split[s], taps, device, reduce=reduce) for s in sets}


@dataclass
class MintData:
    """MINT-training features/labels and evaluation features/labels (1 = member)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    meta: dict = field(default_factory=dict)


def mint_data(feats: dict[str, dict[str, torch.Tensor]], taps: list[str], flat: bool = True) -> MintData:
    """Stack features of `taps`: train = mint_train_members (1) + external (0), eval = eval members/non-members.

    flat=True concatenates reduced vectors [N, ΣC]; flat=False keeps one tap's maps [N, C, H, W].
    """
    def get(s: str) -> torch.Tensor:
        if flat:
            return features_for(feats[s], taps)
        if len(taps) != 1:
            raise ValueError("map features (flat=False) take exactly one tap")
        return feats[s][taps[0]]

    def pair(pos: str, neg: str) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = get(pos), get(neg)
        return torch.cat([a, b]), torch.cat([torch.ones(len(a)), torch.zeros(len(b))]).long()

    xt, yt = pair("mint_train_members", "external")
    xe, ye = pair("eval_members", "eval_nonmembers")
    return MintData(xt, yt, xe, ye, {"taps": taps})


@dataclass
class MintResult(MembershipResult):
    """A MINT model's result: the fields of every membership method (calibration = its MINT-training scores, or
    the validation slice of them) plus its training history, the fitted model and what it was fitted on."""

    history: dict = field(default_factory=dict)
    model: nn.Module | None = None
    n_train: int = 0             # samples that trained the MINT model (a validation slice left out)
    n_train_members: int = 0
    family: str = ""             # the papers' labels of the fit ('mlp' / 'cnn', the feature set)
    feature: str = ""
    fit: FitCheck | None = None  # the fit guard on its own training samples (mintkit.core.fit)

    @property
    def params(self) -> int:
        """Trainable parameters of the MINT model."""
        return sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0


def build_mint_model(kind: str, sample: torch.Tensor, **kw) -> nn.Module:
    """'mlp' (Vanilla) on [N, D] or 'cnn' on [N, C, H, W]; unknown kinds list the valid ones."""
    if kind == "mlp":
        return VanillaMLP(sample.shape[1], **kw)
    if kind == "cnn":
        return CNNMint(sample.shape[1], sample.shape[-1], **kw)
    raise ValueError(f"unknown MINT model {kind!r}; valid: mlp, cnn")


SELECTIONS = ("last", "val", "paper")  # which epoch a fit keeps (docs/gmint.md, "The MINT model and epoch selection")


def validation_slice(y: torch.Tensor, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified validation slice of MINT-training labels y [N]: (validation positions, training positions).

    Per class (members first), max(1, round(fraction · n_class)) positions drawn with numpy's generator of
    `seed`, each side sorted: a small data fraction keeps both classes in the slice.
    """
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    val = []
    for c in (1, 0):
        pos = np.flatnonzero(labels == c)
        val.append(np.sort(rng.choice(pos, size=min(max(1, int(round(fraction * len(pos)))), len(pos)),
                                      replace=False)))
    val_pos = np.concatenate(val)
    return val_pos, np.setdiff1d(np.arange(len(labels)), val_pos)


def run_mint(data: MintData, kind: str, device: torch.device, epochs: int, seed: int, lr: float = 1e-3,
             batch_size: int = 128, l1: float = 0.0, n_boot: int = 200, model_kw: dict | None = None,
             selection: str = "last", val_fraction: float = 0.1, model: nn.Module | None = None,
             name: str = "mint", label: str = "MINT", precision: str | None = None) -> MintResult:
    """Fit a MINT model on data.x_train and score data.x_eval [n_eval]; the one MINT fit of every paper and the audit.

    selection (the kept epoch, `SELECTIONS`): 'last'; 'val' = best accuracy on a stratified slice
    (`validation_slice`, `val_fraction`) of the MINT-training data, which then does not train; 'paper' = best
    accuracy on the evaluation data (the gMINT paper's choice: optimistic, its rows say so). The calibrated
    threshold is chosen on the validation slice ('val') or on the training scores, never on evaluation data;
    those scores are the result's calibration. `model` (optional) is a ready MINT model used instead of
    `build_mint_model(kind, ...)`. The fit guard (mintkit.core.fit.check_head, on the samples it was fitted on)
    adds ``head_train_accuracy`` and ``head_fitted`` to the metrics; a head that did not train says so.
    `precision`: the fit's and the scores' (module docstring).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")
    t0 = time.perf_counter()
    if model is None:
        # the initial weights come from `seed`, not from whatever the global generator holds after the
        # audited model (trained: it drew for dropout; loaded from the cache: it did not)
        torch.manual_seed(seed)
        model = build_mint_model(kind, data.x_train, **(model_kw or {}))
    x, y, val = data.x_train, data.y_train, None
    if selection == "val":
        v, t = (torch.as_tensor(p) for p in validation_slice(y, val_fraction, seed))
        val = (x[v], y[v])
        x, y = x[t], y[t]
    elif selection == "paper":
        val = (data.x_eval, data.y_eval)
    hist = fit_mint(model, x, y, device, epochs=epochs, lr=lr, batch_size=batch_size, l1=l1, val=val, seed=seed,
                    precision=precision)
    train_scores = score(model, x, device, precision=precision)
    fit = check_head(train_scores, y.numpy())
    if not fit.fitted:
        print(f"{label}: {DID_NOT_TRAIN}: {fit.reason}")
    calib_x, calib_y = val if selection == "val" else (x, y)
    calib = score(model, calib_x, device, precision=precision) if selection == "val" else train_scores
    s = score(model, data.x_eval, device, precision=precision)
    m = membership_metrics(s, data.y_eval.numpy(), calib, calib_y.numpy(), n_boot=n_boot, seed=seed) | fit.metrics()
    return MintResult(name, label, s, data.y_eval.numpy(), calib, calib_y.numpy(), m, time.perf_counter() - t0,
                      history=hist, model=model, n_train=int(len(y)), n_train_members=int(y.sum()), fit=fit)
