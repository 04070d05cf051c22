"""Issue 16, items 5-7: timm's model conventions, checked against timm's own ReXNet where it has the model."""

import pytest
import timm
import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from rexnet import RexnetError, UnknownModelError, create_model, get_model_info, list_models, load_weights
from rexnet.layers import DropPath
from rexnet.weights import module_map

from ..conftest import randomize_bn


def _pair(name: str, tmp_path, **kwargs):
    """timm's model and ours with the same (BN-randomised) weights."""
    ref = randomize_bn(timm.create_model(name, **kwargs))
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    ours = load_weights(create_model(name, **kwargs), tmp_path / "timm.pth")
    return ref, ours


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


INDICES = [None, 1, 3, (0, 2), (-2, -1), [4], (1,)]


@pytest.mark.parametrize("name", ["rexnet_100", "rexnetr_130"])
def test_forward_intermediates_equal_timm(name, x, tmp_path):
    ref, ours = _pair(name, tmp_path)
    ref.eval(), ours.eval()
    with torch.no_grad():
        for indices in INDICES:
            for stop_early in (False, True):
                exp_final, exp_maps = ref.forward_intermediates(x, indices=indices, stop_early=stop_early)
                final, maps = ours.forward_intermediates(x, indices=indices, stop_early=stop_early, norm=True)
                assert [m.shape for m in maps] == [m.shape for m in exp_maps], (indices, stop_early)
                for a, b in zip(maps, exp_maps):
                    assert (a - b).abs().max().item() <= 1e-5
                assert final.shape == exp_final.shape and (final - exp_final).abs().max().item() <= 1e-5
            only = ours.forward_intermediates(x, indices=indices, intermediates_only=True)
            assert [m.shape for m in only] == [m.shape for m in exp_maps]
        torch.testing.assert_close(ours.forward_intermediates(x)[0], ours.forward_features(x), rtol=0, atol=0)
    with pytest.raises(RexnetError, match="NCHW"):
        ours.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(RexnetError, match="out of range"):
        ours.forward_intermediates(x, indices=(5,))


def test_feature_info_object_equals_timm():
    ref, ours = timm.create_model("rexnet_150"), create_model("rexnet_150")
    assert ours.feature_info.channels() == [d["num_chs"] for d in ref.feature_info]
    assert ours.feature_info.reduction() == [d["reduction"] for d in ref.feature_info]
    assert ours.feature_info.module_name() == ["blocks.0", "blocks.2", "blocks.4", "blocks.10", "blocks.15"]
    assert ours.feature_info.channels(1) == ref.feature_info[1]["num_chs"]
    # timm's own test wraps a classification model's feature_info in its FeatureInfo
    wrapped = timm.models.FeatureInfo(ours.feature_info, len(ours.feature_info))
    assert wrapped.channels() == ours.feature_info.channels()
    # a backbone's object answers for its out_indices, as timm's does
    ref_f = timm.create_model("rexnet_150", features_only=True, out_indices=(1, 3))
    ours_f = create_model("rexnet_150", features_only=True, out_indices=(1, 3))
    assert ours_f.feature_info.channels() == ref_f.feature_info.channels()
    assert ours_f.feature_info.reduction() == ref_f.feature_info.reduction()
    names = dict(ours.named_modules())
    assert all(n in names for n in ours_f.feature_info.module_name())


@pytest.mark.parametrize("indices", [1, (1, 2), (0, 4), 5])
def test_prune_intermediate_layers_like_timm(indices, x, tmp_path):
    ref, ours = _pair("rexnet_100", tmp_path)
    assert ours.prune_intermediate_layers(indices) == ref.prune_intermediate_layers(indices)
    ref.eval(), ours.eval()
    with torch.no_grad():
        for a, b in zip(ours.forward_intermediates(x, indices=indices), ref.forward_intermediates(x, indices=indices)):
            if isinstance(a, list):
                assert [t.shape for t in a] == [t.shape for t in b]
            else:
                assert a.shape == b.shape
        assert ours(x).shape == ref(x).shape  # the head is gone: the last kept map comes out unpooled
    assert ours.num_features == ref.num_features and ours.num_classes == 0
    params = sum(p.numel() for p in ours.parameters())
    assert params == sum(p.numel() for p in ref.parameters())


def test_prune_keeping_the_head():
    model = create_model("rexnet_100")
    before = sum(p.numel() for p in model.parameters())
    assert model.prune_intermediate_layers(None, prune_head=False) == [0, 1, 2, 3, 4]
    assert sum(p.numel() for p in model.parameters()) == before  # nothing to drop


