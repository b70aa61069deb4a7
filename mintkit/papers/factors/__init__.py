"""Factors (CVPRW 2024): how the developer's training choices change what MINT detects.

Four factors, each a full retraining of the audited model with one setting changed (docs/factors.md):

| scenario   | table   | values (paper)                 | what changes                                         |
|------------|---------|--------------------------------|------------------------------------------------------|
| `baseline` | Table 1 | -                              | nothing: the base parameters                         |
| `exposure` | Table 2 | x1, x10, x20, x30              | members in four quarters, each repeated k times per epoch |
| `batch`    | Table 3 | 8, 32, 64, 256                 | batch size of the audited model                      |
| `dropout`  | Table 4 | with / without                 | the dropout in front of the output layer on or off   |
| `loss`     | Table 5 | AdaFace, CosFace, ArcFace      | the margin head (+ plain softmax CE for classifiers) |

The notebook calls `Params` / `setup`, then `sweep(ctx, scenario, P)` per factor (tidy rows), then
`paper_table`, `figure` and `save_tables`.
"""
from mintkit.papers.common import null_check
from mintkit.papers.factors.exposure import exposure_repeats, exposure_split, quarter_features, quarters
from mintkit.papers.factors.models import MarginSmallCNN, build_audited, builder
from mintkit.papers.factors.params import SCENARIOS, STUDIED, Params
from mintkit.papers.factors.report import figure, paper_table, plot_factor, save_tables
from mintkit.papers.factors.sweep import (FEATURE_SETS, MINT_LABEL, audited_quality, condition, make_split, setup,
                                          sweep, variant)

__all__ = ["Params", "null_check", "setup", "sweep", "make_split", "variant", "condition", "audited_quality", "exposure_split",
           "exposure_repeats", "quarters", "quarter_features", "MarginSmallCNN", "build_audited", "builder",
           "paper_table", "plot_factor", "figure", "save_tables", "SCENARIOS", "STUDIED", "FEATURE_SETS",
           "MINT_LABEL"]
