"""MINT's parameters: one typed, checked dataclass (docs/mint.md, "Parameters").

Every value the MINT stages read is a field here or a property derived from fields; a stage
function that needs a different setting gets ``P.replace(...)``, never a copied dict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mintkit.attacks.pipeline import QUICK_K
from mintkit.attacks.stage import ALL, ATTACKS_HELP, N_REFERENCE_HELP, attack_names, check_attack_params
from mintkit.core.data import DATASETS, is_dataset_name
from mintkit.core.null import NULL_HELP, NULL_MODELS, POSITIVE_HELP
from mintkit.core.params import ParameterError, param, split_list
from mintkit.core.params import Params as BaseParams
from mintkit.core.train import TrainConfig
from mintkit.models.zoo import ARCHS, FACE_ARCHS, HEADS
from mintkit.reference import label_dataset, label_model

LAYERS = ("stage1", "stage2", "stage3", "stage4")
LABELS = {"stage1": "Conv Layer #1", "stage2": "Conv Layer #2", "stage3": "Conv Layer #3",
          "stage4": "Conv Layer #4", "outcome": "Model Outcome", "combination": "Combination"}
FAMILIES = {"mlp": "Vanilla MINT", "cnn": "CNN MINT"}
FEATURES = {"mlp": (*LAYERS, "outcome", "combination"), "cnn": (*LAYERS, "combination")}
MIA_FEATURE = "MIA (Rezaei & Liu);Model Outcome"
LOSS_FEATURE = "Loss threshold (Yeom et al.);Model Outcome"
CONTROLS = ("other-data", "untrained", "none")
CNN_COMBINATIONS = ("branches", "stack")
VANILLA_TABLES = ("Table 1", "Table 2")
CNN_TABLES = ("Table 4", "Table 7", "Table 8", "Table 9")
TABLES = ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 6", "Table 7", "Table 8", "Table 9",
          "Fig. 5")
CONDITION_FIELDS = ("size", "dataset", "image_size")


def size_label(n: int) -> str:
    """MINT-training size as the paper writes it: 100000 -> '100K', 1000 -> '1K', 900 -> '900'."""
    return f"{n // 1000}K" if n >= 1000 and n % 1000 == 0 else str(n)


@dataclass(frozen=True)
class Params(BaseParams):
    """The MINT notebook's parameters (defaults: the CPU quick run on digits, about two minutes)."""

    PAPER = "mint"

    # ------------------------------------------------------------------ audited model and data
    arch: str = param("smallcnn", "audited architecture (ignored with checkpoint)", choices=ARCHS)
    head: str = param("softmax", "head of the audited model; margin heads only on the iresnet archs", choices=HEADS)
    dropout: float = param(0.0, "dropout in front of the audited model's output layer", bounds="[0, 1)")
    image_size: int = param(0, "resize images to this side (0: native; imagefolder data: 112 as the paper)")
    n_members: int = param(320, "|D|: samples that train the audited model (digits has 1797 in all)",
                           bounds="[1, inf)")
    n_external: int = param(240, "|E|: non-members that train the MINT model", bounds="[1, inf)")
    n_eval: int = param(80, "evaluation members and, as many, evaluation non-members", bounds="[1, inf)")
    n_mint_members: int = param(0, "members that train the MINT model (0: n_external, capped by what is left)")
    identity_disjoint: bool = param(False, "whole identities (imagefolder folders) go to one set (paper: True)")
    external_root: str = param("", "comma list of other datasets for E, each imagefolder:PATH or a dataset name "
                               "(empty: E from the main pool; paper Baseline Case: IJB-C, FDDB, GANDiffFace)")
    eval_nonmember_root: str = param("", "comma list of other datasets for the evaluation non-members (empty: from "
                                     "the main pool; paper Baseline Case: Adience)")
    checkpoint: str = param("", "audit this model instead of training one: a mintkit checkpoint or an InsightFace "
                            "arcface_torch IResNet backbone .pth (loaded with weights_only)")
    audited_epochs: int = param(30, "epochs of the audited model (enough to overfit: MINT needs a train/test gap)")
    batch_size: int = param(64, "batch size of the audited model")
    lr: float = param(1e-3, "Adam learning rate of the audited model")
    cache_dir: str = param(".cache/mintkit/models", "audited-model cache (empty: no cache)")

    # ------------------------------------------------------------------ MINT models
    mint_models: str = param("mlp,cnn", "comma list of MINT model families: mlp (Vanilla), cnn", items=str,
                             choices=tuple(FAMILIES))
    mlp_features: str = param("stage1,stage2,stage3,stage4,outcome,combination",
                              "Vanilla MINT feature sets, Table 1 rows (stage1..stage4, outcome, combination)",
                              items=str, choices=FEATURES["mlp"])
    cnn_features: str = param("stage1,stage2,stage3,stage4,combination",
                              "CNN MINT feature sets, Table 4 rows (stage1..stage4, combination)", items=str,
                              choices=FEATURES["cnn"])
    mint_epochs: int = param(20, "epochs of the Vanilla MINT model (paper: 20)")
    cnn_epochs: int = param(30, "epochs of the CNN MINT model (paper: 30)")
    mint_lr: float = param(1e-3, "Adam learning rate of the MINT models (paper: 1e-3)")
    mint_batch_size: int = param(128, "MINT batch size, half members and half non-members (paper: 128)")
    mint_l1: float = param(0.0, "L1 on the Vanilla Dense(128) kernel, Keras-style l1 times sum of abs(W) "
                           "(paper: 0.1, which silences small MINT-training sets)")
    mint_dropout: float = param(0.5, "dropout of the MINT models (paper: 0.5)", bounds="[0, 1)")
    cnn_filters: int = param(64, "CNN MINT conv filters (paper: 64)")
    cnn_kernel: int = param(5, "CNN MINT conv kernel (paper: 5)")
    cnn_pool: int = param(2, "CNN MINT max-pool size (not in the paper; 2)")
    cnn_dense: int = param(0, "CNN MINT dense width (0: C, the layer's channels, as the paper)")
    cnn_lr: float = param(0.0, "Adam learning rate of the CNN MINT (0: mint_lr, the paper's 1e-3; the MobileNet "
                          "presets use 1e-4: at 1e-3 its dense layer died in the second epoch on 8,000 maps)",
                          bounds="[0, inf)")
    cnn_standardize: bool = param(True, "standardise each channel of the CNN MINT's maps with MINT-training "
                                  "statistics (not in the paper; off: raw maps, on which the CNN stayed at constant "
                                  "scores on MobileNet MNIST)")
    cnn_combination: str = param("branches", "CNN Combination: branches (one conv per layer, concatenated after "
                                 "flattening) or stack (maps resized to one side, stacked on channels)",
                                 choices=CNN_COMBINATIONS)
    cnn_params_scale: float = param(1.0, "CNN MINT parameter multiplier (Table 7: 0.333, 1, 3, 10); filters and "
                                    "dense width are each scaled by its square root", bounds="(0, inf)")
    data_fraction: float = param(1.0, "fraction of the MINT-training data used (both classes)", bounds="(0, 1]")
    data_sweep: str = param("0.1,0.3", "comma list of further fractions for Tables 3 and 5 (empty: none)",
                            items=float, bounds="(0, 1]")
    n_boot: int = param(200, "bootstrap resamples for confidence intervals (0: none)")

    # ------------------------------------------------------------------ baselines
    attacks: str = param(ALL, ATTACKS_HELP)
    n_reference: int = param(QUICK_K, N_REFERENCE_HELP)

    # ------------------------------------------------------------------ domain control
    control: str = param("other-data", "domain control: other-data (same arch trained on pool data outside every "
                         "set), untrained (random weights), none", choices=CONTROLS)
    control_checkpoint: str = param("", "with control other-data: load this checkpoint instead of training one")
    n_control: int = param(0, "samples that train the control model (0: n_members, capped by what is left)")
    # the null control (mintkit.core.null): the same pipeline on an audited model that never saw the members
    null_model: str = param("off", NULL_HELP, choices=NULL_MODELS)
    positive_control: bool = param(False, POSITIVE_HELP)

    # ------------------------------------------------------------------ row labels
    condition: str = param("{size};{dataset}", "condition label of the rows: {size} is the MINT-training size as "
                           "the paper writes it (100K), also {dataset} and {image_size}; paper: {size};Baseline Case")
    tables: str = param("", "comma list of tables to write rows for (empty: every table the run produces)",
                        items=str, choices=TABLES)
    vanilla_table: str = param("Table 1", "table of the Vanilla per-feature rows (Table 2 for Case A and Case B)",
                               choices=VANILLA_TABLES)
    cnn_table: str = param("Table 4", "table of the CNN per-feature rows (Table 7 complexity, Tables 8 and 9 "
                           "appendix)", choices=CNN_TABLES)
    dataset_label: str = param("", "dataset label of the rows (empty: reference.label_dataset, e.g. Glint360K)")
    model_label: str = param("", "model label of the rows (empty: reference.label_model, e.g. FR Model 2)")

    # ------------------------------------------------------------------ rules between fields
    def check(self) -> None:
        for name in ("external_root", "eval_nonmember_root"):
            bad = [s for s in split_list(getattr(self, name)) if not is_dataset_name(s)]
            if bad:
                raise ParameterError(f"{name}: {bad} are not datasets; valid: {', '.join(DATASETS)}")
        if self.head != "softmax" and not self.checkpoint and self.arch not in FACE_ARCHS:
            raise ParameterError(f"head={self.head!r} is a margin head; margin heads need a face arch "
                                 f"({', '.join(FACE_ARCHS)}), arch={self.arch!r} takes head='softmax'")
        if self.null_model != "off" and self.checkpoint:
            raise ParameterError("null_model trains (or builds) the audited model itself: it cannot audit a checkpoint")
        if self.control_checkpoint and self.control != "other-data":
            raise ParameterError(f"control_checkpoint is read only with control='other-data' (control="
                                 f"{self.control!r})")
        try:
            self.condition.format(size="1K", dataset="d", image_size=0)
        except (KeyError, IndexError, ValueError) as e:
            raise ParameterError(f"condition={self.condition!r}: use only "
                                 f"{', '.join('{' + f + '}' for f in CONDITION_FIELDS)} ({e})") from None
        check_attack_params(self.attacks, self.n_reference)

    # ------------------------------------------------------------------ derived values
    @property
    def families(self) -> tuple[str, ...]:
        """MINT model families of this run, e.g. ('mlp', 'cnn')."""
        return split_list(self.mint_models)

    def feature_sets(self, family: str) -> tuple[str, ...]:
        """Feature sets of one family this run fits (empty for a family not in `families`)."""
        return split_list(getattr(self, f"{family}_features")) if family in self.families else ()

    def fits(self, family: str, feature: str) -> bool:
        """Whether this run fits `family` on `feature`."""
        return feature in self.feature_sets(family)

    @property
    def audited_config(self) -> TrainConfig:
        """The audited model's training (the control model and the attacks' reference models repeat it)."""
        return TrainConfig(epochs=self.audited_epochs, batch_size=self.batch_size, lr=self.lr, fit_check=self.fit_check)

    @property
    def attack_list(self) -> tuple[str, ...]:
        """The attacks of the Baselines section (empty when n_reference is 0)."""
        return attack_names(self.attacks) if self.n_reference else ()

    @property
    def sweep_fractions(self) -> tuple[float, ...]:
        return split_list(self.data_sweep, float)

    @property
    def table_filter(self) -> tuple[str, ...]:
        """Tables to write rows for (empty: all)."""
        return split_list(self.tables)

    @property
    def external_specs(self) -> tuple[str, ...]:
        return split_list(self.external_root)

    @property
    def eval_nonmember_specs(self) -> tuple[str, ...]:
        return split_list(self.eval_nonmember_root)

    def family_table(self, family: str) -> str:
        """The table of a family's per-feature rows."""
        return self.vanilla_table if family == "mlp" else self.cnn_table

    @property
    def cnn_learning_rate(self) -> float:
        """The CNN MINT's Adam rate: `cnn_lr`, or `mint_lr` when it is 0."""
        return self.cnn_lr or self.mint_lr

    @property
    def cnn_width_scale(self) -> float:
        """Factor on the CNN's filters and dense width: parameters grow by about its square."""
        return math.sqrt(self.cnn_params_scale)

    @property
    def cnn_family_label(self) -> str:
        """'CNN MINT', or the Table 7 label of a scaled CNN ('CNN MINT x3 params', 'CNN MINT /3 params')."""
        s = self.cnn_params_scale
        if abs(s - 1) < 1e-6:
            return FAMILIES["cnn"]
        return f"CNN MINT /{round(1 / s):g} params" if s < 1 else f"CNN MINT x{s:g} params"

    def fit_label(self, family: str, feature: str) -> str:
        """Feature column of a fit's rows: 'Vanilla MINT;Conv Layer #1', 'CNN MINT;Combination'."""
        return f"{self.cnn_family_label if family == 'cnn' else FAMILIES[family]};{LABELS[feature]}"

    def control_label(self, label: str) -> str:
        """'Vanilla MINT;Combination' -> 'Domain control (other-data) Vanilla MINT;Combination'."""
        return f"Domain control ({self.control}) {label}"

    @property
    def dataset_row_label(self) -> str:
        return self.dataset_label or label_dataset(self.dataset)

    @property
    def model_row_label(self) -> str:
        return self.model_label or label_model(self.arch)

    def condition_label(self, n_train: int) -> str:
        """The `condition` template filled in: e.g. '100K;Baseline Case' (paper), '480;digits' (ours)."""
        return self.condition.format(size=size_label(n_train), dataset=self.dataset_row_label,
                                     image_size=self.image_size)


