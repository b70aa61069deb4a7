"""Training and evaluation of audited models on a device-resident Pool.

One loop for every audited model: Adam or SGD, weight decay, optional per-sample repetition
(the Factors paper's exposure counts), autocast on CUDA, model.train() during steps and
model.eval() for every evaluation (the released aMINT code never switched back to train mode),
and optional early stopping on validation accuracy (``TrainConfig.patience`` with ``val_indices``:
the weights, and the optimiser state kept for gMINT, of the best validation epoch are restored).
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mintkit.core import precision as prec
from mintkit.core import train_state
from mintkit.core.data import Pool, iterate_batches
from mintkit.core.fit import DidNotFit, check_classifier, require_fit

FIT_SAMPLE = 5000  # training samples the fit guard scores (a seeded subsample above that)

OPTIMIZERS = ("adam", "sgd")


class TrainingDiverged(RuntimeError, FloatingPointError):
    """The loss became NaN or infinite (a FloatingPointError too, as M+ raised before the guard was shared)."""


def ensure_finite(loss: float, what: str) -> float:
    """The one non-finite-loss guard of the trainers (audited models, M+, the MINT heads): `loss` back, or
    TrainingDiverged naming `what` (e.g. "epoch 3 of the audited model; lower lr (now 0.001)")."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"loss became non-finite ({loss}) in {what}")
    return loss


class EarlyStopping:
    """The one early-stopping rule of the trainers: the best epoch by a validation score, and when to stop.

    mode: ``"max"`` (an accuracy: better = score > best + min_delta) or ``"min"`` (a loss or objective:
    better = score < best - min_delta). After each epoch, `update` records the score; on a better one it keeps
    ``snapshot()`` (the model's state, copied) when `keep_best`, and it answers True once `patience` epochs in a
    row were not better (``patience=0``: never). `best_state` is None when nothing was kept. The audited model
    (patience on validation accuracy), the MINT heads (best validation accuracy, no stop) and M+ (patience on
    its validation objective, docs/amint.md "Early stopping") all keep their epoch through it.
    """

    def __init__(self, mode: str = "max", patience: int = 0, min_delta: float = 0.0, keep_best: bool = True) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"unknown mode {mode!r}; valid: max, min")
        self.mode, self.patience, self.min_delta, self.keep_best = mode, patience, min_delta, keep_best
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch, self.bad, self.best_state = 0, 0, None

    def better(self, score: float) -> bool:
        return score > self.best + self.min_delta if self.mode == "max" else score < self.best - self.min_delta

    def update(self, score: float, epoch: int, snapshot: Callable[[], object] | None = None) -> bool:
        """Record `score` of 0-based `epoch`; True when training should stop now."""
        if self.better(score):
            self.best, self.best_epoch, self.bad = score, epoch + 1, 0
            if self.keep_best and snapshot is not None:
                self.best_state = snapshot()
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; `deterministic` trades speed for bitwise-repeatable runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def apply_threads(threads: int, device: torch.device) -> None:
    """The one thread policy: on CPU, ``threads > 0`` sets torch's intra-op threads.

    The default models and every MINT model are so small that a second thread costs more in
    synchronisation than it saves on a busy 2-core machine; 0 leaves torch's default.
    """
    if device.type == "cpu" and threads > 0:
        torch.set_num_threads(threads)


@dataclass
class TrainConfig:
    """Hyper-parameters of the audited model's training."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    amp: bool = True  # False: fp32 whatever the precision
    # "auto" / "fp32" / "bf16" (mintkit.core.precision); None follows the process's policy (the notebooks' setup)
    precision: str | None = None
    # early stopping: stop after `patience` epochs without a higher validation accuracy, keep the best
    # epoch (0: off, every epoch runs and the last is kept); needs train_classifier(val_indices=...)
    patience: int = 0
    # the fit guard (mintkit.core.fit): a model that did not learn its training set raises DidNotFit. Off only
    # for what is meant not to fit (a smoke test of one step); never part of the cache key.
    fit_check: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.precision is not None and self.precision not in prec.PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(prec.PRECISIONS)}")
        if self.patience < 0:
            raise ValueError(f"patience={self.patience}: must be >= 0 (0 turns early stopping off)")

    def as_dict(self) -> dict:
        """The fields; ``patience`` only when stopping is on, so configs from before it existed keep their keys."""
        d = asdict(self)
        d.pop("precision")  # resolved per device: train_audited keys the precision a model actually trained in
        d.pop("fit_check")  # checks the result, does not shape it
        if not self.patience:
            d.pop("patience")
        return d


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def forward_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [B, K]; margin-head models get the labels while training."""
    if getattr(model, "needs_labels", False):
        return model(x, labels=y)
    return model(x)


