"""``python -m mintkit audit``: was this data used to train this model? (``docs/audit.md``).

Registered by ``mintkit.batch.cli`` through `add_parser`; `main` runs it. Exit status: 0 the audit
ran (whatever its verdict), 2 bad input (reported before anything is trained or written).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from PIL import Image

from mintkit.audit.checks import probe_taps
from mintkit.audit.data import GRAY_MODES, SOURCES, AuditInputError, scan_tree
from mintkit.audit.models import load_audited_model
from mintkit.audit.params import METHODS, AuditParams
from mintkit.methods import registry
from mintkit.audit.report import run_audit
from mintkit.audit.taps import default_taps, gmint_default_layers, tap_label
from mintkit.core.params import ParameterError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to an argparse subparsers object."""
    d = AuditParams()
    a = subparsers.add_parser("audit", help="audit a model you bring: were these images used to train it?",
                              description=__doc__.split("\n")[0])
    a.add_argument("--model", required=True, help="state dict, TorchScript or torch.export file of the audited model")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--arch", default="", help="architecture of a state dict: torchvision or timm name (e.g. "
                   "resnet18, timm:resnet18)")
    g.add_argument("--build", default="", help="module:callable (or file.py:callable) returning the nn.Module")
    a.add_argument("--members", default="", help="class-per-folder tree of the candidate members")
    a.add_argument("--nonmembers", default="", help="class-per-folder tree of images the model was NOT trained on")
    a.add_argument("--external", default="", help="optional tree of more non-members to train the MINT model")
    a.add_argument("--control", default="", help="optional model of the same architecture not trained on the members")
    a.add_argument("--owner-split", default="", help="owner_split.json of your random split made before publishing "
                   "(python -m mintkit.audit.custody): --members its released half, --nonmembers its kept half")
    a.add_argument("--method", default=d.methods,
                   help=f"comma list of {', '.join(METHODS)} (docs/audit.md, Methods; default: the "
                        f"default ones the model allows: {', '.join(registry.defaults())})")
    a.add_argument("--taps", nargs="+", default=[], metavar="NAME",
                   help="module names whose outputs MINT reads ('output' = the model output); see --list-taps")
    weighed = [m for m in METHODS if registry.get(m).layers == "weights"]
    a.add_argument("--gmint-layer", nargs="+", default=[], metavar="NAME",
                   help=f"Conv2d/Linear names whose weights {', '.join(weighed)} differentiate")
    a.add_argument("--gmint-rule", default=d.gmint_rule, help=f"weight modifier (default {d.gmint_rule})")
    a.add_argument("--normalize", default="", help="imagenet | minus1-1 | 0-1 | MEAN,STD: the model's input scaling")
    a.add_argument("--image-size", type=int, default=0, help="resize to N x N (default: native size)")
    a.add_argument("--channels", type=int, default=0, help="0 native, 1 grayscale, 3 RGB (converts)")
    a.add_argument("--n-eval", type=int, default=0, help="held-out members and non-members each (default: all)")
    r = a.add_argument_group("reference attacks (LiRA, RMIA, Watson, Ye, Salem, Song & Mittal; docs/attacks.md)")
    r.add_argument("--n-reference", type=int, default=d.n_reference,
                   help="reference models of the audited architecture to train (even; default 0: no attacks)")
    r.add_argument("--reference", default="", help="optional tree of more non-member images the reference models "
                   "train on (they always may use E; never members or held-out images)")
    r.add_argument("--attacks", default=d.attacks, help="comma list (default: every offline attack)")
    r.add_argument("--reference-epochs", type=int, default=d.reference_epochs)
    r.add_argument("--reference-lr", type=float, default=d.reference_lr)
    r.add_argument("--reference-batch-size", type=int, default=d.reference_batch_size)
    r.add_argument("--reference-optimizer", default=d.reference_optimizer)
    a.add_argument("--alpha", type=float, default=d.alpha, help=f"significance level (default {d.alpha})")
    a.add_argument("--seed", type=int, default=d.seed)
    a.add_argument("--device", default=d.device)
    a.add_argument("--out", default="", help="run folder, relative to the shell's folder (default "
                   "runs/audit/<model file name>); an earlier audit there is kept beside it as <out>-<time>")
    a.add_argument("--list-taps", action="store_true", help="print the model's modules with output shapes and exit")
    return a


