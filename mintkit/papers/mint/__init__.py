"""MINT (IEEE Access 2025, "Is my Data in your AI Model?"): passive MINT on a model's activations.

The stages `notebooks/mint.ipynb` calls, in order (docs/mint.md, "Pipeline"):

1. `Params` / `setup`: the checked parameters; seed, device, threads, the pool (`load_data`: the main
   dataset plus the other databases the non-members come from) and the run folder.
2. `make_split`: the five membership sets, saved with the run.
3. `audited_model` / `audited_quality`: the audited model (trained and cached, or a user's checkpoint,
   InsightFace backbones included) and its own accuracy beside every MINT number.
4. `extract_features`: Auxiliary Auditable Data at ``stage1..stage4`` and the outcome.
5. `fit_all` / `size_sweep`: one MINT model per feature set and family; Tables 3 and 5.
6. `baselines` ({feature: result}: `loss_baseline`), `membership_attacks`, `control_model` + `fit_control`: the loss threshold, the
   published attacks with LiRA and RMIA (mintkit.attacks), and the domain control.
7. `report`: tidy rows, the paper's tables, ROC and score figures.
"""
from mintkit.papers.mint import report
from mintkit.papers.common import null_check
from mintkit.papers.mint.attacks import attack_table, membership_attacks
from mintkit.papers.mint.audited import (audited_model, audited_quality, baselines, control_model, load_audited,
                                         loss_baseline)
from mintkit.papers.mint.data import (SOURCE_EVAL, SOURCE_EXTERNAL, SOURCE_MAIN, labelled_never_seen, load_data,
                                      make_split, setup, split_table, unused)
from mintkit.papers.mint.features import extract_features, feature_shapes, needed_taps
from mintkit.papers.mint.fitting import control_fits, fit_all, fit_control, fit_one, size_sweep
from mintkit.papers.mint.params import FAMILIES, LABELS, LAYERS, LOSS_FEATURE, MIA_FEATURE, Params, size_label

__all__ = ["Params", "null_check", "setup", "load_data", "make_split", "split_table", "unused", "labelled_never_seen",
           "audited_model", "audited_quality", "load_audited", "control_model", "loss_baseline", "baselines",
           "extract_features", "feature_shapes", "needed_taps", "fit_one", "fit_all", "size_sweep", "control_fits",
           "fit_control", "report", "FAMILIES", "LABELS", "LAYERS", "LOSS_FEATURE", "MIA_FEATURE", "size_label",
           "SOURCE_MAIN", "SOURCE_EXTERNAL", "SOURCE_EVAL", "membership_attacks", "attack_table"]
