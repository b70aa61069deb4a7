"""Typed parameters, one source: the dataclass, the generated parameters cell, papermill's parser, the runner's
checks before any kernel starts, and the friction a new user hit (each case has a test here)."""
from __future__ import annotations

import ast
import dataclasses
import logging
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import papermill
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import itertools

from mintkit.batch import cli, notebooks
from mintkit.batch.plans import PRESETS, load_preset
from mintkit.core.params import ParameterError, Params, describe, fields_of, param, parameters_source, split_list
from mintkit.reference import PAPERS

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
VALIDATION = "Params.from_notebook(globals())"
TYPED = (*PAPERS, "audit")  # every notebook whose parameters cell is generated


def notebook_cells(paper: str) -> list:
    return nbformat.read(str(NOTEBOOKS / f"{paper}.ipynb"), as_version=4).cells


def validation_index(cells: list) -> int:
    return next(i for i, c in enumerate(cells) if c.cell_type == "code" and VALIDATION in c.source)


# ------------------------------------------------------------------------------------ the base
@dataclasses.dataclass(frozen=True)
class Toy(Params):
    PAPER = "toy"
    arch: str = param("smallcnn", "audited architecture", choices=("smallcnn", "vit"))
    lr: float = param(1e-3, "learning rate")

    def check(self) -> None:
        if self.lr <= 0:
            raise ParameterError(f"lr={self.lr} must be > 0")


@dataclasses.dataclass(frozen=True)
class Bounded(Params):
    PAPER = "bounded"
    frac: float = param(0.5, "a fraction", bounds="(0, 1]")
    epochs: int = param(1, "epochs", bounds="[1, inf)")
    sizes: str = param("8,64", "batch sizes", items=int, bounds="[1, inf)", nonempty=True)
    names: str = param("a", "names", items=str, choices=("a", "b"))


def test_one_list_parser_and_bounds_declared_on_the_param():
    assert split_list(" a, b,,c ") == ("a", "b", "c") and split_list("8, 64", int) == (8, 64) and split_list("") == ()
    assert Bounded(frac=1.0, sizes="1, 256", names="").frac == 1.0
    for kw, msg in [({"frac": 0.0}, r"frac=0.0: must be in \(0, 1\]"), ({"epochs": 0}, "epochs=0: must be >= 1"),
                    ({"sizes": "8,0"}, "each value must be >= 1"), ({"sizes": ""}, "give at least one value"),
                    ({"sizes": "8,x"}, "a comma list of whole numbers"),
                    ({"names": "a,c"}, r"unknown \['c'\]; valid: a, b")]:
        with pytest.raises(ParameterError, match=msg):
            Bounded(**kw)
    assert "(> 0)" not in describe(Bounded) and "(in (0, 1])" in describe(Bounded)
    assert "(each >= 1)" in describe(Bounded)
    with pytest.raises(TypeError, match="write an interval"):
        param(0, "x", bounds="0..1")


