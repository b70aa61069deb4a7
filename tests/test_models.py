"""Tests for the audited-model zoo (mintkit.models.zoo, mintkit.models.convnets, mintkit.models.iresnet)."""
import json
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from mintkit.models.hooks import forward_hooks
from mintkit.models.insightface import load_insightface_backbone
from mintkit.models.iresnet import AdaFaceHead, ArcFaceHead, CosFaceHead, FaceModel, SoftmaxHead
from mintkit.models.zoo import (AMINT_TAPS, ARCHS, DROPOUT_MODULES, GMINT_LAYERS, HEADS, TAP_NAMES, build_model,
                                get_module, gmint_layer, model_config, resolve_tap, tap_modules)


def capture(model: nn.Module, x: torch.Tensor, taps) -> dict:
    """{tap: output} of one forward of `model` on x, through the package's hook primitive."""
    out = {}
    with forward_hooks({t: resolve_tap(model, t) for t in taps}, out.__setitem__):
        model(x)
    return out


@pytest.fixture(autouse=True)
def _seed_one_thread():
    torch.manual_seed(0)
    yield


# ---------------------------------------------------------------------------- names and errors
def test_tables_cover_every_arch():
    assert set(AMINT_TAPS) == set(GMINT_LAYERS) == set(DROPOUT_MODULES) == set(ARCHS)
    for arch in ARCHS:
        assert set(AMINT_TAPS[arch]) == set(GMINT_LAYERS[arch]) == {"entry", "middle", "output"}
    assert HEADS == ("softmax", "arcface", "cosface", "adaface")


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError) as e:
        build_model("resnet18", 10, 1, 8)
    assert all(a in str(e.value) for a in ARCHS)
    with pytest.raises(ValueError) as e:
        build_model("iresnet18", 10, 1, 8, head="sphereface")
    assert all(h in str(e.value) for h in HEADS)
    with pytest.raises(ValueError, match="face archs"):
        build_model("smallcnn", 10, 1, 8, head="arcface")
    m = build_model("smallcnn", 10, 1, 8)
    with pytest.raises(ValueError) as e:
        resolve_tap(m, "layer9")
    assert all(t in str(e.value) for t in TAP_NAMES)
    with pytest.raises(ValueError, match="entry, middle, output"):
        gmint_layer(m, "late")
    with pytest.raises(ValueError, match="divisible"):
        build_model("vit", 10, 1, 10)


# ---------------------------------------------------------------------------- every arch
def _check_model(arch, ch, size, ncls=10, batch=2):
    m = build_model(arch, ncls, ch, size).eval()
    assert m.arch == arch and m.config["arch"] == arch
    x = torch.randn(batch, ch, size, size)
    taps = tap_modules(m)
    assert tuple(taps) == TAP_NAMES
    names = dict(m.named_modules())
    assert all(v in names for v in taps.values())
    extra = sorted({n for pair in AMINT_TAPS[arch].values() for n in pair})
    got, hooks = {}, []
    for n in extra:
        hooks.append(get_module(m, n).register_forward_hook(lambda mod, i, o, n=n: got.__setitem__(n, o)))
    with torch.no_grad():
        acts = capture(m, x, TAP_NAMES)
        y = m(x)
    for h in hooks:
        h.remove()
    assert y.shape == (batch, ncls) and torch.isfinite(y).all()
    for t in TAP_NAMES:
        assert acts[t].shape[0] == batch and torch.isfinite(acts[t]).all(), t
        assert resolve_tap(m, t) is get_module(m, taps[t])
    for setup in ("entry", "middle", "output"):
        assert all(get_module(m, n) is not None for n in AMINT_TAPS[arch][setup])
        assert taps[setup] == AMINT_TAPS[arch][setup][1]
        assert all(min(s for s in got[n].shape[1:]) >= 1 for n in AMINT_TAPS[arch][setup])
        layer = gmint_layer(m, setup)
        assert isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.requires_grad
    if arch.startswith("iresnet"):
        assert acts["outcome"].shape == (batch, 512)
    else:
        assert torch.equal(acts["outcome"], y)
    return m


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_digits_8x8(arch):
    m = _check_model(arch, 1, 8)
    cfg = model_config(m)
    json.dumps(cfg)
    with torch.device("meta"):  # shapes only, no init cost
        m2 = build_model(**cfg)
    assert {k: v.shape for k, v in m2.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "iresnet100"])
def test_arch_rgb_32x32(arch):
    _check_model(arch, 3, 32, ncls=7, batch=1)


@pytest.mark.parametrize("arch,size,side", [("smallcnn", 28, 4), ("resnet50", 64, 2), ("xception", 64, 8)])
def test_stage_sizes(arch, size, side):
    m = build_model(arch, 10, 3, size).eval()
    with torch.no_grad():
        assert capture(m, torch.randn(1, 3, size, size), ("stage4",))["stage4"].shape[-1] == side


