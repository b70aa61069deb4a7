"""Audit a model that mintkit did not train: was this data used to train it? (``docs/audit.md``).

Step by step (as ``notebooks/audit.ipynb``)::

    pool = load_trees(...)                    # members, non-members (, external): checked, normalised
    model = load_audited_model(...)           # state dict + arch/build, TorchScript or torch.export
    A = prepare(P, pool, model)               # taps, gMINT layers, split: every check, nothing written
    run = open_run(A)                         # the run folder
    train_reference_models(A)                 # only with n_reference > 0: k offline reference models
    res = score_model(A, A.model)             # MINT, gMINT, loss (, attacks) and the blind baseline; test; verdict
    write_report(A, run, res)                 # results.csv, scores.npz, figures, audit.md

or all at once: ``run_audit(P)`` (``python -m mintkit audit``). The owner's random split before publishing,
for the strong design: ``owner_split(src, out, seed)`` (``python -m mintkit.audit.custody``).
"""
from mintkit.audit.attacks import train_reference_models
from mintkit.audit.blind import run_blind
from mintkit.audit.checks import check_model_takes_images
from mintkit.audit.custody import check_owner_split, owner_split
from mintkit.audit.data import AuditInputError, describe_pool, load_trees
from mintkit.audit.models import AuditedModel, ModelLoadError, load_audited_model
from mintkit.audit.params import METHODS, AuditParams, Params
from mintkit.audit.pipeline import (
    Audit,
    ModelResult,
    blind_baseline,
    make_split,
    open_run,
    prepare,
    record,
    score_model,
)
from mintkit.audit.report import figures, run_audit, write_report
from mintkit.audit.taps import list_taps

__all__ = ["METHODS", "Audit", "AuditInputError", "AuditParams", "AuditedModel", "ModelLoadError", "ModelResult",
           "Params", "blind_baseline", "check_model_takes_images", "check_owner_split", "demo_params",
           "describe_pool", "figures", "list_taps", "load_audited_model", "load_trees", "make_demo", "make_split",
           "open_run", "owner_split", "prepare", "record", "run_audit", "run_blind", "score_model",
           "train_reference_models", "write_report"]


def __getattr__(name: str):
    """`demo_params` and `make_demo` on first use: importing mintkit.audit.demo here would make
    `python -m mintkit.audit.demo` find it already imported, and runpy then prints a RuntimeWarning first."""
    if name in ("demo_params", "make_demo"):
        from mintkit.audit import demo  # noqa: PLC0415 - deferred on purpose, see above

        return getattr(demo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
