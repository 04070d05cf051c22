"""Family ``checkpoint``: crafted training checkpoints, safetensors, sidecars, ONNX and OpenVINO files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import craft
from .common import TRAIN, cli, files, huge_plan, marker, needs_warning
from .core import Probe


def _ck(edit: Any) -> Any:
    return lambda path, fx: craft.training_checkpoint(fx, path, edit)


def _plan(edit: Any) -> Any:
    return lambda path, fx: craft.edit_plan(fx, path, edit)


def _side(edit: Any = None, text: str | None = None) -> Any:
    return lambda d, fx: craft.sidecar(fx, d, edit, text)


def _set_plan(key: str, value: Any) -> Any:
    def edit(plan: dict[str, Any]) -> None:
        if key.startswith("blocks."):
            for b in plan["blocks"]:
                b[key.split(".")[1]] = value
        else:
            plan[key] = value

    return edit


def checkpoint_probes() -> list[Probe]:
    """Crafted training checkpoints, safetensors weights, sidecars, ONNX and OpenVINO files."""
    ev = ["eval", "--data", "digits", "--image-size", "32", "-c"]
    pr = ["predict", "x.png", "-c"]
    px = {"x.png": craft.png_bytes(32, 32)}
    nan = _ck(craft.nan_weights)
    ps = [
        cli(
            "eval NaN checkpoint",
            "checkpoint",
            [*ev, "nan.pt"],
            setup=files(**{"nan.pt": nan}),
            needs=("run",),
            quick=True,
        ),
        cli(
            "predict NaN checkpoint",
            "checkpoint",
            [*pr, "nan.pt"],
            setup=files(**{"nan.pt": nan}, **px),
            needs=("run",),
        ),
        cli(
            "export NaN checkpoint",
            "checkpoint",
            ["export", "rexnet_060", "--checkpoint", "nan.pt", "--out", "m.onnx"],
            setup=files(**{"nan.pt": nan}),
            needs=("run",),
        ),
        cli(
            "finetune from NaN checkpoint",
            "checkpoint",
            ["finetune", *TRAIN[1:], "--pretrained", "nan.pt", "--out", "r"],
            setup=files(**{"nan.pt": nan}),
            needs=("run",),
        ),
        cli(
            "eval checkpoint is a tensor",
            "checkpoint",
            [*ev, "t.pt"],
            needs=("run",),
            setup=files(**{"t.pt": _ck(lambda ck: ck["model"]["stem.conv.weight"])}),
        ),
        cli(
            "eval checkpoint pickle runs code",
            "checkpoint",
            [*ev, "evil.pt"],
            check=marker,
            setup=lambda d, fx: (d / "evil.pt").write_bytes(craft.evil_pickle(d / "PWNED")),
        ),
        cli(
            "eval truncated checkpoint",
            "checkpoint",
            [*ev, "half.pt"],
            needs=("run",),
            setup=files(
                **{"half.pt": lambda p, fx: p.write_bytes((fx / "run/checkpoints/best.pt").read_bytes()[:20000])}
            ),
        ),
        cli("eval empty checkpoint", "checkpoint", [*ev, "e.pt"], setup=files(**{"e.pt": b""})),
        cli("eval text checkpoint", "checkpoint", [*ev, "t.pth"], setup=files(**{"t.pth": b"not a checkpoint"})),
        cli(
            "eval checkpoint plan stride 0",
            "checkpoint",
            [*ev, "s.pt"],
            needs=("run",),
            setup=files(**{"s.pt": _ck(lambda ck: [b.update(stride=0) for b in ck["plan"]["blocks"]])}),
        ),
        cli(
            "eval checkpoint plan unknown key",
            "checkpoint",
            [*ev, "u.pt"],
            needs=("run",),
            setup=files(**{"u.pt": _ck(lambda ck: ck["plan"].update(bogus=1))}),
        ),
        cli(
            "eval checkpoint plan huge",
            "checkpoint",
            [*ev, "h.pt"],
            needs=("run",),
            quick=True,
            setup=files(**{"h.pt": _ck(lambda ck: huge_plan(ck["plan"]))}),
        ),
        cli(
            "eval checkpoint 2 class names",
            "checkpoint",
            [*ev, "c.pt"],
            needs=("run",),
            setup=files(**{"c.pt": _ck(lambda ck: ck.update(class_names=["a", "b"]))}),
        ),
        cli(
            "eval checkpoint image_size abc",
            "checkpoint",
            [*ev, "i.pt"],
            needs=("run",),
            setup=files(**{"i.pt": _ck(lambda ck: ck["config"].update(image_size="abc"))}),
        ),
        cli(
            "eval checkpoint config list",
            "checkpoint",
            [*ev, "l.pt"],
            needs=("run",),
            setup=files(**{"l.pt": _ck(lambda ck: ck.update(config=[1, 2]))}),
        ),
        cli(
            "eval checkpoint num_classes -1",
            "checkpoint",
            [*ev, "n.pt"],
            needs=("run",),
            setup=files(**{"n.pt": _ck(lambda ck: ck.update(num_classes=-1))}),
        ),
        cli(
            "predict checkpoint model_name unknown",
            "checkpoint",
            [*pr, "m.pt"],
            needs=("run",),
            setup=files(**{"m.pt": _ck(lambda ck: ck.update(model_name="rexnet_999")), **px}),
        ),
        cli(
            "eval safetensors huge plan",
            "checkpoint",
            [*ev, "h.safetensors"],
            needs=("st",),
            quick=True,
            setup=files(**{"h.safetensors": _plan(huge_plan)}),
        ),
        cli(
            "eval safetensors plan stride 0",
            "checkpoint",
            [*ev, "s.safetensors"],
            needs=("st",),
            setup=files(**{"s.safetensors": _plan(_set_plan("blocks.stride", 0))}),
        ),
        cli(
            "eval safetensors plan unknown key",
            "checkpoint",
            [*ev, "u.safetensors"],
            needs=("st",),
            setup=files(**{"u.safetensors": _plan(_set_plan("bogus", 1))}),
        ),
        cli(
            "eval safetensors plan not json",
            "checkpoint",
            [*ev, "j.safetensors"],
            needs=("st",),
            setup=files(**{"j.safetensors": lambda p, fx: _meta(fx, p, plan="{not json")}),
        ),
        cli(
            "eval safetensors header 2^60",
            "checkpoint",
            [*ev, "b.safetensors"],
            needs=("st",),
            setup=files(**{"b.safetensors": lambda p, fx: craft.write_safetensors(p, b"{}", b"", 2**60)}),
        ),
        cli(
            "eval safetensors header garbage",
            "checkpoint",
            [*ev, "g.safetensors"],
            setup=files(**{"g.safetensors": lambda p, fx: craft.write_safetensors(p, b"\xff\xfe{", b"")}),
        ),
        cli(
            "eval safetensors offsets out of range",
            "checkpoint",
            [*ev, "o.safetensors"],
            needs=("st",),
            setup=files(**{"o.safetensors": _offsets}),
        ),
        cli(
            "eval safetensors int8 tensors",
            "checkpoint",
            [*ev, "i8.safetensors"],
            needs=("st",),
            setup=files(**{"i8.safetensors": lambda p, fx: craft.retype_tensors(fx, p, "I8")}),
        ),
        cli(
            "eval safetensors bool tensors",
            "checkpoint",
            [*ev, "b.safetensors"],
            needs=("st",),
            setup=files(**{"b.safetensors": lambda p, fx: craft.retype_tensors(fx, p, "BOOL")}),
        ),
        cli(
            "convert safetensors int8",
            "checkpoint",
            ["convert", "i8.safetensors", "o.safetensors"],
            needs=("st",),
            setup=files(**{"i8.safetensors": lambda p, fx: craft.retype_tensors(fx, p, "I8")}),
        ),
        cli(
            "convert text file", "checkpoint", ["convert", "t.pth", "o.safetensors"], setup=files(**{"t.pth": b"text"})
        ),
        cli(
            "convert huge plan",
            "checkpoint",
            ["convert", "h.safetensors", "o.safetensors"],
            needs=("st",),
            setup=files(**{"h.safetensors": _plan(huge_plan)}),
        ),
        cli("detect eval classification checkpoint", "checkpoint", ["detect", "eval", "{fx}/run"], needs=("run",)),
        cli(
            "detect predict text checkpoint",
            "checkpoint",
            ["detect", "predict", "t.pt", "x.png", "-o", "o"],
            setup=files(**{"t.pt": b"text", **px}),
        ),
        cli(
            "detect export classification checkpoint",
            "checkpoint",
            ["detect", "export", "{fx}/run", "-o", "d.onnx"],
            needs=("run",),
        ),
        cli("eval detection checkpoint", "checkpoint", [*ev, "{fx}/det/checkpoints/best.pt"], needs=("det",)),
    ]
    return ps + _export_file_probes()


def _meta(fx: Path, path: Path, **kv: str) -> None:
    header, data = craft.read_safetensors(fx / "w.safetensors")
    header["__metadata__"].update(kv)
    craft.write_safetensors(path, header, data)


def _offsets(path: Path, fx: Path) -> None:
    header, data = craft.read_safetensors(fx / "w.safetensors")
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"] = [0, 10**12]
    craft.write_safetensors(path, header, data)


def _export_file_probes() -> list[Probe]:
    """ONNX and OpenVINO files and their sidecars, crafted."""
    ev = ["eval", "--data", "digits", "-c", "m.onnx"]
    return [
        cli(
            "onnx without sidecar",
            "checkpoint",
            ev,
            needs=("onnx",),
            expect="any",
            check=needs_warning("sidecar", "224"),
            setup=lambda d, fx: (d / "m.onnx").write_bytes((fx / "model.onnx").read_bytes()),
            quick=True,
        ),
        cli("onnx sidecar not json", "checkpoint", ev, needs=("onnx",), setup=_side(text="{oops")),
        cli("onnx sidecar list", "checkpoint", ev, needs=("onnx",), setup=_side(text="[1, 2]")),
        cli(
            "onnx sidecar image_size abc",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(image_size="abc")),
        ),
        cli(
            "onnx sidecar image_size 0",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(image_size=0)),
        ),
        cli(
            "onnx sidecar 2 class names for 10",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(class_names=["a", "b"])),
        ),
        cli("onnx sidecar std 0", "checkpoint", ev, needs=("onnx",), setup=_side(lambda m: m.update(std=[0, 0, 0]))),
        cli(
            "onnx sidecar mean of 2",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(mean=[0.5, 0.5])),
        ),
        cli("onnx empty", "checkpoint", ev, setup=files(**{"m.onnx": b""})),
        cli("onnx text", "checkpoint", ev, setup=files(**{"m.onnx": b"this is not onnx"})),
        cli(
            "onnx truncated",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=lambda d, fx: (d / "m.onnx").write_bytes((fx / "model.onnx").read_bytes()[:4096]),
        ),  # fmt: skip
        cli("onnx two inputs", "checkpoint", ev, setup=lambda d, fx: _odd_onnx(d / "m.onnx", "two")),
        cli("onnx fixed 17px input", "checkpoint", ev, setup=lambda d, fx: _odd_onnx(d / "m.onnx", "fixed")),
        cli(
            "predict onnx text",
            "checkpoint",
            ["predict", "x.png", "-c", "m.onnx"],
            setup=files(**{"m.onnx": b"nope", "x.png": craft.png_bytes(32, 32)}),
        ),
        cli(
            "xml without bin",
            "checkpoint",
            ["eval", "--data", "digits", "-c", "ov/rexnet_060.xml"],
            needs=("ov",),
            setup=lambda d, fx: (craft.copy_tree(fx / "ov", d / "ov"), (d / "ov/rexnet_060.bin").unlink()),
        ),
        cli(
            "xml garbage",
            "checkpoint",
            ["eval", "--data", "digits", "-c", "m.xml"],
            setup=files(**{"m.xml": b"<net><oops", "m.bin": b"\0" * 16}),
        ),
        cli(
            "xml bin truncated",
            "checkpoint",
            ["eval", "--data", "digits", "-c", "ov/rexnet_060.xml"],
            needs=("ov",),
            setup=lambda d, fx: (
                craft.copy_tree(fx / "ov", d / "ov"),
                (d / "ov/rexnet_060.bin").write_bytes(b"\0" * 64),
            ),
        ),  # fmt: skip
    ]


def _odd_onnx(path: Path, kind: str) -> None:
    """A tiny ONNX model with two inputs, or one fixed 17x17 input (both unusable as a classifier)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 17, 17] if kind == "fixed" else None)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    if kind == "two":
        x2 = helper.make_tensor_value_info("input2", TensorProto.FLOAT, None)
        graph = helper.make_graph([helper.make_node("Add", ["input", "input2"], ["logits"])], "g", [x, x2], [y])
    else:
        graph = helper.make_graph([helper.make_node("GlobalAveragePool", ["input"], ["p"]),
                                   helper.make_node("Flatten", ["p"], ["logits"])], "g", [x], [y])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    path.with_suffix(".json").write_text(json.dumps({"model": "rexnet_060", "num_classes": 10, "image_size": 32}))
