"""The audit's parameters: one frozen dataclass read by the CLI, the notebook and the pipeline.

``python -m mintkit audit`` maps its options onto these fields; ``notebooks/audit.ipynb`` has them as
its generated parameters cell. See ``docs/audit.md`` for what each step does with them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mintkit.attacks.run import OFFLINE_ATTACKS
from mintkit.audit.data import WHY_NONMEMBERS
from mintkit.core.params import ParameterError, Params, param, split_list
from mintkit.core.precision import PRECISIONS
from mintkit.core.train import OPTIMIZERS
from mintkit.methods import registry

METHODS = registry.names()  # mintkit.methods.registry: the one list of method names
GMINT_RULES = ("grad", "sgd", "adam")  # adam-state needs the optimiser state, which a foreign model lacks
# the reference-model attacks the audit runs (offline only: no reference model may train on a candidate member);
# Yeom et al.'s loss threshold is the `loss` method already
AUDIT_ATTACKS = tuple(a for a in OFFLINE_ATTACKS if a != "yeom")


@dataclass(frozen=True)
class AuditParams(Params):
    """Parameters of one audit. Paths may be relative to the working folder."""

    PAPER: ClassVar[str] = "audit"
    READS_DATASET: ClassVar[bool] = False

    seed: int = param(0, "seed of the split and of the MINT models")
    # the audit's own: set for the audit alone (core.precision.using), never a paper notebook's policy inherited
    # from the same kernel; the MINT heads stay fp32 on CPU whatever it says (docs/precision.md)
    precision: str = param("auto", "the audit's own passes (reference models, MINT heads on CUDA): auto (bf16 on "
                                   "CUDA, fp32 on a CPU), fp32, bf16; never inherited from a notebook",
                           choices=PRECISIONS)
    dataset: str = param("", "not read by the audit (members and nonmembers name the data); leave empty")
    data_root: str = param("", "not read by the audit; leave empty")
    out_dir: str = param("runs/audit", "run folder to write (audit.md, results.csv, scores.npz, figures)")
    model: str = param("", "audited model file: a state dict, TorchScript or torch.export (empty: the demo model)")
    arch: str = param("", "architecture of a state dict: a torchvision or timm name, or torchvision:NAME / timm:NAME")
    build: str = param("", "or module:callable (or file.py:callable) returning the nn.Module of a state dict")
    members: str = param("", "class-per-folder tree of the candidate members (the data in question)")
    nonmembers: str = param("", "class-per-folder tree of images the model was not trained on (required)")
    external: str = param("", "optional tree of more non-members to train the MINT model (else a share of nonmembers)")
    control: str = param("", "optional second model of the same architecture NOT trained on the members")
    owner_split: str = param("", "owner_split.json of the owner's random split (python -m mintkit.audit.custody): "
                                 "members must be its released half, nonmembers its kept half")
    methods: str = param("", "comma list of mintkit.methods.registry names (docs/audit.md, Methods; empty: the "
                             "default ones the model allows; gradient methods need a state dict)",
                         items=str, choices=METHODS)
    taps: str = param("", "comma list of module names for MINT (empty: the last two top-level maps and the output)")
    gmint_layers: str = param("", "comma list of Conv2d or Linear names for gMINT (empty: the last of each)")
    gmint_rule: str = param("grad", "gMINT weight modifier: grad (raw gradient), sgd, adam (fresh state)",
                            choices=GMINT_RULES)
    normalize: str = param("", "input scaling the model was trained with: imagenet, minus1-1, 0-1 or MEAN,STD")
    image_size: int = param(0, "resize images to this side (0: native size, all images must share it)",
                            bounds="[0, inf)")
    channels: int = param(0, "0 native (1 if all images are grayscale, else 3), 1 grayscale, 3 RGB", choices=(0, 1, 3))
    n_eval: int = param(0, "held-out members and non-members each (0: as many as the folders allow)", bounds="[0, inf)")
    external_fraction: float = param(0.5, "share of the non-members that trains the MINT model when external is empty",
                                     bounds="(0, 1)")
    mint_epochs: int = param(40, "epochs of each MINT model", bounds="[1, inf)")
    mint_lr: float = param(1e-3, "learning rate of each MINT model")
    alpha: float = param(0.05, "significance level of the verdict (after the Holm correction over methods)",
                         bounds="(0, 1)")
    n_boot: int = param(200, "bootstrap resamples for the AUC and TPR intervals", bounds="[0, inf)")
    batch_size: int = param(128, "images per forward pass", bounds="[1, inf)")
    n_reference: int = param(0, "reference models for the attacks (even; 0: no reference attacks)")
    reference: str = param("", "optional tree of more images the model was not trained on: reference models train "
                                "on it and on E (never on members or held-out images)")
    attacks: str = param("", f"comma list of {', '.join(AUDIT_ATTACKS)} (empty: all, when n_reference > 0)")
    reference_epochs: int = param(20, "epochs of each reference model (match the audited model's recipe if known)",
                                  bounds="[1, inf)")
    reference_lr: float = param(1e-3, "learning rate of each reference model", bounds="(0, inf)")
    reference_batch_size: int = param(64, "batch size of each reference model", bounds="[1, inf)")
    reference_optimizer: str = param("adam", "optimiser of each reference model", choices=OPTIMIZERS)

    def check(self) -> None:
        if self.dataset or self.data_root:
            raise ParameterError("dataset and data_root are not read by the audit; name the data with --members, "
                                 "--nonmembers and --external")
        if len(set(split_list(self.methods))) != len(split_list(self.methods)):
            raise ParameterError(f"--method {self.methods!r} names a method twice")
        if self.arch and self.build:
            raise ParameterError("give --arch or --build, not both")
        if self.model and not self.nonmembers:
            raise ParameterError(WHY_NONMEMBERS)
        if self.model and not self.members:
            raise ParameterError("--members is required: the folder of images whose use in training is in question")
        if not self.model and (self.members or self.nonmembers or self.external or self.control or self.owner_split):
            raise ParameterError("folders were given without a model: set --model (the notebook: an empty model runs the demo)")
        self.check_attacks()

    def check_attacks(self) -> None:
        bad = [a for a in split_list(self.attacks) if a not in AUDIT_ATTACKS]
        if bad:
            raise ParameterError(f"--attacks {self.attacks!r}: unknown {bad}; valid: {', '.join(AUDIT_ATTACKS)}"
                                 + (" (yeom is the loss method)" if "yeom" in bad else ""))
        if self.n_reference and (self.n_reference < 2 or self.n_reference % 2):
            raise ParameterError(f"--n-reference {self.n_reference}: must be 0 or even and >= 2 (the attacks' "
                                 "calibration draws shadow IN/OUT halves from the reference models)")
        if not self.n_reference and (self.attacks or self.reference):
            raise ParameterError("--attacks / --reference were given with --n-reference 0: set --n-reference (e.g. 4) "
                                 "to train reference models")

    @property
    def attack_list(self) -> tuple[str, ...]:
        """The reference attacks to run: none without reference models, else the named ones (default all); a
        property, as the papers' ``attack_list`` (``if not P.attack_list`` reads the same on every Params)."""
        if not self.n_reference:
            return ()
        return tuple(split_list(self.attacks)) or AUDIT_ATTACKS

    def method_list(self, differentiable: bool = True) -> list[str]:
        """The methods to run; empty `methods` means the registry's default ones the model allows."""
        return list(split_list(self.methods)) or registry.defaults(differentiable)

    @property
    def tap_list(self) -> list[str]:
        """Module names asked for ('output' stands for the model output, named '' inside)."""
        return ["" if t == "output" else t for t in split_list(self.taps)]

    @property
    def gmint_layer_list(self) -> list[str]:
        return list(split_list(self.gmint_layers))


Params = AuditParams