def epoch_indices(indices: torch.Tensor, repeats: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """One epoch's shuffled order [sum(repeats)]: sample i appears repeats[i] times."""
    order = indices if repeats is None else torch.repeat_interleave(indices, repeats)
    return order[torch.randperm(len(order), generator=generator)]


def train_classifier(model: nn.Module, pool: Pool, indices: np.ndarray | torch.Tensor, cfg: TrainConfig,
                     device: torch.device, seed: int = 0, repeats: torch.Tensor | None = None,
                     eval_sets: dict[str, np.ndarray] | None = None, progress: bool = True,
                     on_epoch: Callable[[int, dict], None] | None = None,
                     keep_optimizer_state: list[str] | tuple[str, ...] | None = None,
                     val_indices: np.ndarray | None = None, state_file: Path | None = None) -> dict:
    """Train `model` on pool[indices] with cross-entropy; returns history {loss, <eval>_acc per epoch, seconds}.

    val_indices: [V] samples (never members, never evaluated) whose accuracy after each epoch drives early
    stopping when ``cfg.patience > 0``: training stops after `patience` epochs without a higher accuracy and
    the best epoch's weights (and kept optimiser state) are restored; history gains ``val_acc`` per epoch,
    ``best_epoch`` (1-based) and ``epochs_run``.

    keep_optimizer_state: parameter names whose end-of-training optimiser state (Adam: exp_avg, exp_avg_sq,
    step) is returned as history['extra'] = {'<param>.optim.<key>': tensor} (gMINT's 'adam-state' rule).

    repeats: [len(indices)] int exposure count per sample per epoch (None = once each).
    eval_sets: named index sets whose accuracy is logged after each epoch (never used to select anything).
    state_file: where the training state is saved after every epoch and read back first
    (`mintkit.core.train_state`): a run stopped after epoch k goes on at epoch k + 1, and on CPU ends with the
    weights an uninterrupted run ends with; history gains ``resumed_at_epoch`` (1-based). The caller deletes
    the file once the model is safe elsewhere (the model cache does). None: nothing saved.
    """
    stopping = cfg.patience > 0
    if stopping and (val_indices is None or not len(val_indices)):
        raise ValueError(f"patience={cfg.patience} needs validation samples (val_indices); pass them or set "
                         "patience=0")
    try:
        with prec.in_layout(model, device, cfg.precision) as fmt:
            return _train(model, pool, indices, cfg, device, seed, repeats, eval_sets, progress, on_epoch,
                          keep_optimizer_state, val_indices if stopping else None, fmt, state_file)
    except (DidNotFit, TrainingDiverged):
        # a training that ran to its verdict is not in progress: the next run starts over, not at its last epoch
        if state_file is not None:
            state_file.unlink(missing_ok=True)
        raise


def _train(model, pool, indices, cfg, device, seed, repeats, eval_sets, progress, on_epoch, keep_optimizer_state,
           val_indices, fmt, state_file) -> dict:
    stopping = val_indices is not None
    opt = make_optimizer(model.parameters(), cfg)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    hist: dict[str, list] = {"loss": []} | {f"{k}_acc": [] for k in (eval_sets or {})}
    if stopping:
        hist["val_acc"] = []
    stop = EarlyStopping("max", cfg.patience)
    first, spent = _resume(state_file, model, opt, gen, hist, stop)
    t0 = time.perf_counter() - spent
    bar = tqdm(range(first, cfg.epochs), desc="audited model", disable=not progress, leave=False,
               initial=first, total=cfg.epochs)
    for epoch in bar:
        model.train()
        total = torch.zeros((), device=device)
        steps = 0
        for step, b in enumerate(iterate_batches(epoch_indices(idx, repeats, gen), cfg.batch_size)):
            x, y = pool.batch(b)
            with prec.autocast(device, cfg.precision, cfg.amp):
                loss = loss_fn(forward_logits(model, prec.layout(x, fmt), y).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
            if step % 50 == 0 and not torch.isfinite(loss):  # sync rarely: a host sync per step costs GPU time
                raise TrainingDiverged(f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                       f"lower lr (now {cfg.lr}) or check the data")
        mean = ensure_finite((total / max(steps, 1)).item(),
                             f"epoch {epoch + 1} of the audited model; lower lr (now {cfg.lr}) or check the data")
        hist["loss"].append(mean)
        for k, s in (eval_sets or {}).items():
            hist[f"{k}_acc"].append(accuracy(model, pool, s, device, cfg.precision))
        bar.set_postfix(loss=f"{mean:.3f}")
        if on_epoch:
            on_epoch(epoch, hist)
        if stopping:
            acc = accuracy(model, pool, val_indices, device, cfg.precision)
            hist["val_acc"].append(acc)
            if stop.update(acc, epoch, lambda: (copy.deepcopy(model.state_dict()),
                                                _optimizer_state(model, opt, keep_optimizer_state))):
                break
        if state_file is not None and epoch + 1 < cfg.epochs:
            train_state.save(state_file, epoch=epoch, model=model, optimizer=opt, generator=gen,
                             history=hist | {"seconds": time.perf_counter() - t0},
                             stopping={"best": stop.best, "best_epoch": stop.best_epoch, "bad": stop.bad},
                             best=stop.best_state)
    hist["seconds"] = time.perf_counter() - t0
    hist["epochs_run"] = len(hist["loss"])
    extra = _optimizer_state(model, opt, keep_optimizer_state)
    if stop.best_state is not None:
        model.load_state_dict(stop.best_state[0])
        extra = stop.best_state[1]
        hist["best_epoch"] = stop.best_epoch
    if keep_optimizer_state:
        hist["extra"] = extra
    model.eval()
    if cfg.fit_check and cfg.epochs > 0:
        guard_fit(model, pool, idx.numpy(), cfg, device, seed, hist)
    return hist


def _resume(state_file: Path | None, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
            hist: dict, stop: EarlyStopping) -> tuple[int, float]:
    """Load a saved training state into the loop's objects (in place); (first epoch to run, seconds spent)."""
    state = train_state.load(state_file)
    if state is None:
        return 0, 0.0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    spent = float(state["history"].pop("seconds", 0.0))
    hist.clear()
    hist.update(state["history"])
    hist["resumed_at_epoch"] = hist.get("resumed_at_epoch", []) + [state["epoch"] + 2]
    stop.best, stop.best_epoch, stop.bad = (state["stopping"][k] for k in ("best", "best_epoch", "bad"))
    if "best_model" in state:
        stop.best_state = (state["best_model"], state.get("best_extra", {}))
    return state["epoch"] + 1, spent


def guard_fit(model: nn.Module, pool: Pool, indices: np.ndarray, cfg: TrainConfig, device: torch.device,
              seed: int, hist: dict) -> None:
    """The fit guard of a trained classifier (mintkit.core.fit): its accuracy on (up to FIT_SAMPLE of) its own
    training samples joins `hist` as ``train_acc_final``; raises DidNotFit when it did not learn them."""
    idx = np.asarray(indices)
    if len(idx) > FIT_SAMPLE:
        idx = np.random.default_rng([seed, 7]).choice(idx, FIT_SAMPLE, replace=False)
    hist["train_acc_final"] = acc = accuracy(model, pool, idx, device, cfg.precision)
    losses = hist["loss"][:hist.get("best_epoch", len(hist["loss"]))]  # up to the epoch kept
    check = check_classifier(acc, pool.num_classes, losses, "the audited model")
    require_fit(check, f"Recipe: {cfg.optimizer} lr {cfg.lr:g}, {hist['epochs_run']} epoch(s), batch "
                       f"{cfg.batch_size}, precision {cfg.precision or prec.policy()}: lower lr, train longer, or "
                       "use precision fp32 (docs/precision.md)")



def _optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, names) -> dict[str, torch.Tensor]:
    """{'<param>.optim.<key>': tensor} copies of the optimiser state of parameters `names` (None: {})."""
    if not names:
        return {}
    named = dict(model.named_parameters())
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"keep_optimizer_state: {unknown} are not parameters of the model")
    return {f"{n}.optim.{k}": torch.as_tensor(v).detach().cpu().clone()
            for n in names for k, v in opt.state.get(named[n], {}).items()}


