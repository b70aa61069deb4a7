"""Audit a model that mintkit did not train: was this data used to train it? (``docs/audit.md``)."""
from mintkit.audit.data import AuditInputError, load_trees  # noqa: F401
from mintkit.audit.models import AuditedModel, ModelLoadError, load_audited_model  # noqa: F401
from mintkit.audit.params import METHODS, AuditParams, Params  # noqa: F401
from mintkit.audit.pipeline import Audit, ModelResult, make_split, open_run, prepare, record, score_model  # noqa: F401
from mintkit.audit.taps import list_taps  # noqa: F401