def test_params_coerce_check_and_replace():
    p = Toy.from_values({"lr": 1, "seed": 3})
    assert p.lr == 1.0 and isinstance(p.lr, float) and p.seed == 3
    with pytest.raises(ParameterError, match="valid: smallcnn, vit"):
        Toy.from_values({"arch": "resnet"})
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['lrr'\]; valid: .*lr"):
        Toy.from_values({"lrr": 1})
    with pytest.raises(ParameterError, match="must be float"):
        Toy.from_values({"lr": "fast"})
    with pytest.raises(ParameterError, match="must be > 0"):
        p.replace(lr=-1.0)
    with pytest.raises(ParameterError, match="unknown dataset 'mnsit'; valid: digits, mnist"):
        Toy.from_values({"dataset": "mnsit"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lr = 2.0  # type: ignore[misc]


def test_from_notebook_survives_reruns_and_catches_typos():
    ns = {"lr": 0.1, "arch": "vit", "In": [], "_": None, "np": sys}  # a module and IPython names are fine
    first = Toy.from_notebook(ns)
    # after the whole notebook ran: P, run folders, figures, frames are not literals -> a rerun works
    ns |= {"P": first, "run": object(), "results": {"a": 1}, "fig": object()}
    assert Toy.from_notebook(ns) == first
    ns["arhc"] = "resnet50"  # an edited parameters cell with a typo
    with pytest.raises(ParameterError, match=r"\['arhc'\]"):
        Toy.from_notebook(ns)


def test_help_text_that_papermill_cannot_parse_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Bad(Params):
        x: int = param(1, "x = 1 by default")
    with pytest.raises(TypeError, match="papermill"):
        fields_of(Bad)


# ------------------------------------------------------------------------------------ the notebooks
@pytest.mark.parametrize("paper", TYPED)
def test_parameters_cell_is_generated_from_params(paper):
    cls = notebooks.params_class(paper)
    assert cls is not None, f"mintkit.papers.{paper} has no Params dataclass"
    assert cls.PAPER == paper
    assert notebooks.parameters_cell_source(NOTEBOOKS / f"{paper}.ipynb") == parameters_source(cls), (
        f"{paper}.ipynb's parameters cell differs from its Params: run `python -m mintkit params --write`")


def test_params_check_command_agrees():
    assert cli.main(["params", "--check"]) == 0


@pytest.mark.parametrize("paper", TYPED)
def test_papermill_parser_sees_every_parameter(paper, caplog):
    caplog.set_level(logging.WARNING, logger="papermill")
    found = papermill.inspect_notebook(str(NOTEBOOKS / f"{paper}.ipynb"))
    specs = fields_of(notebooks.params_class(paper))
    assert list(found) == list(specs)
    for name, spec in specs.items():
        assert found[name]["inferred_type_name"] == spec.type.__name__
        assert ast.literal_eval(found[name]["default"]) == spec.default
        assert found[name]["help"] == spec.help
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]


@pytest.mark.parametrize("paper", TYPED)
def test_notebook_never_reassigns_a_parameter(paper):
    """A later top-level assignment to a parameter name (a for-loop target too) would change it on a rerun."""
    cells = notebook_cells(paper)
    names = set(fields_of(notebooks.params_class(paper)))
    bad = []
    for cell in cells[validation_index(cells) + 1:]:
        if cell.cell_type != "code":
            continue
        tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for node in tree.body:
            targets = []
            if isinstance(node, (ast.Assign,)):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
                targets = [node.target]
            elif isinstance(node, ast.With):
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
            for t in targets:
                bad += [n.id for n in ast.walk(t) if isinstance(n, ast.Name) and n.id in names]
    assert not bad, f"{paper}.ipynb reassigns parameter(s) {bad} after the validation cell"


@pytest.mark.parametrize("paper", TYPED)
def test_notebooks_are_stored_without_outputs(paper):
    for cell in notebook_cells(paper):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{paper}.ipynb holds outputs"


def test_validation_cell_runs_twice_in_one_kernel():
    """JupyterLab: run the parameters and validation cells, edit, run the validation cell again."""
    cells = notebook_cells("amint")
    i = validation_index(cells)
    nb = nbformat.v4.new_notebook(cells=[
        *cells[:i + 1],  # up to the parameters and validation cells
        nbformat.v4.new_code_cell("run = object(); fig = None; trained = {}"),  # what later cells leave behind
        nbformat.v4.new_code_cell(cells[i].source),  # the validation cell again
        nbformat.v4.new_code_cell("seed = 5"),  # an edited parameter
        nbformat.v4.new_code_cell(cells[i].source + "\nassert P.seed == 5"),
        nbformat.v4.new_code_cell("sede = 5"),  # a typo
        nbformat.v4.new_code_cell(cells[i].source),
    ])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    with pytest.raises(CellExecutionError, match=r"unknown parameter\(s\) \['sede'\]"):
        client.execute()
    done = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert len(done) == len([c for c in nb.cells if c.cell_type == "code"])  # only the last cell failed


def test_parameters_cells_run_again_after_the_whole_notebook(tmp_path):
    """Jupyter: step through to the end (later cells leave scalars such as a loop's `name`), then run the
    parameters and validation cells again from the top: only the parameters cells' names are checked."""
    cells = notebook_cells("mint")
    i = validation_index(cells)
    again = [nbformat.v4.new_code_cell(c.source) for c in cells[:i + 1] if c.cell_type == "code"]
    nb = nbformat.v4.new_notebook(cells=[
        *cells[:i + 1],
        nbformat.v4.new_code_cell("for name in ('members', 'external'):\n    pass\nthreshold = 0.5\nn_rows = 3\n"
                                  "print(name)"),  # what the later cells of mint.ipynb leave behind
        *again,  # the parameters cell and the validation cell again, in the same kernel
        nbformat.v4.new_code_cell("assert P.seed == 0 and name == 'external'"),
        nbformat.v4.new_code_cell("seed: int = 3\nseeed: int = 4"),  # an edited parameters cell with a typo
        nbformat.v4.new_code_cell(cells[i].source),
    ])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    with pytest.raises(CellExecutionError, match=r"unknown parameter\(s\) \['seeed'\].*Correct the name"):
        client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code) and not any(
        o.get("output_type") == "error" for c in code[:-1] for o in c.outputs)  # only the typo's check failed


