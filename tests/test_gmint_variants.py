"""gMINT protocol variants: each changes what it claims to and nothing else; the definition is unchanged.

Float64 models and data (as tests/test_gmint.py), so the sequential reference and the batched path agree to
float32 rounding of the stored features; a variant "differs" when it is far outside that tolerance.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import mintkit.papers.gmint as g
from mintkit.batch import report
from mintkit.batch.collect import collect
from mintkit.core.data import synthetic_pool
from mintkit.core.params import ParameterError
from mintkit.core.records import DEFINITION, Run, read_results
from mintkit.methods.modifier_variants import Protocol, processing_order, protocol_modifiers, sequential_modifiers
from mintkit.methods.modifiers import FILTER_REDUCTIONS, Optimiser, apply_rule, key, weight_modifiers

CPU = torch.device("cpu")
LAYERS = ["conv", "fc1", "fc2"]
OPT = Optimiser(lr=1e-2)


class BNNet(nn.Module):
    """Conv - BatchNorm - ReLU - flatten - Linear - ReLU - Linear."""

    def __init__(self, bn: bool = True, c: int = 1, k: int = 4, size: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5) if bn else nn.Identity()
        self.fc1 = nn.Linear(5 * size * size, 12)
        self.fc2 = nn.Linear(12, k)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.relu(self.bn(self.conv(x))).flatten(1))))


@pytest.fixture(scope="module")
def pool():
    return synthetic_pool(n=48, num_classes=4, channels=1, size=8, seed=5)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = BNNet()
    with torch.no_grad():  # running statistics unlike a single sample's: train-mode BatchNorm must differ
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m.double().eval()


def _rows(mods, idx, rule="adam", red="mean", layer="fc2"):
    return mods.get([layer], rule, red, idx)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * (float(b.abs().max()) or 1.0))


def _differs(a, b):
    return float((a - b).abs().max()) > 1e-3 * float(b.abs().max())


def test_protocol_labels_and_bad_values():
    assert Protocol().label == DEFINITION and Protocol().is_definition
    assert Protocol(order="shuffled").label == DEFINITION  # the order is irrelevant when nothing is carried
    assert Protocol("carried").label == "optim_state=carried,order=members_first"
    assert Protocol("carried", order="shuffled").label == "optim_state=carried,order=shuffled"
    assert Protocol(weights="carried").label == "weights=carried,order=members_first"
    assert Protocol(bn_mode="train").label == "bn_mode=train"
    with pytest.raises(ValueError, match="valid: restored, carried"):
        Protocol("kept")
    P = g.Params.from_values({})
    assert (P.optim_state, P.weights, P.order, P.bn_mode, P.variant) == ("restored", "restored", "members_first",
                                                                         "eval", DEFINITION)
    assert P.replace(optim_state="carried").variant == "optim_state=carried,order=members_first"
    with pytest.raises(ParameterError, match="valid"):
        g.Params.from_values({"order": "random"})


def test_processing_order():
    d, e = np.arange(5), np.arange(10, 16)
    first = processing_order(d, e, "members_first", 0)
    assert first.tolist() == [*range(5), *range(10, 16)]
    s = processing_order(d, e, "shuffled", 0)
    assert sorted(s.tolist()) == first.tolist() and s.tolist() != first.tolist()
    assert (s == processing_order(d, e, "shuffled", 0)).all() and not (s == processing_order(d, e, "shuffled", 1)).all()


def test_carried_state_equals_restored_on_the_first_sample_then_differs(pool, model):
    order = np.arange(0, 30, 2)
    restored = sequential_modifiers(model, pool, order, LAYERS, CPU, Protocol(), rules=("adam", "sgd"), opt=OPT)
    carried = sequential_modifiers(model, pool, order, LAYERS, CPU, Protocol("carried"), rules=("adam", "sgd"), opt=OPT)
    for layer in LAYERS:
        a, b = _rows(carried, order, layer=layer), _rows(restored, order, layer=layer)
        assert torch.equal(a[0], b[0])  # the first step starts from the same (fresh) state
        assert all(_differs(a[i], b[i]) for i in range(1, len(order))), layer
        # plain SGD has no state to carry
        assert torch.equal(_rows(carried, order, "sgd", layer=layer), _rows(restored, order, "sgd", layer=layer))
    # the second sample's step is Adam continued from the first sample's moments (the maths of modifiers.py)
    w = model.fc2.weight.detach()
    grads = []
    for i in order[:2]:
        x, y = pool.batch(torch.tensor([int(i)]), dtype=torch.float64)
        grads.append(torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.fc2.weight)[0])
    b1, b2 = OPT.betas
    st = {"exp_avg": (1 - b1) * grads[0], "exp_avg_sq": (1 - b2) * grads[0] ** 2, "step": 1}
    want = apply_rule(grads[1], w, "adam-state", OPT, st).flatten(1).mean(1).float()
    _close(carried.features[key("fc2", "adam", "mean")][1], want)


def test_carried_weights_train_online_and_leave_the_audited_model_alone(pool, model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    order = np.arange(12)
    restored = sequential_modifiers(model, pool, order, LAYERS, CPU, Protocol(), rules=("adam", "grad"), opt=OPT)
    online = sequential_modifiers(model, pool, order, LAYERS, CPU, Protocol(weights="carried"), rules=("adam", "grad"),
                                  opt=OPT)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    for rule in ("adam", "grad"):
        a, b = _rows(online, order, rule), _rows(restored, order, rule)
        assert torch.equal(a[0], b[0]) and all(_differs(a[i], b[i]) for i in range(1, len(order))), rule


def test_shuffled_order_with_everything_restored_equals_the_definition(pool, model):
    d, e = np.arange(0, 20), np.arange(20, 40)
    state = {n: {"exp_avg": torch.full_like(model.get_submodule(n).weight, 1e-3),
                 "exp_avg_sq": torch.full_like(model.get_submodule(n).weight, 1e-6), "step": 9} for n in LAYERS}
    rules = ("adam", "sgd", "adam-state", "grad")
    ref = weight_modifiers(model, pool, np.r_[d, e], LAYERS, CPU, rules=rules, reductions=FILTER_REDUCTIONS, opt=OPT,
                           state=state)
    shuffled = processing_order(d, e, "shuffled", 3)
    seq = sequential_modifiers(model, pool, shuffled, LAYERS, CPU, Protocol(order="shuffled"), rules=rules,
                               reductions=FILTER_REDUCTIONS, opt=OPT, state=state)
    assert (seq.indices == shuffled).all()
    for k in ref.features:
        layer, rule, red = k.split("|")
        _close(_rows(seq, ref.indices, rule, red, layer), ref.features[k])


def test_bn_train_changes_the_result_only_on_a_batchnorm_model(pool, model):
    order = np.arange(10)
    ev = sequential_modifiers(model, pool, order, LAYERS, CPU, Protocol(), opt=OPT)
    tr = sequential_modifiers(model, pool, order, LAYERS, CPU, Protocol(bn_mode="train"), opt=OPT)
    assert all(_differs(_rows(tr, order)[i], _rows(ev, order)[i]) for i in range(len(order)))
    again = sequential_modifiers(model, pool, order[::-1], LAYERS, CPU, Protocol(bn_mode="train"), opt=OPT)
    _close(_rows(again, order), _rows(tr, order))  # running statistics restored: no dependence on the order
    with pytest.raises(ValueError, match="no BatchNorm"):
        sequential_modifiers(BNNet(bn=False).double(), pool, order, LAYERS, CPU, Protocol(bn_mode="train"))


def test_default_protocol_is_the_batched_path_bit_for_bit(pool, model):
    d, e = np.arange(0, 16), np.arange(30, 46)
    kw = dict(rules=("adam", "sgd", "grad"), reductions=FILTER_REDUCTIONS, opt=OPT, chunk_size=8)
    ref = weight_modifiers(model, pool, np.r_[d, e], LAYERS, CPU, **kw)
    for p in (Protocol(), Protocol(order="shuffled")):
        got = protocol_modifiers(model, pool, d, e, LAYERS, CPU, p, seed=0, **kw)
        assert got.meta["variant"] == DEFINITION and (got.indices == ref.indices).all()
        assert got.features.keys() == ref.features.keys()
        assert all(torch.equal(got.features[k], ref.features[k]) for k in ref.features)
    seq = protocol_modifiers(model, pool, d, e, LAYERS, CPU, Protocol("carried"), seed=0, **kw)
    assert seq.meta["variant"] == "optim_state=carried,order=members_first" and (seq.indices == np.r_[d, e]).all()


def test_stage_rows_name_their_variant(tmp_path, digits_pool):
    """Through the notebook's stages on digits: the default is today's batched call and its rows say 'definition';
    a variant's rows name it."""
    base = {"n_members": 60, "n_eval": 12, "audited_epochs": 1, "fit_check": False, "mint_epochs": 1, "setup": "output",
            "reduction": "mean", "data_fraction": 1.0, "compare_rules": False, "n_boot": 0, "n_reference": 0,
            "cache_dir": "",
            "threads": 1}
    for over, label in (({}, DEFINITION), ({"optim_state": "carried"}, "optim_state=carried,order=members_first")):
        P = g.Params.from_values(base | over | {"out_dir": str(tmp_path / label)})
        ctx = g.setup(P)
        split = g.make_split(ctx, P)
        model, info = g.audited(ctx, split, P, progress=False)
        mods = g.modifiers(ctx, split, model, info, P, progress=False)
        if not over:
            idx = np.concatenate([split["members"], split["external"], split["eval_nonmembers"]])
            ref = weight_modifiers(model, ctx.pool, idx, list(P.layers.values()), CPU, rules=P.rules,
                                   reductions=FILTER_REDUCTIONS, opt=Optimiser(lr=P.lr), chunk_size=P.chunk_size)
            assert all(torch.equal(mods.features[k], ref.features[k]) for k in ref.features)
        g.grid(ctx, split, mods, info, P)
        rows = read_results([ctx.run.dir])
        assert len(rows) and set(rows["variant"]) == {label}


