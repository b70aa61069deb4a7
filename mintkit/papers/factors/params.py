"""Factors' parameters: one typed, checked dataclass (docs/factors.md, "Parameters").

The scenario grids are comma lists (presets keep YAML lists for grids of runs); their parsed values
are properties, so no stage re-parses a string.
"""
from __future__ import annotations

from dataclasses import dataclass

from mintkit.core.null import NULL_HELP, NULL_MODELS
from mintkit.core.params import ParameterError, param, split_list
from mintkit.core.params import Params as BaseParams
from mintkit.core.train import OPTIMIZERS
from mintkit.models.zoo import ARCHS, FACE_ARCHS, HEADS
from mintkit.reference import label_dataset, label_model

SCENARIOS = {"baseline": "Table 1", "exposure": "Table 2", "batch": "Table 3", "dropout": "Table 4",
             "loss": "Table 5"}
STUDIED = tuple(s for s in SCENARIOS if s != "baseline")  # the factors a run may select
MARGIN_ARCHS = ("smallcnn", *FACE_ARCHS)  # archs that take a margin head (smallcnn through MarginSmallCNN)


@dataclass(frozen=True)
class Params(BaseParams):
    """The Factors notebook's parameters (defaults: the CPU quick run on digits, about a minute and a half)."""

    PAPER = "factors"

    # threads 0 keeps torch's default: the reference quick runs were made so, and the thread count changes
    # the audited models' weights (summation order), hence every number downstream
    threads: int = param(0, "torch CPU threads (0 keeps torch's default, as the reference runs; 1 is faster)")
    out_dir: str = param("runs/factors-scratch", "run folder to write")
    scenarios: str = param("exposure,batch,dropout,loss", "comma list of factors to run: exposure, batch, dropout, "
                           "loss (Table 1, the base model, always runs)", items=str, choices=STUDIED)
    image_size: int = param(0, "resize images to this side (0: native; 112 for face data as the paper)")

    # ------------------------------------------------------------------ the base audited model
    arch: str = param("smallcnn", "audited architecture (paper: iresnet50, IR-50)", choices=ARCHS)
    loss: str = param("softmax", "head and loss of the base model (paper baseline: adaface)", choices=HEADS)
    dropout: float = param(0.5, "p of the dropout before the output layer in the base model (paper: on)",
                           bounds="[0, 1)")
    audited_epochs: int = param(8, "epochs of every audited model (paper: 20, inferred from its text)")
    batch_size: int = param(64, "base batch size of the audited model (paper: 256)")
    optimizer: str = param("adam", "optimizer of the audited model: adam, or sgd with momentum 0.9 (AdaFace code)",
                           choices=OPTIMIZERS)
    lr: float = param(1e-3, "learning rate of the audited model (constant; no milestone schedule)")
    weight_decay: float = param(0.0, "weight decay of the audited model")
    margin_scale: float = param(16.0, "s of the margin heads (AdaFace code: 64; 16 trains faster with few classes)")
    embedding_dim: int = param(64, "embedding width of the margin-head SmallCNN (face archs: 512)")
    # the null control (mintkit.core.null): every audited model of the sweep trains on stand-ins for D
    null_model: str = param("off", NULL_HELP, choices=NULL_MODELS)
    cache_dir: str = param(".cache/mintkit/models", "cache of trained audited models (empty: no cache)")

    # ------------------------------------------------------------------ the factors
    exposures: str = param("1,10,20,30", "Table 2: repetitions per epoch of each member quarter (one per quarter)",
                           items=int, bounds="[1, inf)", nonempty=True)
    exposure_epochs: int = param(1, "epochs of the exposure model, each repeating quarter k exposures[k] times "
                                 "(0: audited_epochs)")
    exposure_members: int = param(400, "|D| of the exposure model, in equal quarters")
    batch_sizes: str = param("8,64,128", "Table 3: batch sizes (paper: 8,32,64,256; 256 barely trains on 500 digits)",
                             items=int, bounds="[1, inf)", nonempty=True)
    losses: str = param("adaface,cosface,arcface,softmax", "Table 5: heads (paper: adaface,cosface,arcface)",
                        items=str, choices=HEADS)

    # ------------------------------------------------------------------ membership sets and the MINT model
    n_members: int = param(500, "|D| of the base model and of the batch, dropout and loss factors")
    n_external: int = param(300, "|E|: non-members that train every MINT model (shared by the quarters)")
    n_eval: int = param(50, "evaluation members and as many non-members per MINT model (exposure: per quarter)")
    identity_disjoint: bool = param(False, "whole identities per set (face data: True, as MINT)")
    mint_epochs: int = param(20, "epochs of the Vanilla MINT model (paper: 20)")
    mint_hidden1: int = param(128, "width of the first FC layer of the MINT model (not in the paper)")
    mint_hidden2: int = param(64, "width of the second FC layer of the MINT model (not in the paper)")
    mint_dropout: float = param(0.3, "dropout of the MINT model (paper: 0.3)", bounds="[0, 1)")
    n_boot: int = param(200, "bootstrap resamples of the confidence intervals (0: none)")

    # ------------------------------------------------------------------ rules between fields
    def check(self) -> None:
        margins = sorted({h for h in self.heads_used if h != "softmax"})
        if margins and self.arch not in MARGIN_ARCHS:
            raise ParameterError(f"margin heads {margins} need arch in {', '.join(MARGIN_ARCHS)}; "
                                 f"arch={self.arch!r} takes loss='softmax' (and losses without margin heads)")
        if "exposure" in self.scenario_list and self.exposure_members // len(self.exposure_list) <= self.n_eval:
            raise ParameterError(f"exposure: {self.exposure_members // len(self.exposure_list)} members per quarter "
                                 f"cannot hold n_eval={self.n_eval} evaluation members and MINT-training members; "
                                 f"raise exposure_members or lower n_eval")

    # ------------------------------------------------------------------ derived values
    @property
    def scenario_list(self) -> tuple[str, ...]:
        """The selected factors in the paper's order (the baseline is not among them: it always runs)."""
        chosen = split_list(self.scenarios)
        return tuple(s for s in STUDIED if s in chosen)

    @property
    def exposure_list(self) -> tuple[int, ...]:
        return split_list(self.exposures, int)

    @property
    def batch_size_list(self) -> tuple[int, ...]:
        return split_list(self.batch_sizes, int)

    @property
    def loss_list(self) -> tuple[str, ...]:
        return split_list(self.losses)

    @property
    def heads_used(self) -> tuple[str, ...]:
        """Every head this run trains: the base one, and the Table 5 heads when the loss factor runs."""
        return (self.loss, *(self.loss_list if "loss" in self.scenario_list else ()))

    def values(self, scenario: str) -> list:
        """The values a scenario sweeps: exposures (one list: one model), batch sizes, dropout on/off, heads."""
        if scenario == "exposure":
            return [list(self.exposure_list)]
        if scenario == "batch":
            return list(self.batch_size_list)
        if scenario == "dropout":
            return [self.dropout, 0.0] if self.dropout > 0 else [0.0]
        if scenario == "loss":
            return list(self.loss_list)
        if scenario == "baseline":
            return [None]
        raise ParameterError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")

    @property
    def exposure_training_epochs(self) -> int:
        return self.exposure_epochs or self.audited_epochs

    @property
    def mint_hidden(self) -> tuple[int, int]:
        return (self.mint_hidden1, self.mint_hidden2)

    @property
    def dataset_row_label(self) -> str:
        return label_dataset(self.dataset)

    @property
    def model_row_label(self) -> str:
        return label_model(self.arch)