@torch.no_grad()
def predict(model: nn.Module, pool: Pool, indices: np.ndarray | torch.Tensor, device: torch.device,
            batch_size: int = 512, precision: str | None = None,
            view: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The one eval-mode logits pass: logits [N, K] (float32, on cpu) and labels [N] for pool[indices], in
    `precision` (None: the policy; per-sample losses pass 'fp32': bf16 logits would quantise the loss attack's
    signal). `view` maps each batch [B, C, H, W] first (the attacks' queries: a mirrored image)."""
    model.eval()
    outs, ys = [], []
    with prec.in_layout(model, device, precision) as fmt:
        for b in iterate_batches(np.asarray(indices), batch_size):
            x, y = pool.batch(b)
            x = x if view is None else view(x)
            with prec.autocast(device, precision):
                outs.append(forward_logits(model, prec.layout(x, fmt)).float())
            ys.append(y)
    if not outs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outs).cpu(), torch.cat(ys).cpu()


def accuracy(model: nn.Module, pool: Pool, indices: np.ndarray | torch.Tensor, device: torch.device,
             precision: str | None = None) -> float:
    """Top-1 accuracy on pool[indices] in eval mode, in `precision` (None: the policy; a training loop passes its
    own, so its accuracy passes run in the precision it trains in)."""
    logits, y = predict(model, pool, indices, device, precision=precision)
    return float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")


def signal_precision(device: torch.device, precision: str | None = None) -> str | None:
    """The precision of passes whose output is a membership signal (per-sample losses, MINT-head scores and fits):
    fp32 on CPU whatever was asked (bf16 would quantise the signal and tie its ranks), `precision` on CUDA (None:
    the policy; ``auto`` is the bf16 autocast these passes always had there)."""
    return "fp32" if device.type == "cpu" else precision


def sample_losses(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The one per-sample loss: cross-entropy [N] of logits [N, K] (float32, cpu) against labels [N]."""
    return nn.functional.cross_entropy(logits, y, reduction="none").numpy()


def per_sample_losses(model: nn.Module, pool: Pool, indices: np.ndarray, device: torch.device) -> np.ndarray:
    """Cross-entropy [N] of each sample under the eval-mode model (the loss-threshold attack's signal), in fp32:
    on CUDA the old bf16 path (its logits were bf16 there), on CPU fp32 whatever the policy."""
    return sample_losses(*predict(model, pool, indices, device, precision=signal_precision(device)))