def test_xception_entry_matches_paper_e2():
    # aMINT paper E2 (Xception, Tiny-ImageNet 64x64, entry): two 16x16x728 maps
    m = build_model("xception", 200, 3, 64).eval()
    with torch.no_grad():
        a = capture(m, torch.randn(1, 3, 64, 64), ("entry",))["entry"]
    assert a.shape == (1, 728, 16, 16)


def test_iresnet_112_layout():
    m = build_model("iresnet18", 5, 3, 112, head="arcface").eval()
    assert isinstance(m, FaceModel) and m.needs_labels
    assert m.backbone.fc.in_features == 512 * 7 * 7
    with torch.no_grad():
        x = torch.randn(1, 3, 112, 112)
        acts = capture(m, x, ("stage1", "stage2", "stage3", "stage4", "outcome"))
        emb = m.embed(x)
    assert [tuple(acts[f"stage{i}"].shape[1:]) for i in range(1, 5)] == [
        (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    assert torch.equal(acts["outcome"], emb) and emb.shape == (1, 512)


# ---------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("arch", ARCHS)
def test_dropout_module_p(arch):
    for p in (0.0, 0.3):
        with torch.device("meta"):
            m = build_model(arch, 10, 1, 8, dropout=p)
        d = get_module(m, DROPOUT_MODULES[arch])
        assert isinstance(d, nn.Dropout) and d.p == p and not d.inplace
        assert model_config(m)["dropout"] == p


@pytest.mark.parametrize("arch", ["smallcnn", "mobilenet", "resnet50", "densenet121", "xception", "vit",
                                  "iresnet18"])
def test_dropout_changes_train_outputs_only(arch):
    x = torch.randn(4, 1, 8, 8)
    for p, differ in ((0.5, True), (0.0, False)):
        m = build_model(arch, 10, 1, 8, dropout=p)
        m.train()
        with torch.no_grad():
            a, b = m(x), m(x)
        assert (not torch.allclose(a, b)) == differ, (arch, p)
        m.eval()
        with torch.no_grad():
            assert torch.equal(m(x), m(x))


# ---------------------------------------------------------------------------- per-sample grads
@pytest.mark.parametrize("arch", ["smallcnn", "resnet50"])
def test_vmap_grad_per_sample(arch):
    m = build_model(arch, 10, 1, 8).train()
    with torch.no_grad():  # realistic BatchNorm running statistics before eval mode
        for _ in range(3):
            m(torch.randn(8, 1, 8, 8))
    m.eval()
    params = {k: v.detach() for k, v in m.named_parameters()}
    buffers = dict(m.named_buffers())

    def loss(p, x, y):
        return nn.functional.cross_entropy(functional_call(m, (p, buffers), (x[None],)), y[None])

    x, y = torch.randn(3, 1, 8, 8), torch.tensor([0, 3, 7])
    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for setup in ("entry", "middle", "output"):
        key = GMINT_LAYERS[arch][setup] + ".weight"
        assert g[key].shape == (3, *params[key].shape)
        ref = grad(loss)(params, x[2], y[2])[key]
        assert torch.allclose(g[key][2], ref, rtol=1e-3, atol=1e-4 * ref.abs().max().item())


# ---------------------------------------------------------------------------- margin heads
EMB = torch.tensor([[3.0, 4.0]])             # |z| = 5; normalised (0.6, 0.8)
W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])   # cos(theta) = (0.6, 0.8)
LABEL = torch.tensor([0])


def _head(cls, **kw):
    h = cls(2, 2, **kw)
    with torch.no_grad():
        h.weight.copy_(W)
    return h


def test_softmax_head_is_linear():
    h = SoftmaxHead(2, 2)
    with torch.no_grad():
        h.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        h.bias.copy_(torch.tensor([0.5, -0.5]))
    assert torch.allclose(h(EMB), torch.tensor([[11.5, 24.5]]))
    assert torch.allclose(h(EMB, LABEL), torch.tensor([[11.5, 24.5]]))


def test_arcface_formula():
    h = _head(ArcFaceHead)  # s=64, m=0.5
    assert torch.allclose(h(EMB), torch.tensor([[38.4, 51.2]]))
    # 64*cos(acos(0.6)+0.5) = 64*(0.6*cos .5 - 0.8*sin .5) = 9.15258
    assert torch.allclose(h(EMB, LABEL), torch.tensor([[9.152583, 51.2]]), atol=1e-4)
    # theta + m > pi: fallback cos(theta) - m*sin(m): 64*(-0.96 - 0.5*sin .5) = -76.78162
    out = h(torch.tensor([[-0.96, 0.28]]), LABEL)
    assert torch.allclose(out, torch.tensor([[-76.78162, 64 * 0.28]]), atol=1e-3)


def test_cosface_formula():
    h = _head(CosFaceHead)  # s=64, m=0.35
    assert torch.allclose(h(EMB), torch.tensor([[38.4, 51.2]]))
    assert torch.allclose(h(EMB, LABEL), torch.tensor([[64 * (0.6 - 0.35), 51.2]]), atol=1e-4)


