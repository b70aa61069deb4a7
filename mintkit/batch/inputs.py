"""The files a planned run needs (datasets under ``data_root``, ``imagefolder:`` folders, checkpoints), checked
before any run starts, so that one missing file never aborts a batch.

`reproduce` runs every run whose inputs exist and marks the others ``needs input`` (status.json, batch.json,
the report's index), naming the file or folder; `--dry-run` prints the table of inputs (`input_table`). A
dataset torchvision can download is no blocker while its ``data_root`` exists (the first run fetches it
where a network is); bundled data (digits, synthetic) needs nothing. Relative paths resolve as the run
will resolve them (mintkit.core.paths).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mintkit.batch.plans import RunSpec
from mintkit.core.paths import resolve

BUNDLED = ("digits", "synthetic")
# dataset -> (folder under data_root, what it holds, where it comes from)
LAYOUTS = {
    "mnist": ("MNIST/raw", "train-/t10k-{images,labels}-idx*-ubyte[.gz]", "torchvision download (first run)"),
    "mnist-test": ("MNIST/raw", "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]",
                   "the MNIST test split (https://yann.lecun.com/exdb/mnist/ or torchvision's mirrors)"),
    "fashion-mnist": ("FashionMNIST/raw", "train-/t10k-*-idx*-ubyte[.gz]", "torchvision download (first run)"),
    "cifar10": ("cifar-10-batches-py", "data_batch_1..5, test_batch", "torchvision download (first run)"),
    "cifar100": ("cifar-100-python", "train, test, meta", "torchvision download (first run)"),
    "gtsrb": ("gtsrb/GTSRB", "Training/, Final_Test/ (torchvision layout)", "torchvision download (first run)"),
    "tinyimagenet": ("tiny-imagenet-200", "train/<wnid>/images/*.JPEG, val/", "cs231n download (first run)"),
}
DOWNLOADABLE = ("mnist", "fashion-mnist", "cifar10", "cifar100", "gtsrb", "tinyimagenet")
DATASET_PARAMS = ("dataset",)
LIST_PARAMS = ("external_root", "eval_nonmember_root")  # comma lists of dataset names or imagefolder:PATH
CHECKPOINT_PARAMS = ("checkpoint", "control_checkpoint")


@dataclass(frozen=True)
class Input:
    """One input of a run: `path` where it is looked for, whether it is there, and whether it is missing in a
    way that stops the run (`blocking`); `layout` and `source` say what to put there and where it comes from."""

    kind: str  # dataset | imagefolder | checkpoint
    name: str  # the parameter's value
    path: str
    exists: bool
    blocking: bool
    layout: str
    source: str
    missing_root: str = ""  # the data_root, when that folder itself does not exist

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} at {self.path}"

    def reason(self) -> str:
        """Why it is missing, short: the absent data_root, else the expected layout and source."""
        if self.missing_root:
            return f"{self.describe()} is missing (data_root {self.missing_root} does not exist)"
        return f"{self.describe()} is missing (expected {self.layout}; from {self.source})"


def _mnist_files(raw: Path, test_only: bool) -> bool:
    stems = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if not test_only:
        stems += ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    return all((raw / s).exists() or (raw / f"{s}.gz").exists() for s in stems)


def dataset_input(name: str, data_root: str) -> Input | None:
    """The input a dataset name (or imagefolder:PATH) stands for; None for bundled data and unknown names
    (the parameters check has refused those already)."""
    if name in BUNDLED or not name:
        return None
    if name.startswith("imagefolder:"):
        path = resolve(name.split(":", 1)[1])
        return Input("imagefolder", name, str(path), path.is_dir(), not path.is_dir(),
                     "<class>/<image files> (torchvision ImageFolder)", "your copy of the dataset")
    if name not in LAYOUTS:
        return None
    root = resolve(data_root)
    sub, layout, source = LAYOUTS[name]
    path = root / sub
    if name in ("mnist", "mnist-test"):
        exists = _mnist_files(path, name == "mnist-test")
    else:
        exists = path.is_dir() and any(path.iterdir())
    blocking = not exists and (name not in DOWNLOADABLE or not root.is_dir())
    # a missing data_root is said once (missing_roots_lines, needs_input_error), not in every row
    return Input("dataset", name, str(path), exists, blocking, f"<data_root>/{sub}/: {layout}", source,
                 "" if root.is_dir() else str(root))


def run_inputs(spec: RunSpec) -> list[Input]:
    """Every input of one planned run (its effective parameters)."""
    p = spec.params
    root = str(p.get("data_root", "data"))
    found: list[Input | None] = [dataset_input(str(p[k]), root) for k in DATASET_PARAMS if p.get(k)]
    for k in LIST_PARAMS:
        found += [dataset_input(s.strip(), root) for s in str(p.get(k) or "").split(",") if s.strip()]
    for k in CHECKPOINT_PARAMS:
        if p.get(k):
            path = resolve(str(p[k]))
            found.append(Input("checkpoint", str(p[k]), str(path), path.is_file(), not path.is_file(),
                               f"a file: parameter {k} (a mintkit checkpoint or a state dict)",
                               "your model, or the released weights the preset names (docs/models.md)"))
    return [i for i in found if i is not None]


def missing(spec: RunSpec) -> list[Input]:
    """The inputs whose absence stops the run."""
    return [i for i in run_inputs(spec) if i.blocking]


def needs_input_error(inputs: list[Input]) -> str:
    return "needs input: " + "; ".join(i.reason() for i in inputs)


def missing_roots_lines(runs: list[RunSpec]) -> list[str]:
    """One line per data_root that does not exist, with the runs that need it: said once, at the top."""
    roots: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    for spec in runs:
        got = {i.missing_root: i.name for i in run_inputs(spec) if i.missing_root}
        for root, name in got.items():
            roots.setdefault(root, set()).add(name)
            count[root] = count.get(root, 0) + 1
    return [f"data_root {root} does not exist: {count[root]} run(s) need it ({', '.join(sorted(names))}). Create "
            f"it (mkdir -p {root}) and the datasets torchvision downloads are fetched by their first run; put the "
            "others there as the inputs table says, or pass -p data_root DIR"
            for root, names in sorted(roots.items())]


def input_table(runs: list[RunSpec]) -> list[str]:
    """Lines of the dry run's input table: one row per distinct input, with the runs that need it."""
    rows: dict[tuple, tuple[Input, set]] = {}
    for spec in runs:
        for i in run_inputs(spec):
            rows.setdefault((i.kind, i.path), (i, set()))[1].add(spec.paper)
    if not rows:
        return ["inputs: none beyond the bundled data (digits, synthetic)"]
    lines = ["inputs:", f"  {'state':<24} {'kind':<11} {'runs':>4}  path  (expected layout; source)"]
    for (_k, _p), (i, papers) in sorted(rows.items(), key=lambda kv: (kv[1][0].exists, kv[0])):
        n = sum(1 for s in runs if any(j.path == i.path for j in run_inputs(s)))
        state = "exists" if i.exists else ("MISSING (needs input)" if i.blocking else "missing (downloads)")
        lines.append(f"  {state:<24} {i.kind:<11} {n:>4}  {i.path}  ({i.layout}; {i.source}) "
                     f"[{', '.join(sorted(papers))}]")
    return lines
