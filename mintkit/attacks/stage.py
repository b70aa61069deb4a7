"""The attacks as a stage of a paper's notebook: two typed parameters, one call, rows and a table.

Every paper declares the same two parameters (help texts `ATTACKS_HELP`, `N_REFERENCE_HELP`; checked by
`check_attack_params`): ``attacks`` (``all`` = the seven offline attacks of aMINT's Table 3 family, or a
comma list of names) and ``n_reference`` (k reference models per mode; 0 = no attacks).

The papers' stages then call the one entry point, `mintkit.attacks.pipeline.audit_attacks`, on their split (or
its views); `skip_reason` and `model_recipe` say whether and how (docs/attacks.md, "In the notebooks").
"""
from __future__ import annotations

from torch import nn

from mintkit.attacks.pipeline import QUICK_K
from mintkit.attacks.run import ATTACKS, OFFLINE_ATTACKS
from mintkit.core.data import Pool
from mintkit.core.params import ParameterError, split_list
from mintkit.core.train import TrainConfig
from mintkit.models.audited import AuditedRecipe
from mintkit.models.iresnet import is_face_model

ALL = "all"
ATTACKS_HELP = ("membership attacks on the audited model: all (the seven offline ones) or a comma list of "
                f"{', '.join(ATTACKS)} (an online one trains n_reference more models)")
N_REFERENCE_HELP = (f"reference models per mode for the attacks, even (0: no attacks; the quick {QUICK_K} cost "
                    "about as many audited-model trainings)")


def attack_names(text: str) -> tuple[str, ...]:
    """'all' -> OFFLINE_ATTACKS; 'yeom, lira-online' -> ('yeom', 'lira-online'). Order kept, repeats dropped;
    names are not checked here (`check_attack_params` does)."""
    names = tuple(dict.fromkeys(split_list(text)))
    return OFFLINE_ATTACKS if names == (ALL,) else names


def check_attack_params(attacks: str, n_reference: int) -> None:
    """ParameterError naming the valid values: unknown attack names, an odd or negative n_reference, or
    online LiRA with fewer than 4 reference models."""
    names = attack_names(attacks)
    valid = f"valid: {ALL}, or a comma list of {', '.join(ATTACKS)}"
    bad = [a for a in names if a not in ATTACKS]
    if ALL in bad:
        raise ParameterError(f"attacks={attacks!r}: {ALL!r} stands alone; {valid}")
    if not names or bad:
        raise ParameterError(f"attacks={attacks!r}: {bad or 'empty'} not valid; {valid}")
    if n_reference < 0 or n_reference % 2:
        raise ParameterError(f"n_reference={n_reference}: 0 (no attacks) or an even count >= 2 (each reference "
                             "sample is IN for half of the models)")
    if 0 < n_reference < 4 and "lira-online" in names:
        raise ParameterError(f"n_reference={n_reference}: lira-online needs >= 4 (2 IN and 2 OUT models a sample)")


def skip_reason(model: nn.Module, pool: Pool) -> str | None:
    """Why the attacks cannot score ``model`` on ``pool``, or None: a face model has an identity head, not a
    posterior over the pool's labels; a classifier with another class count does not predict them."""
    if is_face_model(model):
        return "a face model: its head is fitted to identities, it gives no class posterior over the pool's labels"
    n = getattr(model, "config", {}).get("num_classes")
    if n is not None and int(n) != pool.num_classes:
        return f"the model predicts {n} classes, the pool has {pool.num_classes}: its losses are not defined"
    return None


def model_recipe(model: nn.Module, arch: str, train: TrainConfig) -> AuditedRecipe:
    """The recipe of a loaded model (arch, dropout and head from its ``config``; ``arch`` when the model does not
    say), for reference models that repeat it. The training settings of a user's checkpoint are not stored:
    the caller's ``train`` stands in for them."""
    cfg = getattr(model, "config", {})
    return AuditedRecipe(cfg.get("arch", getattr(model, "arch", arch)), train, dropout=float(cfg.get("dropout", 0.0)),
                         head=cfg.get("head", "softmax"))