def test_exec_engine_keeps_the_input_history_for_the_check(tmp_path):
    """The exec engine runs a whole notebook, then its first cells again, in one namespace (as a kernel would)."""
    from mintkit.batch import engines
    check = ("import dataclasses\nimport mintkit.core.params as mp\n\n@dataclasses.dataclass(frozen=True)\n"
             "class Notebook(mp.Params):\n    lr: float = mp.param(0.1, 'learning rate')\n\n"
             "P = Notebook.from_notebook(globals())")
    params = nbformat.v4.new_code_cell("seed = 0\nlr = 0.1")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(check + "\nassert P.seed == 7, P"),
                                         nbformat.v4.new_code_cell("for name in 'ab':\n    pass\nlimit = 2.5"),
                                         nbformat.v4.new_code_cell("seed = 0\nlr = 0.1"),
                                         nbformat.v4.new_code_cell(check + "\nassert P.seed == 0, P")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    engines.run("exec", str(path), tmp_path, {"seed": 7}, progress=False)  # raises when a cell fails
    assert "##### code cell 5/5" in (tmp_path / "executed.log").read_text()
    nb.cells[3].source = "seed = 0\nlrr = 0.2"  # a typo in a parameters cell run again
    nbformat.write(nb, path)
    with pytest.raises(engines.ExecError, match=r"unknown parameter\(s\) \['lrr'\]"):
        engines.run("exec", str(path), tmp_path, {"seed": 7}, progress=False)


# ------------------------------------------------------------------------------------ bad input, before kernels
@pytest.mark.parametrize("paper,name,value", [("amint", "arch", "resnet18"), ("amint", "setup", "inner"),
                                              ("gmint", "dataset", "mnsit"), ("mint", "arch", "resnet18"),
                                              ("factors", "dataset", "cifar-10")])
