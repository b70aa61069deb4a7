"""aMINT's Enhanced Audited Model M+ and its training (joint = active, head-only = passive).

M+ = an audited zoo model M plus a MINT head T fed by the two activation maps of
``models.zoo.AMINT_TAPS[arch][setup]``, captured with forward hooks *with* gradients, so the MINT
loss reaches the shared layers (input .. second tap); docs/amint.md, "Method" and "The MINT head":

* one branch per tap: maps [B, C, H, W] -> ``n_convs`` × (conv 3×3, stride 1, padding 1 → ReLU),
  widths ``width``, 2·width, ... (paper E1: one conv of 256; E2: 1024 then 2048); ViT token
  sequences [B, T, D] -> the same number of per-token Linear → ReLU layers (the paper's ViT head is
  fully connected); vectors [B, D] -> Linear → ReLU;
* fusion: global pooling of each branch (max, as the released code; or mean) and concatenation
  (E1: 2 × 256 = 512);
* head: Linear(fused, hidden) → ReLU → Dropout(p) → Linear(hidden, 1) = the membership logit
  (hidden = the fused width unless given).

``forward(x) -> (task_logits [B, K], mint_logit [B])``; ``mint_logit(x)`` stops the forward
once both maps are captured (E batches never need the task path).

Training (``train_mplus``) follows the paper's description, not the released notebooks (docs/amint.md,
"Deviations"): every step draws one batch of D (task CE + MINT BCE with label 1 for the MINT-trained
members) and one batch of E (MINT BCE, label 0 only); each loss is divided by its value on the first
batch; L = λ1·L_task/L0_task + λ2·L_mint/L0_mint + R(w+) with R = L2 (Adam weight_decay on every
parameter of M+); model.train() in every step, model.eval() for every evaluation. The kept epoch:
docs/amint.md, "Early stopping". ``mode="passive"`` trains the head only, on the frozen (eval-mode,
requires_grad=False) audited model: the passive MINT baseline of the paper's Table 2, same head family.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from mintkit.core.data import Pool, iterate_batches
from mintkit.core.precision import autocast
from mintkit.core.train import EarlyStopping, ensure_finite, signal_precision
from mintkit.models.hooks import forward_hooks
from mintkit.models.zoo import AMINT_TAPS, get_module

POOLINGS = ("max", "mean")
MODES = ("active", "passive")


class _StopForward(Exception):
    """Raised by the last tap's hook when only the MINT output is needed."""


class MintBranch(nn.Module):
    """One tap -> [B, width·2^(n_convs-1)] pooled features (conv for maps, per-token FC otherwise).

    shape: the tap's output shape without the batch dimension: (C, H, W), (T, D) or (D,).
    """

    def __init__(self, shape: tuple[int, ...], width: int, n_convs: int, pool: str) -> None:
        super().__init__()
        if pool not in POOLINGS:
            raise ValueError(f"unknown pooling {pool!r}; valid: {', '.join(POOLINGS)}")
        self.kind = {3: "conv", 2: "tokens", 1: "vector"}.get(len(shape))
        if self.kind is None:
            raise ValueError(f"tap output of shape [B, {shape}] is not [B,C,H,W], [B,T,D] or [B,D]")
        self.pool = pool
        cin = shape[0] if self.kind == "conv" else shape[-1]
        layers: list[nn.Module] = []
        for i in range(n_convs):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, 3, 1, 1) if self.kind == "conv" else nn.Linear(cin, cout), nn.ReLU()]
            cin = cout
        self.net = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        h = self.net(a)
        if self.kind == "vector":
            return h
        dims = (2, 3) if self.kind == "conv" else (1,)
        return h.amax(dim=dims) if self.pool == "max" else h.mean(dim=dims)


