"""The built model: costs measured on the module equal the plan's; surface; scripting."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from rexnet import RexNet, create_model, list_models
from rexnet.plan import count_macs, count_params, rexnet_plan


def measured(model: torch.nn.Module, size: int = 224) -> tuple[int, int]:
    """(MACs by FlopCounterMode / 2, parameter sum), on the meta device: no real compute."""
    x = torch.empty(1, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_built_model_costs_equal_plan(name):
    with torch.device("meta"):
        model = create_model(name).eval()
    assert measured(model) == (count_macs(model.plan), count_params(model.plan))


@settings(max_examples=25, deadline=None)
@given(width=st.floats(0.25, 4.0), depth=st.floats(0.5, 2.0), size=st.sampled_from([64, 96, 224]))
def test_any_width_depth_builds_with_plan_macs(width, depth, size):
    plan = rexnet_plan(width, depth)
    with torch.device("meta"):
        model = RexNet(plan).eval()
    assert measured(model, size) == (count_macs(plan, size), count_params(plan))


def test_batch_one_eval_and_heads():
    model = create_model("rexnet_100", num_classes=10).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        y = model(x)
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
    assert y.shape == (1, 10) and feats.shape == (1, 1280, 3, 3) and pre.shape == (1, 1280)
    model.reset_classifier(3)
    assert model(x).shape == (1, 3)
    model.reset_classifier(0)
    assert model(x).shape == (1, 1280)


def test_lite_head_and_official_head_shapes():
    model = create_model("rexnet_lite_100", num_classes=7).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    assert model.head_hidden.conv.out_channels == 1024


def test_features_only_maps():
    model = create_model("rexnet_100", features_only=True).eval()
    assert [f["num_chs"] for f in model.feature_info] == [16, 38, 61, 128, 185]
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (16, 112, 112),
        (38, 56, 56),
        (61, 28, 28),
        (128, 14, 14),
        (185, 7, 7),
    ]
    sub = create_model("rexnet_100", features_only=True, out_indices=(1, 3)).eval()
    assert [o.shape[1] for o in sub(torch.randn(1, 3, 64, 64))] == [38, 128]
    with pytest.raises(ValueError, match="out_indices"):
        create_model("rexnet_100", features_only=True, out_indices=(5,))


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride_dilation(output_stride):
    model = create_model("rexnet_100", features_only=True, output_stride=output_stride).eval()
    outs = model(torch.randn(1, 3, 128, 128))
    assert outs[-1].shape[-1] == 128 // output_stride
    full = create_model("rexnet_100", output_stride=output_stride).eval()
    with torch.device("meta"):
        meta_model = create_model("rexnet_100", output_stride=output_stride).eval()
    x = torch.empty(1, 3, 128, 128, device="meta")
    with FlopCounterMode(display=False) as c:
        meta_model(x)
    assert c.get_total_flops() // 2 == count_macs(full.plan, 128, output_stride=output_stride)


def test_drop_path_only_on_shortcut_blocks_and_linear():
    model = create_model("rexnet_100", drop_path_rate=0.2)
    probs = [getattr(b.drop_path, "drop_prob", None) for b in model.blocks]
    for i, (b, p) in enumerate(zip(model.plan.blocks, probs)):
        if b.shortcut and i > 0:
            assert p == pytest.approx(0.2 * i / 15)
        else:
            assert p is None
    model.train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()


def test_shortcut_is_partial_identity():
    """Zero every weight: a shortcut block then returns x zero-padded to out channels."""
    model = create_model("rexnet_100").eval()
    block = model.blocks[2]  # 27 -> 38, stride 1
    for p in block.parameters():
        p.data.zero_()
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
    x = torch.randn(1, 27, 8, 8)
    out = block(x)
    assert torch.equal(out[:, :27], x) and torch.count_nonzero(out[:, 27:]) == 0


def test_torchscript_script_and_trace_match_eager():
    model = create_model("rexnet_100").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        scripted = torch.jit.script(model)
        traced = torch.jit.trace(model, x)
        torch.testing.assert_close(scripted(x), ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(traced(x), ref, rtol=0, atol=1e-5)
    feats = torch.jit.script(create_model("rexnet_100", features_only=True).eval())
    assert len(feats(x)) == 5


@pytest.mark.slow
def test_torch_compile_matches_eager():
    model = create_model("rexnet_060", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-4)


def test_bad_model_args():
    with pytest.raises(ValueError, match="output_stride"):
        create_model("rexnet_100", output_stride=4)
    with pytest.raises(ValueError, match="drop_path_rate"):
        create_model("rexnet_100", drop_path_rate=1.5)