@pytest.mark.parametrize("name", ["rexnet_100", "rexnetr_200"])
def test_grad_checkpointing_same_gradient_as_without_and_as_timm(name, tmp_path):
    ref, ours = _pair(name, tmp_path, drop_rate=0.0)
    x = torch.randn(2, 3, 64, 64)

    def grads(model, checkpointing):
        model.train().zero_grad()
        model.set_grad_checkpointing(checkpointing)
        model(x).square().mean().backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    plain, ckpt = grads(ours, False), grads(ours, True)
    assert ours.grad_checkpointing
    names = module_map(ours.plan, "timm")
    theirs = grads(ref, True)
    for k, g in plain.items():
        torch.testing.assert_close(ckpt[k], g, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(theirs[names[k]], g, rtol=1e-3, atol=1e-5)
    # the intermediates path and the backbone path checkpoint too
    ours.forward_intermediates(x, indices=2)[0].mean().backward()
    backbone = create_model(name, features_only=True).train()
    backbone.set_grad_checkpointing()
    sum(m.mean() for m in backbone(x)).backward()
    assert all(p.grad is not None for p in backbone.parameters())


def test_group_matcher_groups_like_timm():
    group_parameters = timm.models.group_parameters
    ref, ours = timm.create_model("rexnet_100"), create_model("rexnet_100")
    for coarse in (False, True):
        ref_groups = group_parameters(ref, ref.group_matcher(coarse))
        our_groups = group_parameters(ours, ours.group_matcher(coarse))
        assert len(our_groups) == len(ref_groups)
        size = dict(ours.named_parameters())
        ref_size = dict(ref.named_parameters())
        assert [sum(size[n].numel() for n in g) for g in our_groups.values()] == [
            sum(ref_size[n].numel() for n in g) for g in ref_groups.values()
        ]
    assert next(iter(our_groups.values()))[0] == "stem.conv.weight"
    assert "classifier.weight" in list(our_groups.values())[-1]


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", "catavgmax"])
def test_global_pool_types_equal_timm(pool, x, tmp_path):
    ref = randomize_bn(timm.create_model("rexnet_100", global_pool=pool, num_classes=7)).eval()
    torch.save(ref.state_dict(), tmp_path / "t.pth")
    ours = load_weights(create_model("rexnet_100", global_pool=pool, num_classes=7), tmp_path / "t.pth").eval()
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-5
    assert ours.head_hidden_size == ref.head_hidden_size


@pytest.mark.parametrize("name", ["rexnet_100", "rexnet_lite_100", "mobilenetv2_100"])
def test_unpooled_outputs_and_reset_classifier(name, x):
    """timm's default-cfg checks: forward_features at pool_size, reset_classifier(0) / (0, '') / global_pool=''."""
    model = create_model(name).eval()
    cfg = model.default_cfg
    assert cfg is model.pretrained_cfg
    size = torch.randn(1, *cfg["input_size"])
    with torch.no_grad():
        feats = model.forward_features(size)
        pre = model.forward_head(feats, pre_logits=True)
        assert feats.shape[1:] == (model.num_features, *cfg["pool_size"]) and pre.shape[1] == model.head_hidden_size
        model.reset_classifier(0)
        assert model(size).shape == pre.shape
        model.reset_classifier(0, "")
        out = model(size)
        assert out.ndim == 4 and out.shape[2:] == cfg["pool_size"]
        model.reset_classifier(3, "avg")
        assert model(x).shape == (2, 3)
        unpooled = create_model(name, num_classes=0, global_pool="").eval()
        assert unpooled(size).ndim == 4
    sd = model.state_dict()
    assert cfg["first_conv"] + ".weight" in sd and cfg["classifier"] + ".weight" in sd
    with pytest.raises(ValueError, match="num_classes=0"):
        create_model(name, global_pool="")
    with pytest.raises(ValueError, match="unknown global_pool"):
        create_model(name, global_pool="median")


def test_reset_classifier_keeps_device_dtype_and_mode():
    model = create_model("rexnet_060").double().eval()
    model.reset_classifier(4, "max")
    assert model.classifier.weight.dtype == torch.float64
    assert model(torch.randn(1, 3, 32, 32, dtype=torch.float64)).shape == (1, 4)


def test_pretrained_cfg_fields():
    with torch.device("meta"):  # configs only: no real weights needed
        _check_cfgs()


def _check_cfgs():
    for name in list_models():
        cfg = create_model(name).pretrained_cfg
        for key in ("num_classes", "input_size", "pool_size", "crop_pct", "interpolation", "mean", "std"):
            assert key in cfg, (name, key)
        assert (cfg["first_conv"], cfg["classifier"], cfg["pool_size"]) == ("stem.conv", "classifier", (7, 7))
        assert cfg["test_input_size"][0] == 3
    for name in [
        "rexnet_100",
        "rexnet_300.nav_in1k",
        "rexnetr_200.sw_in12k_ft_in1k",
        "rexnetr_200.sw_in12k",
        "rexnetr_100",
    ]:
        ours, theirs = create_model(name).pretrained_cfg, timm.create_model(name).pretrained_cfg
        for key in ("num_classes", "input_size", "pool_size", "crop_pct", "interpolation", "first_conv", "tag"):
            assert ours[key] == theirs[key], (name, key)
        assert ours["mean"] == pytest.approx(theirs["mean"]) and ours["std"] == pytest.approx(theirs["std"])
        assert ours["test_input_size"] == theirs.get("test_input_size", theirs["input_size"])
    # a sw_in12k tag takes its class count, as timm
    assert create_model("rexnetr_200.sw_in12k").num_classes == 11821
    assert create_model("rexnet_100", in_chans=1).pretrained_cfg["input_size"] == (1, 224, 224)


def test_timm_style_names():
    for name in ("rexnet_100.nav_in1k", "timm/rexnet_100.nav_in1k", "hf-hub:timm/rexnet_100.nav_in1k"):
        model = create_model(name)
        assert model.model_name == "rexnet_100" and model.pretrained_cfg["tag"] == "nav_in1k"
    assert get_model_info("rexnetr_300.sw_in12k").name == "rexnetr_300"
    assert create_model("rexnetr_100.untrained").pretrained_cfg["tag"] == "untrained"
    with pytest.raises(UnknownModelError, match="unknown weight tag 'in22k'.*nav_in1k"):
        create_model("rexnet_100.in22k")
    with pytest.raises(UnknownModelError, match="has none in timm"):
        create_model("rexnet_lite_100.nav_in1k")
    with pytest.raises(UnknownModelError, match="unknown model"):
        create_model("resnet50.a1_in1k")
    # every tag we accept is a tag timm lists for that architecture, and the reverse
    ours = {f"{n}.{t}" for n in list_models() for t in get_model_info(n).tags}
    assert ours == set(timm.list_models("rexnet*", pretrained=True, include_tags=True)) | {
        f"rexnetr_{w}.untrained" for w in (100, 130, 150)
    }


def test_timm_layer_flags_accepted_and_unknown_option_named():
    create_model("rexnet_060", scriptable=True, exportable=True, no_jit=True)
    with pytest.raises(RexnetError, match="unknown option.*drop_block_rate"):
        create_model("rexnet_060", drop_block_rate=0.1)


def test_drop_path_timm_signature():
    dp = DropPath(drop_prob=0.5, scale_by_keep=False).train()
    out = dp(torch.ones(4000, 1, 2, 2))
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # unscaled
    kept = DropPath(0.5).train()(torch.ones(4000, 1, 2, 2))
    assert set(kept.unique().tolist()) <= {0.0, 2.0} and abs(kept.mean().item() - 1.0) < 0.1
    assert torch.equal(DropPath(0.5).eval()(torch.ones(3)), torch.ones(3))
    assert "drop_prob=0.500" in repr(dp)
    with pytest.raises(ValueError, match="drop-path"):
        DropPath(1.0)


@pytest.mark.parametrize("features_only", [False, True])
def test_fx_trace_then_torchscript(features_only, x):
    """timm's test: FX graph (torchvision feature extractor) scripted; issue 16 item 5."""
    model = create_model("rexnet_100", features_only=features_only).eval()
    with torch.no_grad():
        ref = model(x)
        traced = torch.fx.symbolic_trace(model)
        scripted = torch.jit.script(traced)
        out = scripted(x)
        _, eval_nodes = get_graph_node_names(model)
        extractor = torch.jit.script(create_feature_extractor(model, return_nodes=[eval_nodes[-1]]))
        last = list(extractor(x).values())
    if features_only:  # the graph's last node is the last block's add, i.e. the stride-32 map
        assert len(out) == 5 and all(torch.equal(a, b) for a, b in zip(out, ref))
        assert len(last) == 1 and torch.equal(last[0], ref[-1])
    else:
        assert torch.equal(out, ref) and torch.equal(last[0], ref)


def test_torchscript_with_grad_checkpointing_enabled(x):
    model = create_model("rexnet_060").eval()
    model.set_grad_checkpointing()
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x), rtol=0, atol=1e-5)
