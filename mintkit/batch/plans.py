"""What to run: presets (layered), grids, profiles, run folders and batch plans (notebooks: `batch.notebooks`).

Effective parameters of a run, later ones winning: the paper's typed defaults (`mintkit.papers.<paper>.Params`),
the literals of the notebook's `parameters` cell, the preset YAML(s), the `-p` overrides; all validated
here (`Notebook.check`), before any kernel starts. `mintkit.batch.runner` executes the plans.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from mintkit.batch.notebooks import NOTEBOOKS, Notebook
from mintkit.core.params import ParameterError, coerce
from mintkit.core.cifar_jpeg import TARBALL as CIFAR_JPEG_TARBALL
from mintkit.reference import PAPERS, label_dataset

PRESETS = NOTEBOOKS / "params"
PROFILES = ("quick", "paper", "mnist", "cifar10")


@dataclass(frozen=True)
class Profile:
    """A named selection of the paper presets: which presets, which grid points, which seeds.

    ``restrict`` keeps only the grid points whose values match (a preset whose fixed value does not match
    is dropped). ``standins`` name a dataset to use, and say so, when the one a preset asks for is not in
    ``data_root`` and the stand-in is (checked offline, at plan time).
    """

    name: str
    presets: dict[str, tuple[str, ...]]
    restrict: dict[str, Any] = field(default_factory=dict)
    standins: dict[str, str] = field(default_factory=dict)
    seeds: int = 1


# Every MNIST cell of aMINT Tables 1-2 (table1_mnist.yaml: its Entry runs also give Table 2) and gMINT Tables 1-3
# (a gMINT table1.yaml run computes every setup, reduction and fraction from one gradient pass and writes the
# Table 2 (MEAN) and Table 3 rows of its model too, so table2/table3.yaml would only repeat it on MNIST).
# aMINT on MNIST runs at the native 28x28, as table1_mnist.yaml says (docs/amint.md).
MNIST_PROFILE = Profile(
    "mnist",
    presets={"amint": ("table1_mnist",), "gmint": ("table1",), "mint": ("table1_mnist", "table7_mnist"),
             "factors": ("mnist",)},
    restrict={"dataset": "mnist"},
    standins={"mnist": "mnist-test"},
    seeds=3,
)
# Every CIFAR-10 cell of aMINT Tables 1-2 (table1.yaml restricted to cifar10: 3 setups x 6 archs; its Entry runs
# also give Table 2) and gMINT Tables 2-3 (table2.yaml restricted to cifar10: one run per arch computes every
# setup and fraction of Table 2 and writes its Table 3 rows too, so table3.yaml would only repeat it), and MINT's
# Appendix Tables 8-9 on CIFAR-10 in place of the paper's CIFAR-100 (table8_cifar10 / table9_cifar10.yaml).
# Without torchvision's CIFAR-10 files, the JPEG q75 re-encoding stands in, labelled "CIFAR-10 (JPEG q75 stand-in)".
CIFAR10_PROFILE = Profile(
    "cifar10",
    presets={"amint": ("table1",), "gmint": ("table2",), "mint": ("table8_cifar10", "table9_cifar10")},
    restrict={"dataset": "cifar10"},
    standins={"cifar10": "cifar10-jpeg"},
    seeds=3,
)
PROFILE_SPECS = {p.name: p for p in (MNIST_PROFILE, CIFAR10_PROFILE)}
# overrides that do not change what a run measures (where data lives, how it runs)
RECIPE_NEUTRAL = ("data_root", "device", "threads", "seed", "n_boot")
RUNNER_KEYS = ("out_dir",)  # set by the runner, never by a preset; left out of the hash and of resume checks


# --------------------------------------------------------------------------- parameter values
def parse_cli_value(name: str, text: str, spec: dict) -> Any:
    """A `-p NAME VALUE` string, typed as YAML would, then coerced to the schema type ("-p lr 1" -> 1.0)."""
    if name not in spec:
        raise ParameterError(f"unknown parameter {name!r}; valid: {', '.join(sorted(spec))}")
    typ = spec[name].type
    if typ is str:
        return text
    if typ in (int, float):
        try:  # plain Python literals first: YAML reads "1e3" as a string
            value = typ(text) if typ is float else int(text)
        except ValueError:
            value = yaml.safe_load(text)
            if typ is int and isinstance(value, float) and value.is_integer():
                value = int(value)
    else:
        value = yaml.safe_load(text)
    return coerce(name, value, typ)


INCLUDE = "include"  # preset key: base preset file(s), relative to the preset, whose values this one overrides


def load_preset(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A preset YAML: a flat mapping of parameter names (an empty file is {}).

    Presets are layered: ``include: _face.yaml`` (or a list) loads the base file(s) first, then this
    file's own values win. Files named ``_*.yaml`` are bases only: a profile never runs them as a table.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"preset {str(path)!r} not found")
    if path.resolve() in _seen:
        raise ParameterError(f"preset {path}: include cycle {' -> '.join(map(str, [*_seen, path.resolve()]))}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ParameterError(f"preset {where}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"preset {path}: expected 'name: value' pairs, got {type(data).__name__}")
    bases = data.pop(INCLUDE, [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged |= load_preset(path.parent / base, (*_seen, path.resolve()))
    return merged | data


def _is_grid(name: str, value: Any, spec: dict) -> bool:
    typ = spec[name].type if name in spec else None
    if typ in (list, tuple):  # a list-typed parameter is a grid only as a list of lists
        return isinstance(value, list) and bool(value) and all(isinstance(v, (list, tuple)) for v in value)
    return isinstance(value, list)


def validate(values: dict, nb: Notebook, where: str = "") -> dict:
    """Validated effective parameters (defaults of the cell filled in); `values` must be grid-free."""
    bad = [k for k in values if k in RUNNER_KEYS]
    if bad:
        raise ParameterError(f"{where or 'parameters'}: {bad} are set by the runner (use --out)")
    return nb.check(values, where)


def expand_grid(values: dict, nb: Notebook, where: str = "") -> list[tuple[dict, dict]]:
    """[(validated params, grid point)] for the cross product of list values (order: keys as written)."""
    unknown = sorted(set(values) - set(nb.spec))
    if unknown:
        raise ParameterError(f"{where + ': ' if where else ''}unknown parameter(s) {unknown}; valid: {nb.valid()}")
    axes = {k: v for k, v in values.items() if _is_grid(k, v, nb.spec)}
    for k, v in axes.items():
        if not v:
            raise ParameterError(f"{where}: grid {k!r} is an empty list")
    out = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        out.append((validate(values | point, nb, where), point))
    return out


def params_hash(params: dict) -> str:
    """8 hex digits of the effective parameters (runner keys left out): same parameters, same folder."""
    core = {k: v for k, v in sorted(params.items()) if k not in RUNNER_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.=+_-]+", "_", str(text)).strip("_")


def folder_name(preset: str, params: dict, point: dict | None = None) -> str:
    """`<preset>[-k=v...]-<hash8>`: readable (the grid point) and stable (the hash of every parameter)."""
    parts = [_slug(preset)] + [_slug(f"{k}={v}") for k, v in (point or {}).items()]
    name = "-".join(parts)[:80]
    return f"{name}-{params_hash(params)}"


# --------------------------------------------------------------------------- plans
@dataclass
class RunSpec:
    """One planned run: what to inject, where it goes."""

    paper: str
    notebook: str
    preset: str
    folder: str
    params: dict  # effective, validated (without out_dir)
    inject: dict  # what papermill injects (without out_dir)
    point: dict = field(default_factory=dict)
    # preset values this batch's -p overrides changed: {name: {"preset": value, "run": value}}; written to the
    # run folder's plan.json so the report can say the cell did not run the published recipe
    changed: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.paper}/{Path(self.folder).name}"


def plan_run(nb: Notebook, presets: Iterable[str | Path] = (), overrides: dict | None = None,
             out: str | Path | None = None, preset_name: str | None = None) -> RunSpec:
    """One run of `nb` with layered presets and overrides (no grids); folder `out` or runs/adhoc/<paper>/<name>."""
    values: dict = {}
    names = []
    for f in presets:
        values |= load_preset(f)
        names.append(Path(f).stem)
    values |= overrides or {}
    grids = [k for k, v in values.items() if k in nb.spec and _is_grid(k, v, nb.spec)]
    if grids:
        raise ParameterError(f"{grids} are grids (list values); pick one value with -p or use `reproduce`")
    params = validate(values, nb, "+".join(names) or "parameters")
    name = preset_name or "+".join(names) or "defaults"
    folder = Path(out) if out else Path("runs") / "adhoc" / nb.paper / folder_name(name, params)
    return RunSpec(nb.paper, str(nb.path), name, str(folder), params, {k: params[k] for k in values})


def seed_list(seeds: int | str | Iterable[int] | None, default: int) -> list[int]:
    """The seeds a batch runs: N gives 0..N-1 (`--seeds 3`), a comma list or ranges the seeds named
    (`--seeds 1,2`, `--seeds 1-2`: the rest of a batch whose seed 0 ran elsewhere), None the default count."""
    if seeds is None:
        return list(range(default))
    if isinstance(seeds, int):
        if seeds < 1:
            raise ParameterError(f"--seeds {seeds}: must be >= 1")
        return list(range(seeds))
    if isinstance(seeds, str):
        text = seeds.strip()
        if text.isdigit():
            return seed_list(int(text), default)
        out = []
        for part in filter(None, (t.strip() for t in text.split(","))):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m or (m[2] and int(m[2]) < int(m[1])):
                raise ParameterError(f"--seeds {seeds!r}: give N (seeds 0..N-1) or seeds and ranges, e.g. 1,2 or 1-2")
            out += list(range(int(m[1]), int(m[2] or m[1]) + 1))
        if not out:
            raise ParameterError(f"--seeds {seeds!r}: names no seed")
        return sorted(set(out))
    return sorted({int(s) for s in seeds})


def plan_batch(profile: str, papers: Iterable[str] | None = None, out: str | Path | None = None,
               overrides: dict | None = None, seeds: int | str | None = None, presets: str | None = None,
               notebooks_dir: Path = NOTEBOOKS, params_dir: Path = PRESETS) -> tuple[list[RunSpec], list[str]]:
    """(runs, notes) of a profile. Everything is validated here, before any kernel starts."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    out = Path(out or Path("runs") / profile)
    papers = list(papers or PAPERS)
    notes: list[str] = []
    runs: list[RunSpec] = []
    for paper in papers:
        nb = Notebook.load(paper, notebooks_dir)
        extra = {}
        for k, v in (overrides or {}).items():
            extra[k] = parse_cli_value(k, v, nb.spec) if isinstance(v, str) else v
        if profile == "quick":
            chosen = seed_list(seeds, 1)
            sources = [("quick", {"seed": chosen} if chosen != [0] else {}, {})]
        elif profile in PROFILE_SPECS:
            sources = profile_sources(PROFILE_SPECS[profile], paper, params_dir, seeds, presets, extra, notes)
        else:
            files = sorted(f for f in Path(params_dir, paper).glob("*.yaml") if not f.name.startswith("_"))
            if presets:
                files = [f for f in files if re.fullmatch(presets.replace("*", ".*"), f.stem)]
            if not files:
                notes.append(f"{paper}: no presets in {Path(params_dir, paper)}"
                             + (f" matching {presets!r}" if presets else ""))
            loaded = [(f.stem, load_preset(f)) for f in files]
            sources = [(s, v | ({"seed": seed_list(seeds, 1)} if seeds else {}), recipe_changes(v, extra))
                       for s, v in loaded]
        for preset, values, changed in sources:
            values = values | extra
            where = f"{paper}/{preset}"
            for params, point in expand_grid(values, nb, where):
                folder = out / paper / folder_name(preset, params, point)
                inject = {k: params[k] for k in values}
                runs.append(RunSpec(paper, str(nb.path), preset, str(folder), params, inject, point, changed))
    return runs, notes


