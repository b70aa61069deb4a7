"""Figures that answer inline (issue "first hour", item 6): the MINT ROC's colours never repeat and keep their
meaning across panels, its legend sits outside the axes at a readable size and survives the save; the sweep's
log axis labels do not collide; a table figure's footer names the seeds its pooled means are over; a null-control,
positive-control or variant run's figures say so above them (issue "verdicts", item 7). Fixture data only."""
from __future__ import annotations

import types
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mintkit.batch import table_figure
from mintkit.core.plots import colours, save_figure, use_style, view_banner
from mintkit.papers.mint.params import LAYERS, Params
from mintkit.papers.mint.report import plot_roc, plot_sweep
from mintkit.papers.mint.report import view as mint_view


def _curve(rng, label: str, shift: float, feature: str = "", n: int = 200):
    y = np.arange(n) % 2
    s = rng.random(n) + shift * y
    return types.SimpleNamespace(label=label, scores=s, labels=y, feature=feature,
                                 metrics={"auc": float(np.mean(s[y == 1][:, None] > s[y == 0][None, :]))})


@pytest.fixture()
def roc(tmp_path):
    """Nine curves in the left panel (four layers, Combination, the CNN, MIA*, two controls): one more than the
    style's 8-colour cycle, the case that drew two blues."""
    rng = np.random.default_rng(0)
    results = {("mlp", x): _curve(rng, f"Vanilla MINT;{x}", 0.1 * i) for i, x in enumerate(LAYERS)}
    results[("mlp", "combination")] = _curve(rng, "Vanilla MINT;Combination", 0.6)
    results[("mlp", "outcome")] = _curve(rng, "Vanilla MINT;Outcome", 0.2)
    results[("cnn", "stage1")] = _curve(rng, "CNN MINT;Conv #1", 0.5)
    control = {("mlp", x): _curve(rng, f"Vanilla MINT;{x}", 0.0, feature=x) for x in ("stage1", "combination")}
    loss = _curve(rng, "loss", 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fig = plot_roc(results, control, {"Loss threshold;Model Outcome": loss}, Params(), out_dir=tmp_path)
    yield fig, tmp_path
    plt.close(fig)


def _line_colours(ax) -> dict[str, str]:
    return {ln.get_label(): ln.get_color() for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_roc_colours_are_distinct_and_keep_their_meaning_across_panels(roc):
    fig, _ = roc
    left, right = (_line_colours(ax) for ax in fig.axes[:2])
    assert len(left) == 9 and len(set(left.values())) == 9  # no colour drawn twice
    shared = set(left) & set(right)
    assert len(shared) >= 3 and all(left[k] == right[k] for k in shared)
    every = left | right
    assert len(set(every.values())) == len(every)


def test_roc_legend_is_outside_the_axes_readable_and_saved_unclipped(roc):
    fig, out = roc
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 7
    fig.canvas.draw()
    box = legend.get_window_extent()
    axes_box = fig.axes[0].get_window_extent()
    assert box.y1 <= axes_box.y0  # below the panels, over no curve
    # saved with a tight box: the legend below the figure's own area is in the png, not cut off
    with Image.open(out / "mint_roc.png") as im:
        height_in = im.size[1] / 150
    assert height_in > fig.get_figheight()
    assert (out / "mint_roc.pdf").read_bytes()[:4] == b"%PDF"


def test_sweep_labels_the_sizes_run_without_collision(tmp_path):
    use_style()
    table = pd.DataFrame({"model": ["Vanilla MINT;Combination"] * 3 + ["CNN MINT;Conv #1"] * 3,
                          "n_train": [48, 144, 480] * 2, "accuracy@0.5": [0.6, 0.7, 0.8, 0.55, 0.65, 0.75],
                          "AUC": [0.6] * 6}).set_index(["model", "n_train"])
    fig = plot_sweep(table, out_dir=tmp_path)
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
              if t.get_text() and t.get_visible()]
    assert sorted(t.get_text() for t in labels) == ["144", "48", "480"]
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels overlap
    plt.close(fig)


def test_colours_give_up_to_twenty_distinct_colours():
    use_style()
    assert len(set(colours(map(str, range(12))).values())) == 12
    assert len(set(colours(map(str, range(20))).values())) == 20
    with pytest.raises(ValueError):
        colours(map(str, range(21)))


def test_table_footer_names_the_seeds_of_pooled_means():
    """This report's runs gave seeds 1, 2; the cells pool them with a kept seed 0: the footer says 0, 1, 2."""
    cell = dict(paper="amint", table="Table 1", dataset="MNIST", model="MobileNet", setup="Output",
                condition="Active", feature="")
    rep = pd.DataFrame([cell | {"metric": "accuracy", "value": v, "seed": s, "run_dir": f"/nowhere/{s}",
                                "profile": "mnist", "precision": "fp32"} for s, v in ((1, 0.5), (2, 0.51))])
    comp = pd.DataFrame([cell | {"metric": "accuracy", "n_seeds": 3, "seeds": "0,1,2", "data": "MNIST; reduced"}])
    footer = table_figure.provenance(rep, comp)
    assert "seeds 0, 1, 2;" in footer and "seeds 1, 2" not in footer
    mixed = pd.concat([comp, pd.DataFrame([cell | {"setup": "Entry", "metric": "accuracy", "n_seeds": 1,
                                                   "seeds": "0", "data": ""}])])
    assert "seeds 0, 1, 2 (1-3 per cell);" in table_figure.provenance(rep, mixed)


@pytest.mark.parametrize("variant, word", [("null=other-data", "NULL CONTROL"), ("control=leaky", "POSITIVE CONTROL"),
                                           ("optim_state=carried,order=members_first,null=other-data", "NULL CONTROL"),
                                           ("optim_state=carried,order=members_first", "PROTOCOL VARIANT")])
def test_null_control_and_variant_run_figures_say_so_in_their_title(tmp_path, variant, word):
    use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path, "f", variant=variant)
    save_figure(fig, tmp_path, "f", variant=variant)  # saved twice: one banner
    (banner,) = [" ".join(t.get_text().split()) for t in fig.texts]
    assert banner.startswith(f"{word} ({variant})")
    assert "Not a reproduction" in banner or "not the paper's definition" in banner
    assert "reproduced" not in banner
    plt.close(fig)


def test_definition_run_figures_carry_no_banner_and_mint_names_its_run_view(tmp_path):
    assert view_banner("definition") == view_banner("") == view_banner(None) == ""
    assert mint_view(Params()) == "definition"
    assert mint_view(Params(null_model="other-data")) == "null=other-data"