def params_from(args: argparse.Namespace) -> AuditParams:
    """The checked AuditParams of parsed CLI arguments."""
    values = {"model": args.model, "arch": args.arch, "build": args.build, "members": args.members,
              "nonmembers": args.nonmembers, "external": args.external, "control": args.control,
              "owner_split": args.owner_split,
              "methods": args.method, "taps": ",".join(args.taps), "gmint_layers": ",".join(args.gmint_layer),
              "gmint_rule": args.gmint_rule, "normalize": args.normalize, "image_size": args.image_size,
              "channels": args.channels, "n_eval": args.n_eval, "alpha": args.alpha, "seed": args.seed,
              "n_reference": args.n_reference, "reference": args.reference, "attacks": args.attacks,
              "reference_epochs": args.reference_epochs, "reference_lr": args.reference_lr,
              "reference_batch_size": args.reference_batch_size, "reference_optimizer": args.reference_optimizer,
              "device": args.device,
              # a shell argument, like --model: absolute here, else the run would resolve it against the
              # mintkit home (mintkit.core.paths)
              "out_dir": str(Path(args.out or Path("runs") / "audit" / Path(args.model).stem).resolve())}
    return AuditParams.from_values(values)


def probe(args: argparse.Namespace) -> tuple[torch.Tensor, int]:
    """Two zero images [2, C, H, W] shaped as the audit would feed them, and the class count, from the
    given trees (class folders counted, only the first image decoded)."""
    trees = [getattr(args, s) for s in SOURCES if getattr(args, s)]
    if not trees:
        raise AuditInputError("--list-taps needs --members (the image shape and the class count come from it)")
    classes = sorted(set().union(*[set(scan_tree(t, "members" if t == args.members else "tree")) for t in trees]))
    first = next(iter(scan_tree(trees[0], "members").values()))[0]
    with Image.open(first) as im:
        c = args.channels or (1 if im.mode in GRAY_MODES else 3)
        w, h = (args.image_size, args.image_size) if args.image_size else im.size
    return torch.zeros(2, c, h, w), len(classes)


def cmd_list_taps(args: argparse.Namespace) -> int:
    """Print every module the model runs, with its output shape, and the default taps and gMINT layers."""
    x, n_classes = probe(args)
    model = load_audited_model(args.model, args.arch, args.build, n_classes, int(x.shape[1]))
    infos = probe_taps(model, x)
    width = max(len(i.name) for i in infos) + 2
    print(f"{'module':<{width}} {'type':<24} output [C, ...] on {list(x.shape[1:])} images")
    for i in infos:
        print(f"{tap_label(i.name):<{width}} {i.type:<24} {list(i.shape)}")
    print(f"default MINT taps: {', '.join(tap_label(t) for t in default_taps(infos))}")
    if model.differentiable:
        print(f"default gMINT layers: {', '.join(gmint_default_layers(model))}")
    else:
        print(f"gMINT: not available for a {model.kind} model (no per-sample gradients)")
    return 0


def main(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run the audit (or --list-taps) for parsed arguments; returns the exit status."""
    try:
        if args.list_taps:
            return cmd_list_taps(args)
        P = params_from(args)
        command = "python -m mintkit " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        _, main_res, control, run = run_audit(P, command=command, progress=sys.stderr.isatty())
    except (AuditInputError, ParameterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(main_res.verdict.sentence)
    if control is not None:
        print(f"control: {control.verdict.sentence}")
    for k, r in main_res.methods.items():
        print(f"  {k:<16} AUC {r.test.auc:.3f}  p {r.test.p:.2g}  p(Holm) {r.p_holm:.2g}  "
              f"p beats blind(Holm) {r.p_vs_blind_holm:.2g}  {r.label}")
    for k, b in main_res.blind.items():
        print(f"  {k:<16} AUC {b.test.auc:.3f}  p {b.test.p:.2g}  p(Holm) {b.p_holm:.2g}  {b.label}")
    print(f"accuracy on labelled non-members: {main_res.nonmember_accuracy:.3f}")
    print(f"report: {run.dir / 'audit.md'}")
    return 0
