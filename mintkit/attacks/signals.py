"""Per-sample signals of one model's outputs, the inputs of every attack (see docs/attacks.md).

A model's logits ``z`` [K] on a sample ``(x, y)`` give, in float64 from float32 logits:

=====================  ==============================================================================
``phi``                logit-scaled confidence of the true class, φ = log(p_y / (1 − p_y)), computed as
                       z_y − logsumexp_{j≠y} z_j (no rounding of p_y to 1 for confident samples)
``loss``               cross-entropy ℓ = −log p_y = softplus(−φ) = log(1 + e^{−φ})
``p_true``             p_y = sigmoid(φ)
``mentr``              modified entropy (Song & Mittal): −(1 − p_y)·log p_y − Σ_{i≠y} p_i·log(1 − p_i)
``top``                the ``top_k`` largest softmax probabilities, sorted descending (Salem et al.)
=====================  ==============================================================================

Queries: ``identity`` is the sample itself; ``hflip`` its horizontal mirror. ``phi`` keeps one column
per query [N, A]; ``mentr`` and ``top`` are from the identity query only.

Logits are computed in eval mode without autocast: bf16 logits would quantise φ and tie the most
confident samples, which is exactly where low-FPR membership decisions are made.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit, logsumexp
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.train import predict

QUERIES = ("identity", "hflip")


def check_queries(queries: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate query names; the identity query must come first (single-query attacks read column 0)."""
    queries = tuple(queries)
    bad = [q for q in queries if q not in QUERIES]
    if bad:
        raise ValueError(f"unknown quer{'y' if len(bad) == 1 else 'ies'} {bad}; valid: {', '.join(QUERIES)}")
    if not queries or queries[0] != "identity" or len(set(queries)) != len(queries):
        raise ValueError(f"queries must start with 'identity' and not repeat; got {list(queries)}")
    return queries


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = z_y − logsumexp_{j≠y} z_j. logits [..., K], labels broadcastable to [...] -> [...] float64."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    zy = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, y[..., None], -np.inf, axis=-1)
    return zy - logsumexp(others, axis=-1)


def loss_from_phi(phi: np.ndarray) -> np.ndarray:
    """Cross-entropy ℓ = log(1 + e^{−φ}) [same shape as phi]."""
    return np.logaddexp(0.0, -np.asarray(phi, dtype=np.float64))


def p_true_from_phi(phi: np.ndarray) -> np.ndarray:
    """p_y = sigmoid(φ) [same shape as phi]."""
    return expit(np.asarray(phi, dtype=np.float64))


def modified_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal's Mentr [N] from logits [N, K] and labels [N] (log terms in log space, no clipping).

    log p_i comes from log_softmax; log(1 − p_i) = log(−expm1(log p_i)), exact unless p_i rounds to 1
    in float64 (then the term p_i·log(1 − p_i) of a wrong class is floored at p_i·log(1e-300)).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    logp = z - logsumexp(z, axis=1, keepdims=True)
    p = np.exp(logp)
    with np.errstate(divide="ignore"):
        log1m = np.log(np.maximum(-np.expm1(logp), 1e-300))
    rows = np.arange(len(y))
    own = np.expm1(logp[rows, y]) * logp[rows, y]  # −(1 − p_y)·log p_y, with 1 − p_y = −expm1(log p_y)
    cross = -(p * log1m)
    cross[rows, y] = 0.0
    return own + cross.sum(axis=1)


def top_probabilities(logits: np.ndarray, k: int) -> np.ndarray:
    """The k largest softmax probabilities per row, descending: logits [N, K] -> [N, min(k, K)]."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - logsumexp(z, axis=1, keepdims=True))
    return -np.sort(-p, axis=1)[:, :k]


@dataclass
class Signals:
    """One model's signals on pool ``indices`` [N]: phi [N, A], mentr [N], top [N, top_k], labels [N]."""

    indices: np.ndarray
    labels: np.ndarray
    phi: np.ndarray
    mentr: np.ndarray
    top: np.ndarray
    queries: tuple[str, ...]

    @property
    def loss(self) -> np.ndarray:
        """Cross-entropy of the identity query [N]."""
        return loss_from_phi(self.phi[:, 0])


def apply_query(x: torch.Tensor, query: str) -> torch.Tensor:
    """Images [B, C, H, W] as the query sees them."""
    return x if query == "identity" else x.flip(-1)


def model_logits(model: nn.Module, pool: Pool, indices: np.ndarray, device: torch.device,
                 queries: tuple[str, ...] = ("identity",), batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits [N, A, K] (eval mode, no autocast: the one pass `mintkit.core.train.predict` in fp32, once
    per query) and labels [N] for pool[indices]."""
    queries = check_queries(queries)
    if not len(indices):
        return np.empty((0, len(queries), 0), np.float32), np.empty(0, np.int64)
    passes = [predict(model, pool, indices, device, batch_size, precision="fp32",
                      view=lambda x, q=q: apply_query(x, q)) for q in queries]
    return torch.stack([logits for logits, _ in passes], 1).numpy(), passes[0][1].numpy()


def model_signals(model: nn.Module, pool: Pool, indices: np.ndarray, device: torch.device,
                  queries: tuple[str, ...] = ("identity",), top_k: int = 3, batch_size: int = 512) -> Signals:
    """Signals of ``model`` on pool[indices] (see the module table)."""
    logits, y = model_logits(model, pool, indices, device, queries, batch_size)
    phi = logit_confidence(logits, y[:, None])
    return Signals(np.asarray(indices, dtype=np.int64), y, phi, modified_entropy(logits[:, 0], y),
                   top_probabilities(logits[:, 0], top_k), tuple(queries))