def dataset_available(name: str, data_root: str | Path) -> bool:
    """Whether `name` can load offline from `data_root` (only the names a profile substitutes are known)."""
    if name == "mnist":  # torchvision's layout: both splits' raw idx files
        raw = Path(data_root) / "MNIST" / "raw"
        return all((raw / f).exists() or (raw / f"{f}.gz").exists() for f in
                   ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                    "t10k-labels-idx1-ubyte"))
    if name == "cifar10":  # torchvision's python-pickle batches
        base = Path(data_root) / "cifar-10-batches-py"
        return all((base / f).is_file() for f in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"))
    if name == "cifar10-jpeg":
        return (Path(data_root) / CIFAR_JPEG_TARBALL).is_file()
    return True


def recipe_changes(preset: dict, extra: dict) -> dict:
    """{name: {"preset": value, "run": value}} of the overrides that change what the preset's runs measure
    (picking values of a grid axis, where the data lives and how a run executes are not changes)."""
    return {k: {"preset": preset[k], "run": v} for k, v in extra.items()
            if k in preset and k not in RECIPE_NEUTRAL and preset[k] != v
            and not (isinstance(preset[k], list) and v in preset[k])}


def profile_sources(profile: Profile, paper: str, params_dir: Path, seeds: int | str | None, presets: str | None,
                    extra: dict, notes: list[str]) -> list[tuple[str, dict, dict]]:
    """[(preset name, values, recipe changes)] of `paper` under `profile`: restricted, set, stand-in data named,
    seeded; the changes are those of the `extra` overrides against the preset (:func:`recipe_changes`)."""
    out = []
    if paper not in profile.presets:
        return out
    for stem in profile.presets[paper]:
        if presets and not re.fullmatch(presets.replace("*", ".*"), stem):
            continue
        values = load_preset(Path(params_dir, paper, f"{stem}.yaml"))
        keep = True
        for k, want in profile.restrict.items():
            have = values.get(k)
            if isinstance(have, list):
                values[k] = [v for v in have if v == want]
                keep = bool(values[k])
            elif have != want:
                keep = False
        if not keep:
            continue
        changed = recipe_changes(values, extra)
        values |= extra
        name = values.get("dataset")
        names = name if isinstance(name, list) else [name]
        root = values.get("data_root", "data")
        subst = [profile.standins[n] if n in profile.standins and not dataset_available(n, root)
                 and dataset_available(profile.standins[n], root) else n for n in names]
        if subst != names:
            notes.append(f"{paper}/{stem}: {', '.join(names)} not found in {root}; stand-in: "
                         f"{', '.join(f'{s} = {label_dataset(s)}' for s in subst)} (the rows and the report say so)")
            values["dataset"] = subst if isinstance(name, list) else subst[0]
        values["seed"] = seed_list(seeds, profile.seeds)
        out.append((stem, values, changed))
    if not out:
        notes.append(f"{paper}: no preset of profile {profile.name!r}" + (f" matching {presets!r}" if presets else ""))
    return out
