"""mintkit.core.plots: every function draws, tables join correctly, saves are byte-stable."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mintkit.core import plots as P  # noqa: E402


@pytest.fixture
def scores_labels():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(1500, int), np.zeros(1500, int)]
    s = 1 / (1 + np.exp(-rng.normal(1.0 * y, 1.0)))
    return s, y


@pytest.fixture(autouse=True)
def _close_all():
    yield
    plt.close("all")


@pytest.fixture
def styled():
    with plt.style.context(str(P.style_path())):
        yield


def test_style_file_and_use_style():
    path = P.style_path()
    assert path.is_file() and path.name == "paper.mplstyle"
    with plt.rc_context():
        P.use_style()
        rc = plt.rcParams
        assert rc["pdf.fonttype"] == 42 and rc["ps.fonttype"] == 42
        assert rc["savefig.dpi"] == 150 and rc["savefig.bbox"] == "tight"
        assert rc["axes.grid"]
        assert rc["axes.prop_cycle"].by_key()["color"][0].lower() == "#0072b2"


def test_style_by_dotted_name():
    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    if (major, minor) < (3, 7):
        pytest.skip("dotted style names need matplotlib >= 3.7")
    with plt.style.context(P.STYLE_NAME):
        assert plt.rcParams["pdf.fonttype"] == 42


def test_roc_loglog(scores_labels, styled):
    s, y = scores_labels
    fig, ax = plt.subplots()
    out = P.roc_loglog(ax, s, y, label="MINT")
    assert out is ax
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlim()[0] == pytest.approx(1 / 1500)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("MINT (AUC=")
    notes = [t.get_text() for t in ax.texts]
    assert any(n.startswith("TPR@0.1%=") for n in notes)
    assert any(n.startswith("TPR@1%=") for n in notes)
    fig.canvas.draw()


def test_roc_loglog_small_set_notes_zero_fp():
    fig, ax = plt.subplots()
    P.roc_loglog(ax, [0.9, 0.8, 0.3, 0.6], [1, 1, 0, 0])
    assert any("(0 FP)" in t.get_text() for t in ax.texts)
    fig.canvas.draw()


def test_roc_linear_and_histogram(scores_labels, styled):
    s, y = scores_labels
    fig, (a, b) = plt.subplots(1, 2)
    P.roc_linear(a, s, y, label="x")
    assert a.get_xscale() == "linear" and "AUC=" in a.get_legend().get_texts()[0].get_text()
    P.score_histogram(b, s, y, bins=20)
    outlines = [c for c in b.collections if len(c.get_paths())] + list(b.lines) + list(b.patches)
    assert len(outlines) == 2  # one step outline per class
    for o in outlines:  # each class normalised on its own: area 1 on the shared bins
        v = (o.get_paths()[0] if hasattr(o, "get_paths") else o.get_path()).vertices
        xs, ys = v[:, 0], v[:, 1]
        assert np.trapezoid(ys, xs) == pytest.approx(1.0, rel=0.02)
    texts = [t.get_text() for t in b.get_legend().get_texts()]
    assert texts == ["members (n=1500)", "non-members (n=1500)"]
    fig.canvas.draw()


def test_plots_reject_bad_input():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError):
        P.roc_loglog(ax, [0.1, 0.2], [1, 1])


# --------------------------------------------------------------------------- tables
@pytest.fixture
def tidy():
    rows = []
    for model, base in (("MobileNet", 0.8), ("ResNet50", 0.85)):
        for setup in ("Entry", "Middle"):
            for seed in range(3):
                rows.append(dict(dataset="MNIST", model=model, setup=setup, metric="accuracy",
                                 seed=seed, value=base + 0.01 * seed + (setup == "Middle") * 0.05))
    return pd.DataFrame(rows)


def test_results_table(tidy):
    from mintkit.core.metrics import summarize_seeds

    with pytest.raises(ValueError, match="duplicate"):
        P.results_table(tidy, "model", "setup")
    cells = summarize_seeds(tidy, ["model", "setup"])
    t = P.results_table(cells, index="model", columns="setup", value="mean", sd="sd")
    assert list(t.index) == ["MobileNet", "ResNet50"] and list(t.columns) == ["Entry", "Middle"]
    assert t.loc["MobileNet", "Entry"] == "0.81 ± 0.01"
    num = P.results_table(cells, index="model", columns="setup", value="mean", fmt=None)
    assert num.loc["ResNet50", "Middle"] == pytest.approx(0.91)
    # first-appearance order, missing cells shown as na_rep
    part = cells[~((cells.model == "ResNet50") & (cells.setup == "Entry"))].iloc[::-1]
    t2 = P.results_table(part, "model", "setup", value="mean")
    assert list(t2.index) == ["ResNet50", "MobileNet"]
    assert t2.loc["ResNet50", "Entry"] == "-"


def test_published_vs_reproduced(tidy):
    keys = ["dataset", "model", "setup", "metric"]
    published = pd.DataFrame([
        dict(dataset="MNIST", model="MobileNet", setup="Entry", metric="accuracy", value=0.86),
        dict(dataset="MNIST", model="Xception", setup="Entry", metric="accuracy", value=0.9),
    ])
    out = P.published_vs_reproduced(tidy, published, keys)
    assert list(out.columns) == [*keys, "published", "reproduced", "sd", "n_seeds", "difference"]
    assert len(out) == 2
    row = out[out.model == "MobileNet"].iloc[0]
    assert row.published == 0.86 and row.reproduced == pytest.approx(0.81)
    assert row.n_seeds == 3 and row.difference == pytest.approx(-0.05)
    miss = out[out.model == "Xception"].iloc[0]
    assert np.isnan(miss.reproduced) and np.isnan(miss.difference) and miss.n_seeds == 0
    assert miss.published == 0.9  # never copied into "reproduced"
    outer = P.published_vs_reproduced(tidy, published, keys, how="outer")
    assert len(outer) == 5


def test_published_vs_reproduced_empty_keys_match():
    published = pd.DataFrame({"model": ["a"], "feature": [np.nan], "value": [0.5]})
    reproduced = pd.DataFrame({"model": ["a", "a"], "feature": ["", ""], "seed": [0, 1],
                               "value": [0.4, 0.6]})
    out = P.published_vs_reproduced(reproduced, published, ["model", "feature"])
    assert out.reproduced.iloc[0] == pytest.approx(0.5) and out.n_seeds.iloc[0] == 2


def test_plot_table(tidy):
    from mintkit.core.metrics import summarize_seeds

    t = P.results_table(summarize_seeds(tidy, ["model", "setup"]), "model", "setup", value="mean")
    fig, ax = plt.subplots()
    table = P.plot_table(t, ax)
    assert table.get_celld()[(0, 0)].get_text().get_text() == "Entry"
    fig.canvas.draw()


# --------------------------------------------------------------------------- saving
def _figure(s, y):
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.8, 2.6))
    P.roc_loglog(a, s, y, label="MINT")
    P.score_histogram(b, s, y)
    return fig


def test_save_figure_writes_both_and_is_byte_stable(tmp_path, scores_labels, styled):
    s, y = scores_labels
    fig = _figure(s, y)
    first = P.save_figure(fig, tmp_path / "a" / "b", "roc")
    assert [p.name for p in first] == ["roc.pdf", "roc.png"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in first)
    blobs = [p.read_bytes() for p in first]
    assert blobs[0].startswith(b"%PDF") and blobs[1].startswith(b"\x89PNG")
    assert b"CreationDate" not in blobs[0]
    assert plt.fignum_exists(fig.number)  # not closed
    # same figure saved again, and a freshly built identical figure: same bytes
    again = P.save_figure(fig, tmp_path / "a" / "b", "roc")
    assert [p.read_bytes() for p in again] == blobs
    fig2 = _figure(s, y)
    other = P.save_figure(fig2, tmp_path / "c", "roc")
    assert [p.read_bytes() for p in other] == blobs