def test_unknown_names_fail_before_any_kernel(paper, name, value, tmp_path, capsys):
    t0 = time.perf_counter()
    assert cli.main(["run", paper, "-p", name, value, "--out", str(tmp_path / "r")]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert f"{value!r}" in err and "valid:" in err
    assert not (tmp_path / "r").exists()


def test_preset_with_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("seed: 1\narch: [mobilenet, resnet50\nlr: 0.1\n")
    assert cli.main(["run", "amint", "-f", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "YAML syntax error" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("paper", ["mint", "gmint"])
def test_checkpoint_that_is_not_one_is_a_clear_error(paper, tmp_path, capsys):
    junk = tmp_path / "model.pt"
    junk.write_text("not a checkpoint\n")
    assert cli.main(["run", paper, "-p", "checkpoint", str(junk), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and str(junk) in err and "not a PyTorch checkpoint" in err
    assert not (tmp_path / "r").exists()


def test_unknown_notebook_lists_the_valid_ones(capsys):
    assert cli.main(["run", "notebooks/no_such.ipynb"]) == 2
    err = capsys.readouterr().err
    assert "no_such.ipynb" in err and all(p in err for p in PAPERS)


# ------------------------------------------------------------------------------------ installed, not a checkout
def test_reproduce_plans_from_an_installed_wheel(tmp_path):
    """The notebooks and presets ship in the wheel: planning works with no checkout around."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "whl"), str(REPO)], check=True, capture_output=True)
    wheel = next((tmp_path / "whl").glob("mintkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"mintkit/notebooks/{p}.ipynb" for p in PAPERS} <= set(names)
    assert "mintkit/notebooks/params/amint/table1.yaml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    where = subprocess.run([sys.executable, "-c", "from mintkit.batch import notebooks; print(notebooks.NOTEBOOKS)"],
                           cwd=elsewhere, capture_output=True, text=True, env=env)
    assert where.stdout.strip() == str(site / "mintkit" / "notebooks"), where.stderr
    out = subprocess.run([sys.executable, "-m", "mintkit", "reproduce", "--profile", "paper", "--paper", "amint",
                          "--dry-run", "--verbose", "--out", str(tmp_path / "runs")], cwd=elsewhere,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("todo") >= 72  # aMINT Table 1: 4 datasets x 6 architectures x 3 setups


# what each paper's presets must also say, beyond being valid Params (f: the preset file, P: one grid point)
PRESET_CHECKS = {
    "mint": lambda f, P: P.condition_label(100000).startswith("100K") or "{size}" not in P.condition,
    "amint": lambda f, P: P.dataset != "mnist" or P.image_size == 0,  # MNIST at its native 28x28 (E1's 7x7 maps)
    "gmint": lambda f, P: True,
    # the face presets: IR-50, one factor a file; mnist.yaml: the local cells, smallcnn (margin heads), every factor
    "factors": lambda f, P: (P.arch == "iresnet50" and set(P.scenario_list) <= {f.stem.split("_")[1]}) or (
        f.stem == "mnist" and P.dataset == "mnist" and P.arch == "smallcnn" and len(P.scenario_list) == 4),
}


@pytest.mark.parametrize("paper", PAPERS)
def test_every_point_of_every_preset_validates(paper):
    """Every point of every preset's grids is a valid Params of its paper, as the runner will build it."""
    files = sorted(f for f in (PRESETS / paper).glob("*.yaml") if not f.name.startswith("_"))  # _*.yaml: bases
    assert files
    for f in files:
        values = load_preset(f)
        grids = {k: v for k, v in values.items() if isinstance(v, list)}
        for point in itertools.product(*grids.values()):
            P = notebooks.params_class(paper).from_values(values | dict(zip(grids, point)), where=f.name)
            assert PRESET_CHECKS[paper](f, P), f"{f.name} at {dict(zip(grids, point))}"


# ------------------------------------------------------------------------------------ one resolution of paths
def test_relative_parameter_paths_resolve_once_for_cli_and_jupyter(tmp_path, monkeypatch):
    """Jupyter runs in notebooks/, the CLI wherever the shell is: `data_root: data` must be one folder."""
    from mintkit.core import paths
    from mintkit.core.records import Run
    monkeypatch.delenv("MINTKIT_HOME", raising=False)
    for cwd in (REPO / "notebooks", tmp_path):
        monkeypatch.chdir(cwd)
        assert paths.resolve("data") == REPO / "data" and paths.resolve("/abs/x") == Path("/abs/x")
    monkeypatch.setenv("MINTKIT_HOME", str(tmp_path / "home"))
    assert paths.resolve("data/MNIST") == tmp_path / "home" / "data" / "MNIST"
    assert Run("runs/scratch", "mint", {}).dir == tmp_path / "home" / "runs" / "scratch"


def test_a_data_root_that_does_not_exist_is_not_created(tmp_path):
    from mintkit.core.data import DataUnavailable, load_pool
    typo = tmp_path / "dtaa"
    for name in ("mnist", "cifar10", "tinyimagenet"):
        with pytest.raises(DataUnavailable, match=rf"data_root {typo} does not exist.*Create the folder"):
            load_pool(name, typo, download=False)
    assert not typo.exists()
