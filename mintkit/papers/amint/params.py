"""aMINT's parameters: fields, valid values, cross-field rules and the values derived from them.

One frozen dataclass (`Params`) on `mintkit.core.params.Params`; the notebook's parameters cell is
generated from it. docs/amint.md, "Parameters", says what each choice stands for; the derived values
(protocols scored, the sizes a pool resolves 0 to, the head and training settings) are properties or
methods here, so every stage reads one resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mintkit.attacks.pipeline import QUICK_K
from mintkit.attacks.stage import ALL, ATTACKS_HELP, N_REFERENCE_HELP, attack_names, check_attack_params
from mintkit.core import params as base
from mintkit.core.data import TEST, Pool
from mintkit.core.null import NULL_MODELS, POSITIVE_HELP
from mintkit.core.params import ParameterError, param
from mintkit.core.train import TrainConfig
from mintkit.methods.mplus import POOLINGS
from mintkit.models.zoo import AMINT_TAPS
from mintkit.models.zoo import SETUPS as TAP_SETUPS
from mintkit.reference import label_dataset, label_model

# 'paper': the evaluated members trained the MINT head (as the paper); 'heldout': they trained only the task.
PROTOCOLS: tuple[str, ...] = ("paper", "heldout")
BOTH = "both"
YEOM = "Yeom et al."  # Table 3's loss-threshold row (the published label)


def setup_label(setup: str) -> str:
    """entry -> Entry (the paper's spelling)."""
    return setup.capitalize()


@dataclass(frozen=True)
class Params(base.Params):
    """Everything the aMINT notebook reads (docs/amint.md, "Parameters")."""

    PAPER: ClassVar[str] = "amint"

    dataset: str = param("digits", "dataset name (mintkit.core.data.DATASETS) or imagefolder:PATH (CASIA-WebFace)")
    image_size: int = param(0, "resize images to this side; 0 keeps the native size (the released code used 64 "
                               "for GTSRB, Tiny ImageNet and CASIA)", bounds="[0, inf)")
    arch: str = param("smallcnn", "audited architecture (models.zoo.AMINT_TAPS names its taps)",
                      choices=lambda: tuple(AMINT_TAPS))
    setup: str = param("entry", "where the two maps feeding the MINT head are taken (models.zoo.AMINT_TAPS)",
                       choices=TAP_SETUPS)
    audited_epochs: int = param(25, "max epochs of the joint (active) training and of the passive audited model",
                                bounds="[1, inf)")
    mint_epochs: int = param(25, "max epochs of the passive MINT head on the frozen audited model", bounds="[1, inf)")
    batch_size: int = param(64, "D batch and E batch of each step (the released code: 64 and 64)", bounds="[1, inf)")
    lr: float = param(1e-3, "Adam learning rate (paper E1: 1e-5, E2: 1e-4)")
    mint_lr: float = param(0.0, "Adam learning rate of the MINT head, active and passive (0: lr); the Output "
                           "head's branch loses its ReLUs at lr 1e-3 (docs/amint.md, Why the Output head does not "
                           "train)", bounds="[0, inf)")
    weight_decay: float = param(1e-4, "L2 regulariser R(w+) on every weight (paper E1: 1e-4, E2: 1e-5)")
    lambda_task: float = param(1.0, "λ1, weight of the normalised task loss", bounds="[0, inf)")
    lambda_ratio: float = param(10.0, "λ2/λ1, weight of the normalised MINT loss relative to the task "
                                      "(E1: 10, E2: 1e4)", bounds="[0, inf)")
    mint_width: int = param(64, "channels of the first conv (FC for ViT) of each MINT branch (E1: 256, E2: 1024)",
                            bounds="[1, inf)")
    mint_convs: int = param(1, "convs per branch, each doubling the width (E1: 1; E2: 2, 1024 then 2048)",
                            bounds="[1, inf)")
    mint_hidden: int = param(0, "width of the first of the two linear layers (0: the fused width)", bounds="[0, inf)")
    mint_dropout: float = param(0.4, "dropout between the two linear layers (E1: 0.4, E2: 0.2)", bounds="[0, 1)")
    mint_pool: str = param("max", "global pooling of each branch (max as the released code, or mean)",
                           choices=POOLINGS)
    patience: int = param(8, "early stopping: epochs without a better validation objective (0: off, the last "
                             "epoch is kept)", bounds="[0, inf)")
    val_fraction: float = param(0.15, "share of E held out of training (and as many MINT-trained members) for "
                                      "early stopping and threshold calibration", bounds="(0, 1)")
    n_members: int = param(300, "|D|, trains the audited task (0: the paper, 50% of the training split)",
                           bounds="[0, inf)")
    n_external: int = param(300, "|E|, non-members of the MINT loss (0: the paper, the other 50%)", bounds="[0, inf)")
    n_eval: int = param(100, "evaluated members per protocol, as many evaluated non-members (0: the whole test "
                             "split, capped by D)", bounds="[0, inf)")
    protocol: str = param(BOTH, "protocols scored: paper, heldout or both (docs/amint.md, Protocols)",
                          choices=(*PROTOCOLS, BOTH))
    n_boot: int = param(200, "bootstrap resamples of the confidence intervals (0 for none)", bounds="[0, inf)")
    attacks: str = param(ALL, ATTACKS_HELP)
    n_reference: int = param(QUICK_K, N_REFERENCE_HELP)
    # the null control (mintkit.core.null): task AND MINT loss train on stand-ins for D, so neither the model nor
    # its head ever sees D, which is still scored as the members. 'untrained' has no meaning for a model trained
    # jointly with its head, so it is refused.
    null_model: str = param("off", "null control: off, other-data (the task and MINT losses train on |D| pool "
                                   "samples outside every set, never on D: every row must read chance)",
                            choices=NULL_MODELS[:2])
    positive_control: bool = param(False, POSITIVE_HELP)
    cache_dir: str = param(".cache/mintkit/models", "cache of passive audited and reference models (empty: no "
                                                    "cache)")
    out_dir: str = param("runs/amint-scratch", "run folder to write")

    def check(self) -> None:
        if self.positive_control and self.patience:
            raise ParameterError(f"positive_control trains without early stopping (a leaky model): set patience 0 "
                                 f"(now {self.patience})")
        if self.n_members and self.n_external and self.n_eval:
            self.check_sizes()
        check_attack_params(self.attacks, self.n_reference)

    # ------------------------------------------------------------------ derived values
    @property
    def protocols(self) -> tuple[str, ...]:
        """The protocols whose rows this run writes (both are scored on the same trained models)."""
        return PROTOCOLS if self.protocol == BOTH else (self.protocol,)

    @property
    def attack_list(self) -> tuple[str, ...]:
        """The attacks run on the passive audited model (empty when n_reference is 0; docs/amint.md,
        "Membership attacks")."""
        return attack_names(self.attacks) if self.n_reference else ()

    @property
    def holds_out_members(self) -> bool:
        """Whether a slice of D is kept out of the MINT loss (needed by the held-out protocol)."""
        return "heldout" in self.protocols

    @property
    def n_val(self) -> int:
        """Validation non-members (held out of E) and validation members (MINT-trained, not evaluated)."""
        return max(2, int(round(self.val_fraction * self.n_external)))

    @property
    def head_kw(self) -> dict:
        """Keywords of mplus.build_mplus: the MINT head family."""
        return dict(width=self.mint_width, n_convs=self.mint_convs, hidden=self.mint_hidden,
                    dropout=self.mint_dropout, pool=self.mint_pool)

    @property
    def audited_config(self) -> TrainConfig:
        """The passive audited model's training (the active M+ uses the same epochs, batch, lr, L2)."""
        return TrainConfig(epochs=self.audited_epochs, batch_size=self.batch_size, lr=self.lr,
                           fit_check=self.fit_check,
                           weight_decay=self.weight_decay, patience=self.patience)

    @property
    def labels(self) -> dict[str, str]:
        """The paper's dataset and model labels of this run (results keys)."""
        return {"dataset": label_dataset(self.dataset), "model": label_model(self.arch)}

    def sized_for(self, pool: Pool) -> "Params":
        """A copy with sizes left at 0 resolved for `pool` (docs/amint.md, "Membership sets").

        D = E = 50% of the training split; evaluated members = evaluated non-members = the whole test
        split, capped by what D can give each protocol. A pool without a test split (imagefolder) keeps
        10% for evaluation non-members and gives D and E 45% each.
        """
        has_test = bool((pool.origin == TEST).any())
        n_train = int((pool.origin != TEST).sum())
        half = n_train // 2 if has_test else int(0.45 * len(pool))
        sized = self.replace(n_members=self.n_members or half, n_external=self.n_external or half,
                             n_eval=self.n_eval or 1)
        if self.n_eval:
            return sized
        n_non = int((pool.origin == TEST).sum()) if has_test else len(pool) - 2 * half
        return sized.replace(n_eval=min(n_non, sized.max_eval()))

    def max_eval(self) -> int:
        """Most evaluated members per protocol D allows: the paper protocol's members and the validation
        members come from the MINT-trained part, which the held-out members are not."""
        room = self.n_members - self.n_val
        return room // 2 if self.holds_out_members else room

    def check_sizes(self) -> None:
        """Resolved sizes fit: evaluated and validation members inside D, validation non-members inside E."""
        if self.n_eval > self.max_eval():
            need = 2 * self.n_eval + self.n_val if self.holds_out_members else self.n_eval + self.n_val
            raise ParameterError(f"n_members={self.n_members} is too small for n_eval={self.n_eval} and "
                                 f"{self.n_val} validation members under protocol={self.protocol!r} (needs "
                                 f">= {need}); raise n_members or lower n_eval / val_fraction")
        if self.n_external <= self.n_val:
            raise ParameterError(f"n_external={self.n_external} leaves no E to train on after {self.n_val} "
                                 "validation non-members; raise n_external or lower val_fraction")