class MintHead(nn.Module):
    """Two taps -> one membership logit [B]."""

    def __init__(self, shapes: list[tuple[int, ...]], width: int = 256, n_convs: int = 1, hidden: int = 0,
                 dropout: float = 0.4, pool: str = "max") -> None:
        super().__init__()
        self.branches = nn.ModuleList(MintBranch(s, width, n_convs, pool) for s in shapes)
        fused = sum(b.out_dim for b in self.branches)
        hidden = hidden or fused
        self.fc = nn.Sequential(nn.Linear(fused, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return self.fc(torch.cat([b(a.float()) for b, a in zip(self.branches, maps)], dim=1)).squeeze(1)


class MintPlus(nn.Module):
    """Enhanced Audited Model M+ = audited model + MINT head on AMINT_TAPS[arch][setup]."""

    def __init__(self, audited: nn.Module, setup: str, image_size: int, in_channels: int, width: int = 256,
                 n_convs: int = 1, hidden: int = 0, dropout: float = 0.4, pool: str = "max") -> None:
        super().__init__()
        arch = getattr(audited, "arch", None)
        if arch not in AMINT_TAPS:
            raise ValueError(f"no aMINT taps for arch {arch!r}; valid: {', '.join(AMINT_TAPS)}")
        if setup not in AMINT_TAPS[arch]:
            raise ValueError(f"unknown setup {setup!r}; valid: {', '.join(AMINT_TAPS[arch])}")
        self.audited, self.setup = audited, setup
        self.tap_names = AMINT_TAPS[arch][setup]
        self._modules_tapped = [get_module(audited, n) for n in self.tap_names]
        shapes, self._last = self._probe(image_size, in_channels)
        self.mint = MintHead(shapes, width, n_convs, hidden, dropout, pool)
        self.tap_shapes = shapes
        self.config = dict(arch=arch, setup=setup, width=width, n_convs=n_convs, hidden=hidden, dropout=dropout,
                           pool=pool, audited=dict(getattr(audited, "config", {})))

    def _probe(self, image_size: int, in_channels: int) -> tuple[list[tuple[int, ...]], int]:
        """Tap output shapes (without batch) and which tap fires last, from one dry forward."""
        was = self.audited.training
        self.audited.eval()
        dev = next(self.audited.parameters()).device
        with torch.no_grad():
            maps, order = self._run(torch.zeros(2, in_channels, image_size, image_size, device=dev), stop=False,
                                    record_order=True)
        self.audited.train(was)
        return [tuple(m.shape[1:]) for m in maps], order[-1]

    def _run(self, x: torch.Tensor, stop: bool, record_order: bool = False):
        """Forward through the audited model with hooks on both taps (gradients kept)."""
        store: dict[int, torch.Tensor] = {}
        order: list[int] = []

        def keep(i: int, out: torch.Tensor) -> None:
            store[i] = out
            order.append(i)
            if stop and len(store) == len(self._modules_tapped):
                raise _StopForward

        logits = None
        with forward_hooks(dict(enumerate(self._modules_tapped)), keep):
            try:
                logits = self.audited(x)
            except _StopForward:
                pass
        maps = [store[i] for i in range(len(self._modules_tapped))]
        return (maps, order) if record_order else (logits, maps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, maps = self._run(x, stop=False)
        return logits, self.mint(maps)

    def mint_logit(self, x: torch.Tensor) -> torch.Tensor:
        """Membership logit [B] only; the audited forward stops after the second tap."""
        return self.mint(self._run(x, stop=True)[1])

    def head_parameters(self):
        return self.mint.parameters()


def build_mplus(audited: nn.Module, setup: str, image_size: int, in_channels: int, **head_kw) -> MintPlus:
    """M+ around `audited` (a zoo model with .arch); head_kw: width, n_convs, hidden, dropout, pool."""
    return MintPlus(audited, setup, image_size, in_channels, **head_kw)


# --------------------------------------------------------------------------------- scoring
@torch.no_grad()
def mint_scores(model: MintPlus, pool: Pool, indices: np.ndarray, device: torch.device,
                batch_size: int = 256, precision: str | None = None) -> np.ndarray:
    """Eval-mode membership scores sigmoid(T) in [0, 1], [N]; fp32 on CPU, `precision` on CUDA (None: the policy)."""
    model.eval().to(device)
    out = [torch.empty(0)]
    for b in iterate_batches(np.asarray(indices), batch_size):
        x, _ = pool.batch(b)
        with autocast(device, signal_precision(device, precision)):  # a membership score: fp32 on CPU (no ties)
            out.append(torch.sigmoid(model.mint_logit(x).float()).cpu())
    return torch.cat(out).numpy()


def balanced_bce(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> torch.Tensor:
    """½·BCE(members, 1) + ½·BCE(non-members, 0): each class weighs the same whatever the batch mix."""
    parts = []
    if len(logit_pos):
        parts.append(F.binary_cross_entropy_with_logits(logit_pos.float(), torch.ones_like(logit_pos.float())))
    if len(logit_neg):
        parts.append(F.binary_cross_entropy_with_logits(logit_neg.float(), torch.zeros_like(logit_neg.float())))
    return torch.stack(parts).mean()


@torch.no_grad()
def validation_losses(model: MintPlus, pool: Pool, val: dict[str, np.ndarray], device: torch.device,
                      batch_size: int = 256, precision: str | None = None) -> dict:
    """Eval-mode task CE on the validation non-members (held-out labelled E), MINT BCE and accuracy@0.5
    (fp32 on CPU, `precision` on CUDA)."""
    model.eval().to(device)
    s_mem = mint_scores(model, pool, val["members"], device, batch_size, precision)
    s_non = mint_scores(model, pool, val["nonmembers"], device, batch_size, precision)
    eps = 1e-6
    bce = 0.5 * (-np.log(np.clip(s_mem, eps, 1)).mean() - np.log(np.clip(1 - s_non, eps, 1)).mean())
    ce, correct, n = 0.0, 0, 0
    for b in iterate_batches(val["nonmembers"], batch_size):
        x, y = pool.batch(b)
        with autocast(device, signal_precision(device, precision)):
            logits = model.audited(x).float()
        ce += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    acc = 0.5 * ((s_mem >= 0.5).mean() + (s_non < 0.5).mean())
    return {"task_loss": ce / max(n, 1), "task_acc": correct / max(n, 1), "mint_loss": float(bce),
            "mint_acc": float(acc)}


# -------------------------------------------------------------------------------- training
def _cycle(idx: np.ndarray, batch_size: int, gen: torch.Generator):
    """Endless shuffled batches over `idx` (reshuffled at every pass)."""
    while True:
        yield from iterate_batches(idx, batch_size, shuffle=True, generator=gen)


@dataclass
class _Training:
    """What every step of one M+ training reads and updates (built by `_prepare`)."""

    model: MintPlus
    pool: Pool
    device: torch.device
    mode: str
    opt: torch.optim.Optimizer
    lam1: float
    lam2: float
    is_pos: torch.Tensor                 # [len(pool)] bool: MINT label 1 (the MINT-trained members)
    e_stream: Iterator[torch.Tensor]     # endless E batches [B]
    max_steps: int | None
    precision: str | None = None         # of the joint step (mintkit.core.precision; None: the policy)
    L0: dict[str, float] = field(default_factory=dict)
    steps: int = 0

    def done(self) -> bool:
        return bool(self.max_steps and self.steps >= self.max_steps)


def _prepare(model: MintPlus, pool: Pool, sets: dict[str, np.ndarray], device: torch.device, mode: str,
             batch_size: int, lr: float, weight_decay: float, lambda_task: float, lambda_ratio: float, seed: int,
             max_steps: int | None, head_lr: float | None = None,
             precision: str | None = None) -> tuple[_Training, torch.Generator]:
    """Seeds, the trained parameters (all of M+, or the head on the frozen audited model) and the E stream.
    head_lr: the MINT head's own learning rate (None: lr for every parameter)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    lam1, lam2 = float(lambda_task), float(lambda_task) * float(lambda_ratio)
    head = list(model.head_parameters())
    if mode == "passive":
        for p in model.audited.parameters():
            p.requires_grad_(False)
        opt, lam1 = torch.optim.Adam(head, lr=head_lr or lr, weight_decay=weight_decay), 0.0
    elif head_lr:
        in_head = {id(p) for p in head}
        body = [p for p in model.parameters() if id(p) not in in_head]
        opt = torch.optim.Adam([{"params": body, "lr": lr}, {"params": head, "lr": head_lr}],
                               weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(list(model.parameters()), lr=lr, weight_decay=weight_decay)
    is_pos = torch.zeros(len(pool), dtype=torch.bool, device=pool.device)
    is_pos[torch.as_tensor(np.asarray(sets["mint_members"]), device=pool.device)] = True
    e_stream = _cycle(np.asarray(sets["external"]), batch_size, gen)
    return _Training(model, pool, device, mode, opt, lam1, lam2, is_pos, e_stream, max_steps, precision), gen


def _step(t: _Training, b: torch.Tensor) -> dict[str, float]:
    """One optimiser step on the D batch b [B] and the next E batch; its loss, task loss and MINT loss."""
    xd, yd = t.pool.batch(b)
    xe, _ = t.pool.batch(next(t.e_stream))
    pos = t.is_pos[b.to(t.pool.device)]
    with autocast(t.device, t.precision):
        if t.mode == "active":
            logits_d, m_d = t.model(xd)          # D: both paths
        else:
            logits_d, m_d = None, t.model.mint_logit(xd)
        m_e = t.model.mint_logit(xe)             # E: MINT path only (class labels unused)
    l_mint = balanced_bce(m_d[pos], m_e)
    l_task = F.cross_entropy(logits_d.float(), yd) if logits_d is not None else torch.zeros((), device=t.device)
    if not t.L0:  # the "norm" of each loss: its value on the first batch (docs/amint.md, Method)
        t.L0 = {"task": max(float(l_task.detach()), 1e-8), "mint": max(float(l_mint.detach()), 1e-8)}
    loss = t.lam1 * l_task / t.L0["task"] + t.lam2 * l_mint / t.L0["mint"]
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    t.opt.step()
    t.steps += 1
    return {"loss": float(loss.detach()), "task_loss": float(l_task.detach()), "mint_loss": float(l_mint.detach())}


def _epoch(t: _Training, d_idx: np.ndarray, batch_size: int, gen: torch.Generator) -> tuple[dict[str, float], int]:
    """One pass over the D batches of d_idx (or up to max_steps): summed losses and the number of steps."""
    t.model.train()
    if t.mode == "passive":
        t.model.audited.eval()  # frozen: BN running statistics stay those of the trained model
    sums = {k: 0.0 for k in ("loss", "task_loss", "mint_loss")}
    n = 0
    for b in iterate_batches(d_idx, batch_size, shuffle=True, generator=gen):
        for k, v in _step(t, b).items():
            sums[k] += v
        n += 1
        if t.done():
            break
    return sums, n


def _validate(t: _Training, val: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation losses and accuracies (val_*) and the objective λ1·CE/L0_task + λ2·BCE/L0_mint."""
    v = validation_losses(t.model, t.pool, val, t.device, precision=t.precision)
    obj = t.lam1 * v["task_loss"] / t.L0["task"] + t.lam2 * v["mint_loss"] / t.L0["mint"]
    return {f"val_{k}": v[k] for k in ("task_loss", "task_acc", "mint_loss", "mint_acc")} | {"val_objective": obj}


def train_mplus(model: MintPlus, pool: Pool, sets: dict[str, np.ndarray], device: torch.device, *,
                mode: str = "active", epochs: int = 30, batch_size: int = 64, lr: float = 1e-3,
                weight_decay: float = 1e-4, lambda_task: float = 1.0, lambda_ratio: float = 10.0,
                patience: int = 5, seed: int = 0, max_steps: int | None = None, progress: bool = False,
                head_lr: float | None = None, precision: str | None = None,
                probe: Callable[[MintPlus], dict[str, float]] | None = None) -> dict:
    """Train M+ (mode='active': jointly; 'passive': the head on the frozen audited model).

    sets: 'task' (D: task loss; all members), 'mint_members' (⊆ task: MINT label 1), 'external'
    (E: MINT label 0), 'val_members' (MINT-trained members that are never evaluated) and
    'val_nonmembers' (E held out of every step; also the validation task loss). One epoch = one pass
    over the D batches (active) or over the MINT members (passive); E batches cycle.

    Kept epoch (docs/amint.md, "Early stopping"): with ``patience=0`` stopping is off and the LAST epoch
    is kept. With ``patience > 0`` training stops after `patience` epochs without a lower validation
    objective λ1·CE(val non-members)/L0_task + λ2·BCE(val members vs val non-members)/L0_mint and the
    best epoch is restored. The validation members trained the MINT loss, like the paper protocol's
    evaluated members, so the objective measures the fit the head was trained for; a held-out member
    never enters it (scoring members the head never saw rewards the earliest, untrained epoch).
    `head_lr`: the MINT head's learning rate, active and passive (None: `lr`); at lr 1e-3 the Output head's branch
    loses its ReLUs (docs/amint.md, "Why the Output head does not train").
    `precision`: of the joint step and the validation passes (mintkit.core.precision; None: the process's policy).
    probe(model) -> {name: value}, when given, runs after each epoch's validation (the model in eval mode) and
    its values join the history as epoch lists (``scripts/amint_head_diagnosis.py`` reads the head's state).
    Returns a history {epoch lists of train/val losses and accuracies, kept_epoch, epochs_run, seconds, ...}.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    t0 = time.perf_counter()
    t, gen = _prepare(model, pool, sets, device, mode, batch_size, lr, weight_decay, lambda_task, lambda_ratio,
                      seed, max_steps, head_lr, precision)
    d_idx = np.asarray(sets["task"] if mode == "active" else sets["mint_members"])
    val = {"members": sets["val_members"], "nonmembers": sets["val_nonmembers"]}
    keys = ("loss", "task_loss", "mint_loss", "val_task_loss", "val_task_acc", "val_mint_loss", "val_mint_acc",
            "val_objective")
    hist: dict = {k: [] for k in keys} | {"mode": mode, "lambda1": t.lam1, "lambda2": t.lam2}
    # only early stopping restores an earlier epoch (docs/amint.md, "Early stopping")
    stop = EarlyStopping("min", patience, min_delta=1e-6, keep_best=patience > 0)
    for epoch in tqdm(range(epochs), desc=f"{mode} M+", disable=not progress, leave=False):
        sums, n = _epoch(t, d_idx, batch_size, gen)
        ensure_finite(sums["loss"], f"epoch {epoch + 1} of {mode} M+; lower lr (now {lr})")
        for k, v in sums.items():
            hist[k].append(v / max(n, 1))
        for k, v in _validate(t, val).items():
            hist[k].append(v)
        for k, v in (probe(model) if probe else {}).items():
            hist.setdefault(k, []).append(v)
        if stop.update(hist["val_objective"][-1], epoch, lambda: copy.deepcopy(model.state_dict())) or t.done():
            break
    if stop.best_state is not None:
        model.load_state_dict(stop.best_state)
    hist["best_val_epoch"] = stop.best_epoch
    hist["kept_epoch"] = stop.best_epoch if stop.best_state is not None else len(hist["loss"])
    hist.update(epochs_run=len(hist["loss"]), steps=t.steps, L0=t.L0, seconds=time.perf_counter() - t0)
    model.eval()
    return hist
