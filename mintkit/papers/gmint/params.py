"""gMINT's parameters: fields, valid values, cross-field rules and the values derived from them.

One frozen dataclass (`Params`) on `mintkit.core.params.Params`; the notebook's parameters cell is
generated from it. Which choice each field stands for is explained in ``docs/gmint.md`` (section
"Parameters"); the derived values (the grid of setups x reductions x fractions, the rules a run
computes, the results label) are properties, so every stage reads the same resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mintkit.attacks.pipeline import QUICK_K
from mintkit.attacks.stage import ATTACKS_HELP, N_REFERENCE_HELP, attack_names, check_attack_params
from mintkit.core import params as base
from mintkit.core.null import NULL_HELP, NULL_MODELS, POSITIVE_HELP
from mintkit.core.params import ParameterError, param
from mintkit.core.train import OPTIMIZERS, TrainConfig
from mintkit.methods.modifier_variants import BN_MODES, OPTIM_STATES, ORDERS, WEIGHTS, Protocol
from mintkit.methods.modifiers import FILTER_REDUCTIONS, RULES
from mintkit.models.zoo import GMINT_LAYERS
from mintkit.models.zoo import SETUPS as LAYER_SETUPS
from mintkit.reference import label_dataset, label_model

# A gMINT feature is the modifier vector of one layer (entry, middle, output: models.zoo.GMINT_LAYERS)
# or the three concatenated ("combined", printed "All" in the paper's Table 1).
FEATURE_SETUPS: tuple[str, ...] = (*LAYER_SETUPS, "combined")
# Shares of the MINT-training part the paper calls D100, D10 and D1.
FRACTIONS: tuple[float, ...] = (1.0, 0.1, 0.01)
# Which MINT epoch is kept: best on a validation slice, best on the evaluation set (the paper), the last.
SELECTIONS: tuple[str, ...] = ("val", "paper", "last")
ALL = "all"


def fraction_label(f: float) -> str:
    """1 -> D100, 0.1 -> D10, 0.01 -> D1 (the paper's labels)."""
    return f"D{100 * f:g}"


def condition(reduction: str, f: float) -> str:
    """The results' condition of one grid cell: 'MEAN;D100'."""
    return f"{reduction.upper()};{fraction_label(f)}"


def setup_label(setup: str) -> str:
    """entry -> Entry, combined -> Combined (the paper's spelling)."""
    return setup.capitalize()


@dataclass(frozen=True)
class Params(base.Params):
    """Everything the gMINT notebook reads (docs/gmint.md, "Parameters")."""

    PAPER: ClassVar[str] = "gmint"

    dataset: str = param("digits", "dataset name (mintkit.core.data.DATASETS: mnist, cifar10, gtsrb, "
                                   "tinyimagenet ...) or imagefolder:PATH")
    image_size: int = param(0, "resize images to this side; 0 keeps the native size (GTSRB loads at 32)",
                            bounds="[0, inf)")
    arch: str = param("smallcnn", "audited architecture (models.zoo.GMINT_LAYERS names its three layers)",
                      choices=lambda: tuple(GMINT_LAYERS))
    setup: str = param("all", "entry, middle, output, combined, or all (one gradient pass serves all four)",
                       choices=(*FEATURE_SETUPS, ALL))
    rule: str = param("adam", "optimiser of the single step: adam (fresh state), adam-state (the audited "
                              "model's end-of-training state), sgd, grad (the raw gradient)", choices=RULES)
    reduction: str = param("all", "per-filter reduction of a modifier: mean, min, max, or all",
                           choices=(*FILTER_REDUCTIONS, ALL))
    data_fraction: float = param(0.0, "share of the MINT-training part used: 1 (D100), 0.1 (D10), 0.01 (D1); "
                                      "0 runs all three", bounds="[0, 1]")
    compare_rules: bool = param(True, "also fit Combined/MEAN/D100 for every rule (same gradient pass)")
    gradnorm: bool = param(False, "also fit the gradient-norm MINT (docs/gradnorm.md) on the three layers: a Table 3 "
                                  "row beside activation MINT (off by default: earlier results unchanged)")
    audited_epochs: int = param(8, "(max) epochs of the audited model (paper: 50 with early stopping)",
                                bounds="[1, inf)")
    patience: int = param(0, "early stopping of the audited model: epochs without a higher validation accuracy "
                             "before it stops, the best epoch kept (0: off, every epoch runs)", bounds="[0, inf)")
    n_val: int = param(1000, "validation samples of that early stopping, never members or evaluated: pool samples "
                             "outside D and E, else carved out of E's MINT-training part (used when patience > 0)",
                       bounds="[0, inf)")
    audited_optimizer: str = param("adam", "optimiser of the audited model", choices=OPTIMIZERS)
    batch_size: int = param(64, "batch size of the audited model", bounds="[1, inf)")
    lr: float = param(1e-3, "learning rate of the audited model; also the step size of the weight modifier")
    mint_epochs: int = param(20, "epochs of the MINT MLP (paper: 100)", bounds="[1, inf)")
    mint_lr: float = param(1e-3, "Adam learning rate of the MINT MLP")
    mint_batch_size: int = param(128, "balanced batch size of the MINT MLP", bounds="[1, inf)")
    selection: str = param("val", "MINT epoch kept: val (validation slice), paper (best on the evaluation "
                                  "set: optimistic), last", choices=SELECTIONS)
    val_fraction: float = param(0.1, "share of the MINT-training part held out when selection is val", bounds="(0, 1)")
    n_members: int = param(300, "|D|; 0 takes half the pool, as the paper (the quick default uses 300)",
                           bounds="[0, inf)")
    n_external: int = param(0, "|E|, non-members including the evaluation ones; 0 takes |D| (equal halves)",
                            bounds="[0, inf)")
    n_eval: int = param(0, "evaluation members, as many evaluation non-members; 0 takes eval_fraction of |D|",
                        bounds="[0, inf)")
    eval_fraction: float = param(0.2, "share of D and of E that evaluates the MINT model (paper: 20%)", bounds="(0, 1)")
    chunk_size: int = param(0, "samples whose per-sample weight tensors exist at once (memory grows with chunk x "
                                 "weights; 0 picks 1 on CPU and 64 on CUDA)", bounds="[0, inf)")
    n_boot: int = param(200, "bootstrap resamples of the confidence intervals (0 for none)", bounds="[0, inf)")
    attacks: str = param(ALL, ATTACKS_HELP)
    n_reference: int = param(QUICK_K, N_REFERENCE_HELP)
    cache_dir: str = param(".cache/mintkit/models", "cache of audited and reference models (empty: no cache)")
    checkpoint: str = param("", "audit your own model: a mintkit checkpoint (its extra may hold the Adam state)")
    out_dir: str = param("runs/gmint-scratch", "run folder to write")
    # Protocol variants (docs/gmint.md, "Protocol variants"): readings of how the per-sample steps are taken; the
    # defaults are the definition, and the results rows name the variant (`variant`)
    optim_state: str = param("restored", "optimiser state between samples: restored (definition: every step from "
                                         "the same state) or carried (one optimiser over the whole sequence)",
                             choices=OPTIM_STATES)
    weights: str = param("restored", "weights between samples: restored (definition) or carried (each step kept: "
                                     "online training over the sequence)", choices=WEIGHTS)
    order: str = param("members_first", "sequence of the samples when anything is carried: members_first (D, then "
                                        "E) or shuffled (one seeded permutation of D and E)", choices=ORDERS)
    bn_mode: str = param("eval", "BatchNorm mode of the single step: eval (definition: running statistics) or train "
                                 "(the sample's own statistics)", choices=BN_MODES)
    # the null control (mintkit.core.null): the same pipeline on an audited model that never saw D
    null_model: str = param("off", NULL_HELP, choices=NULL_MODELS)
    positive_control: bool = param(False, POSITIVE_HELP)
    # gMINT's default keeps torch's thread count: the audited model and the per-sample gradients have always run
    # on it, and on CPU the thread count changes the audited model's float rounding (docs/gmint.md, Parameters)
    threads: int = param(0, "torch CPU threads (0 keeps torch's default, as gMINT always ran; 1 is the other "
                            "papers' default)")

    def check(self) -> None:
        if self.positive_control and self.patience:
            raise ParameterError(f"positive_control trains without early stopping (a leaky model): set patience 0 "
                                 f"(now {self.patience})")
        if self.rule == "adam-state" and self.audited_optimizer != "adam" and not self.checkpoint:
            raise ParameterError("rule='adam-state' continues the audited model's Adam state: it needs "
                                 "audited_optimizer='adam' (or a checkpoint that holds one)")
        if self.null_model != "off" and self.checkpoint:
            raise ParameterError("null_model trains (or builds) the audited model itself: it cannot audit a checkpoint")
        if self.null_model == "untrained" and self.rule == "adam-state":
            raise ParameterError("rule='adam-state' needs the audited model's training state; an untrained null "
                                 "model has none (use rule adam, sgd or grad)")
        check_attack_params(self.attacks, self.n_reference)

    # ------------------------------------------------------------------ derived values
    @property
    def setups(self) -> tuple[str, ...]:
        return FEATURE_SETUPS if self.setup == ALL else (self.setup,)

    @property
    def attack_list(self) -> tuple[str, ...]:
        """The attacks run on the audited model beside Table 3 (empty when n_reference is 0)."""
        return attack_names(self.attacks) if self.n_reference else ()

    @property
    def reductions(self) -> tuple[str, ...]:
        return FILTER_REDUCTIONS if self.reduction == ALL else (self.reduction,)

    @property
    def fractions(self) -> tuple[float, ...]:
        return FRACTIONS if self.data_fraction == 0 else (self.data_fraction,)

    @property
    def rules(self) -> tuple[str, ...]:
        """`rule` first, then (compare_rules) every other rule this audited model allows."""
        others = [r for r in RULES if self.compare_rules and (r != "adam-state" or self.audited_optimizer == "adam")]
        return tuple(dict.fromkeys((self.rule, *others)))

    @property
    def protocol(self) -> str:
        """Results label: 'paper' when the MINT epoch is chosen on the evaluation set, else 'heldout'."""
        return "paper" if self.selection == "paper" else "heldout"

    @property
    def step_protocol(self) -> Protocol:
        """How the per-sample steps are taken (mintkit.methods.modifier_variants.Protocol)."""
        return Protocol(self.optim_state, self.weights, self.order, self.bn_mode)

    @property
    def variant(self) -> str:
        """Results label of the protocol variant: 'definition', or e.g. 'optim_state=carried,order=members_first'
        (mintkit.papers.common.setup adds the null control's part)."""
        return self.step_protocol.label

    @property
    def layers(self) -> dict[str, str]:
        """{entry, middle, output: dotted name of the nn.Conv2d / nn.Linear} of models.zoo.GMINT_LAYERS."""
        return {s: GMINT_LAYERS[self.arch][s] for s in LAYER_SETUPS}

    def setup_layers(self, setup: str) -> list[str]:
        """Layers whose vectors form a setup's feature (combined: the three, concatenated)."""
        return list(self.layers.values()) if setup == "combined" else [self.layers[setup]]

    @property
    def audited_config(self) -> TrainConfig:
        """The audited model's training (the one place it is built)."""
        return TrainConfig(epochs=self.audited_epochs, batch_size=self.batch_size, lr=self.lr,
                           fit_check=self.fit_check,
                           optimizer=self.audited_optimizer, patience=self.patience)

    @property
    def keep_adam_state(self) -> bool:
        """Save the Adam state of the three layers beside the cached model (for rule 'adam-state')."""
        return self.audited_optimizer == "adam" and not self.checkpoint

    @property
    def labels(self) -> dict[str, str]:
        """The paper's dataset and model labels of this run (results keys)."""
        return {"dataset": label_dataset(self.dataset), "model": label_model(self.arch)}

    def split_sizes(self, pool_size: int) -> tuple[int, int, int]:
        """(|D|, |E|, evaluation members) for a pool of `pool_size` samples; E includes the eval non-members."""
        d = self.n_members or pool_size // 2
        e = self.n_external or d
        n_eval = self.n_eval or int(round(self.eval_fraction * min(d, e)))
        if n_eval >= min(d, e):
            raise ParameterError(f"n_eval={n_eval} leaves no MINT-training data (|D|={d}, |E|={e})")
        return d, e, n_eval