def _fixture_run(folder, seed, variant, acc):
    run = Run(folder, "gmint", {"seed": seed}, seed=seed, protocol="heldout", variant=variant)
    run.add_metrics({"accuracy": acc, "auc": acc}, {"audited_accuracy": 0.99}, table="Table 1",
                    dataset="MNIST", model="MobileNet", setup="Output", condition="MEAN;D100")
    run.finish()


def test_report_never_averages_variants_into_one_cell(tmp_path):
    runs = tmp_path / "runs" / "adhoc" / "gmint"
    carried = "optim_state=carried,order=members_first"
    for seed, (a, b) in enumerate([(0.52, 0.99), (0.56, 0.97)]):
        _fixture_run(runs / f"def-{seed}", seed, DEFINITION, a)
        _fixture_run(runs / f"car-{seed}", seed, carried, b)
    # a results.csv from before the variant column reads as the definition
    old = runs / "old"
    old.mkdir()
    (old / "results.csv").write_text("paper,table,dataset,model,setup,condition,feature,metric,value,protocol,seed,"
                                     "run_id\ngmint,Table 1,MNIST,MobileNet,Entry,MEAN;D100,,accuracy,0.5,"
                                     "heldout,0,old\n")
    (old / "status.json").write_text('{"status": "complete", "end": "x"}')
    rows, _ = collect(tmp_path / "runs")
    assert rows.attrs["duplicates"] == 0  # the same cell and seed under two variants is not a rerun
    assert set(rows["variant"]) == {DEFINITION, carried}
    report.build(tmp_path / "runs", tmp_path / "fig", papers=["gmint"], include_adhoc=True)
    t1 = pd.read_csv(tmp_path / "fig" / "gmint" / "table1.csv", keep_default_na=False)
    cell = t1[(t1.setup == "Output") & (t1.condition == "MEAN;D100") & (t1.metric == "accuracy")
              & (t1.model == "MobileNet") & (t1.dataset == "MNIST")]
    got = {r.variant: (round(float(r.reproduced), 3), int(float(r.n_seeds))) for r in cell.itertuples()}
    assert got == {DEFINITION: (0.54, 2), carried: (0.98, 2)}
    md = (tmp_path / "fig" / "gmint" / "table1.md").read_text()
    assert f"variant `{carried}`" in md
    assert (tmp_path / "fig" / "gmint" / "table1-heldout-optim-state-carried-order-members-first.png").exists()