def test_adaface_formula():
    h = _head(AdaFaceHead).eval()  # s=64, m=0.4, h=0.333; running mean 20, std 100 (no update in eval)
    assert torch.allclose(h(EMB), torch.tensor([[38.4, 51.2]]))
    g = (5 - 20) / (100 + 1e-3) * 0.333                          # -0.0499495
    expect = 64 * (math.cos(math.acos(0.6) - 0.4 * g) - (0.4 + 0.4 * g))
    assert abs(expect - 13.048145) < 1e-5
    assert torch.allclose(h(EMB, LABEL), torch.tensor([[13.048145, 51.2]]), atol=1e-3)
    assert h.batch_mean.item() == 20.0 and h.batch_std.item() == 100.0


def test_adaface_running_norm_stats():
    h = _head(AdaFaceHead).train()
    h(torch.tensor([[3.0, 4.0], [6.0, 8.0]]), torch.tensor([0, 1]))   # norms 5, 10
    assert math.isclose(h.batch_mean.item(), 0.99 * 20 + 0.01 * 7.5, rel_tol=1e-6)
    assert math.isclose(h.batch_std.item(), 0.99 * 100 + 0.01 * math.sqrt(12.5), rel_tol=1e-6)


def test_face_model_margin_only_in_training_with_labels():
    m = build_model("iresnet18", 3, 1, 8, head="cosface")
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    m.eval()
    with torch.no_grad():
        plain = m(x)
        assert torch.equal(m(x, y), plain)
        assert torch.allclose(plain, m.head(m.embed(x)))
    m.train()
    with torch.no_grad():
        emb = m.embed(x)
        assert torch.allclose(m(x, y), m.head(emb, y), atol=1e-5)
        assert not torch.allclose(m(x, y), m(x), atol=1e-3)
    assert not build_model("iresnet18", 3, 1, 8).needs_labels


def test_head_kwargs_in_config():
    m = build_model("iresnet18", 4, 1, 8, head="arcface", s=32.0, m=0.3)
    assert (m.head.s, m.head.m) == (32.0, 0.3)
    m2 = build_model(**json.loads(json.dumps(model_config(m))))
    assert (m2.head.s, m2.head.m) == (32.0, 0.3)


# ---------------------------------------------------------------------------- InsightFace layout
def insightface_shapes(layers, fc_in, in_ch=3):
    """State-dict key -> shape of arcface_torch backbones/iresnet.py, written from its layout."""
    s = {}

    def bn(p, c):
        s.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,),
                  f"{p}.num_batches_tracked": ()})
    s["conv1.weight"] = (64, in_ch, 3, 3)
    bn("bn1", 64)
    s["prelu.weight"] = (64,)
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), 1):
        for b in range(n):
            p, cin = f"layer{i}.{b}", (inplanes if b == 0 else planes)
            bn(f"{p}.bn1", cin)
            s[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            bn(f"{p}.bn2", planes)
            s[f"{p}.prelu.weight"] = (planes,)
            s[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn3", planes)
            if b == 0:
                s[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes)
        inplanes = planes
    bn("bn2", 512)
    s["fc.weight"], s["fc.bias"] = (512, fc_in), (512,)
    bn("features", 512)
    return s


@pytest.mark.parametrize("arch,layers", [("iresnet18", (2, 2, 2, 2)), ("iresnet50", (3, 4, 14, 3)),
                                         ("iresnet100", (3, 13, 30, 3))])
def test_iresnet_keys_match_insightface(arch, layers):
    with torch.device("meta"):
        m = build_model(arch, 10, 3, 112)
    ours = {k: tuple(v.shape) for k, v in m.backbone.state_dict().items()}
    assert ours == insightface_shapes(layers, 512 * 7 * 7)


def test_load_insightface_backbone_strict(tmp_path):
    shapes = insightface_shapes((2, 2, 2, 2), 512 * 7 * 7)
    sd = {k: (torch.randint(0, 100, ()) if k.endswith("num_batches_tracked") else torch.randn(shp))
          for k, shp in shapes.items()}
    path = tmp_path / "backbone.pth"
    torch.save(sd, path)
    m = load_insightface_backbone(path, num_classes=7, head="arcface")
    assert m.arch == "iresnet18" and m.config["image_size"] == 112 and isinstance(m.head, ArcFaceHead)
    assert all(torch.equal(v, sd[k]) for k, v in m.backbone.state_dict().items())
    m.backbone.load_state_dict(torch.load(path, weights_only=True), strict=True)
    # DataParallel prefix and missing num_batches_tracked are tolerated
    torch.save({"module." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    load_insightface_backbone(path, build_model("iresnet18", 7, 3, 112))
    # a wrong key or shape is a clear error
    bad = dict(sd)
    bad["layer1.0.conv9.weight"] = bad.pop("layer1.0.conv1.weight")
    bad["fc.bias"] = torch.zeros(3)
    torch.save(bad, path)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight.*layer1\.0\.conv9\.weight.*fc\.bias"):
        load_insightface_backbone(path, build_model("iresnet18", 7, 3, 112))
