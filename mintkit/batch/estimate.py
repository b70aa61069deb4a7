"""What a planned run will use and cost, before it starts: its device, its set sizes and its time.

* **Device**: the run's ``device`` parameter as `mintkit.core.train.pick_device` will resolve it in the run
  (``auto`` is CUDA when ``torch.cuda.is_available()``, else the CPU). `cuda_refusal` is the reason a batch must
  not start: a run that asks for CUDA where torch sees none, or ``--profile paper`` (full-size models, GPU
  presets) on the CPU unless ``-p device cpu`` says so.
* **Sizes**: D (audited-model members), E (MINT-training non-members) and the evaluated members, as the notebook
  computes them: a size left at 0 is resolved with the paper's own rule (gMINT ``split_sizes``, aMINT
  ``sized_for``) on the dataset's known split sizes (`POOL_SIZES`), without loading any data.
* **Time**: the median wall time of the preset's complete runs in the batch folder (batch.json), else a stated
  rate per (paper, architecture, device) in seconds per D-sample and audited epoch (`RATES`, each with where it
  was measured), else nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mintkit.batch.notebooks import params_class
from mintkit.batch.plans import RunSpec
from mintkit.core.data import TEST, TRAIN
from mintkit.core.params import ParameterError, fields_of

# dataset -> (official training split, official test split) sample counts; a pool without a test split says 0
POOL_SIZES = {"digits": (1797, 0), "synthetic": (512, 0), "mnist": (60000, 10000), "mnist-test": (10000, 0),
              "fashion-mnist": (60000, 10000), "cifar10": (50000, 10000), "cifar10-jpeg": (50000, 10000),
              "cifar100": (50000, 10000), "gtsrb": (26640, 12630), "tinyimagenet": (100000, 10000)}


@dataclass(frozen=True)
class Rate:
    """Seconds of wall time per D-sample and audited epoch of one run, and where that was measured."""

    seconds: float
    source: str


# Measured whole-run wall times divided by D x audited epochs (the audited model's training dominates; the MINT
# stages scale with D as well). Add a row when a run is timed on a new (paper, architecture, device).
RATES = {
    ("gmint", "mobilenet", "cpu"): Rate(721 / (1000 * 30), "gMINT MobileNet, D 1,000 / E 1,000, patience 0, 30 "
                                        "epochs: 721 s wall on a 2-core AMD EPYC, one thread"),
    # the quick profile's own runs (digits, defaults, one thread), 2026-12-07 while a test suite shared the CPU
    ("mint", "smallcnn", "cpu"): Rate(188 / (320 * 30), "MINT quick run, smallcnn on digits, D 320, 30 epochs: 188 s "
                                      "wall on a 2-core AMD EPYC, one thread, shared with a test run"),
    ("amint", "smallcnn", "cpu"): Rate(143 / (300 * 25), "aMINT quick run, smallcnn on digits, D 300, 25 joint "
                                       "epochs: 143 s wall on a 2-core AMD EPYC, one thread, shared with a test run"),
    ("gmint", "smallcnn", "cpu"): Rate(61 / (300 * 8), "gMINT quick run, smallcnn on digits, D 300, 8 epochs: 61 s "
                                       "wall on a 2-core AMD EPYC, one thread, shared with a test run"),
    ("factors", "smallcnn", "cpu"): Rate(126 / (500 * 8), "Factors quick run (every factor's models), smallcnn on "
                                         "digits, D 500, 8 epochs: 126 s wall on a 2-core AMD EPYC, one thread, shared "
                                         "with a test run"),
    # an upper estimate: measured while the 2-core CPU ran about four processes a core
    ("amint", "mobilenet", "cpu"): Rate(3923 / (1000 * 30), "aMINT MobileNet Entry, D 1,000 / E 1,000, patience 0, "
                                        "30 joint epochs: 3,923 s wall on a 2-core AMD EPYC, one thread, heavily "
                                        "shared (an upper estimate)"),
}


def run_device(spec: RunSpec) -> str:
    """The device the run will use: its `device` parameter, `auto` resolved as pick_device resolves it ('' for a
    notebook without a device parameter)."""
    asked = str(spec.params.get("device", ""))
    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return asked


def _cuda_state() -> str:
    if torch.cuda.is_available():
        return f"torch sees {torch.cuda.device_count()} CUDA device(s): {torch.cuda.get_device_name(0)}"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees no GPU: no NVIDIA driver, or one "
            "older than that CUDA (nvidia-smi shows the driver's CUDA; README, Install, names the wheel to pick)")


def device_line(runs: list[RunSpec], where: str = "this machine") -> str:
    """One line: how many runs use which device, and why (the CUDA state behind `auto`)."""
    counts: dict[str, int] = {}
    for s in runs:
        d = run_device(s) or "no device parameter"
        counts[d] = counts.get(d, 0) + 1
    parts = ", ".join(f"{d} for {n} run(s)" for d, n in sorted(counts.items())) or "no run"
    auto = sum(str(s.params.get("device", "auto")) == "auto" for s in runs)
    return f"device on {where}: {parts}" + (f" ({auto} with device auto; {_cuda_state()})" if auto else "")


def cuda_refusal(runs: list[RunSpec], profile: str) -> str | None:
    """Why the batch must not start on this machine, or None."""
    if torch.cuda.is_available() or not runs:
        return None
    cuda = [s for s in runs if run_device(s).startswith("cuda")]
    if cuda:
        return (f"{len(cuda)} run(s) ask for device cuda, but {_cuda_state()}; use -p device auto or -p device cpu "
                "(valid: auto, cpu, cuda, cuda:N)")
    if profile == "paper" and any(str(s.params.get("device", "")) == "auto" for s in runs):
        return (f"--profile paper trains the papers' models at the papers' sizes (tens of thousands of images a "
                f"run; `reproduce --dry-run` lists them) with presets sized for a GPU, but {_cuda_state()}. Install "
                "the CUDA wheel for your driver (README, Install), or add -p device cpu to run on the CPU anyway "
                "(--profile quick, mnist or cifar10 are sized for a CPU)")
    return None


class _Pool:
    """The two facts the papers' size rules read from a pool: its length and each sample's official split."""

    def __init__(self, n_train: int, n_test: int) -> None:
        self.origin = torch.cat([torch.full((n_train,), TRAIN), torch.full((n_test,), TEST)])

    def __len__(self) -> int:
        return len(self.origin)


def run_sizes(spec: RunSpec) -> tuple[int, int, int] | None:
    """(D, E, evaluated members) the notebook will use, or None when they depend on data the plan cannot size
    (an imagefolder tree, a paper without a size rule for 0)."""
    p = spec.params
    given = tuple(int(p.get(k) or 0) for k in ("n_members", "n_external", "n_eval"))
    if all(given):
        return given  # type: ignore[return-value]
    cls = params_class(spec.paper)
    sizes = POOL_SIZES.get(str(p.get("dataset", "")))
    if cls is None or sizes is None or spec.paper not in ("gmint", "amint"):
        return None
    try:
        P = cls.from_values({k: v for k, v in p.items() if k in fields_of(cls)})
        if spec.paper == "gmint":
            return P.split_sizes(sum(sizes))
        S = P.sized_for(_Pool(*sizes))
        return S.n_members, S.n_external, S.n_eval
    except (ParameterError, ValueError, TypeError):
        return None


def sizes_text(spec: RunSpec) -> str:
    """'D 1,000 / E 1,000 / eval 200'; '' for a notebook without size parameters."""
    if not any(k in spec.params for k in ("n_members", "n_external", "n_eval")):
        return ""
    got = run_sizes(spec)
    if got is None:
        return "D/E/eval from the data"
    return f"D {got[0]:,} / E {got[1]:,} / eval {got[2]:,}"


def stated_seconds(spec: RunSpec) -> tuple[float, str] | None:
    """(seconds, source) from RATES for one run, or None when no rate is stated for its paper, arch and device."""
    arch = str(spec.params.get("arch", "")).lower()
    rate = RATES.get((spec.paper, arch, (run_device(spec) or "cpu").split(":")[0]))
    sizes = run_sizes(spec)
    epochs = int(spec.params.get("audited_epochs") or 0)
    if rate is None or sizes is None or not epochs:
        return None
    return rate.seconds * sizes[0] * epochs, rate.source
