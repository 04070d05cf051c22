"""A runtime and an export format added by registry entries alone work through export, eval, predict and bench;
the deploy package has no import circle between its files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import rexnet
from rexnet._files import atomic_write
from rexnet.cli import main
from rexnet.deploy.export import EXPORT_FORMATS, ExportFormat, ExportJob
from rexnet.deploy.runtime import RUNTIMES, Runtime, evaluate_exported, predict_exported

DEPLOY = Path(rexnet.__file__).parent / "deploy"


def _toy_write(job: ExportJob) -> Path:
    """The toy format: the state dict, written like every artefact (atomically, under the output policy)."""
    atomic_write(job.out, lambda f: torch.save(job.model.state_dict(), f), overwrite=job.overwrite)
    return job.out


class _ToyRunner:
    """The toy runtime: rebuilds rexnet_060 from the file and runs it; counts its calls."""

    calls = 0

    def __init__(self, path: Path) -> None:
        self.net = rexnet.create_model("rexnet_060", num_classes=10).eval()
        self.net.load_state_dict(torch.load(path, weights_only=True))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        with torch.no_grad():
            return self.net(x)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the toy format and runtime: one entry in each registry, nothing else."""
    monkeypatch.setitem(
        EXPORT_FORMATS, "toy", ExportFormat("toy format (a test)", ".toy", _toy_write, _ToyRunner, sidecar=True)
    )
    monkeypatch.setitem(
        RUNTIMES,
        "toy",
        Runtime("toy runtime (a test)", (".toy",), lambda path, threads: _ToyRunner(path), export_format="toy"),
    )
    _ToyRunner.calls = 0


def test_toy_format_and_runtime_through_export_eval_predict_cli(
    toy: None, digits_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from rexnet.train import evaluate_checkpoint, predict_files

    out = tmp_path / "m.toy"
    ck = str(digits_checkpoint)
    assert main(["export", "rexnet_060", "--checkpoint", ck, "--format", "toy", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file() and (tmp_path / "m.json").is_file()

    # eval: picked by the suffix alone, and the numbers are the checkpoint's own
    assert main(["eval", "-c", str(out), "--data", "digits"]) == 0
    assert "(toy, f32) on digits val" in capsys.readouterr().out and _ToyRunner.calls > 0
    got, want = evaluate_exported(out, "digits"), evaluate_checkpoint(digits_checkpoint, data="digits", device="cpu")
    assert got["runtime"] == "toy" and got["image_size"] == 32 and got["count"] == want["count"]
    assert got["top1"] == pytest.approx(want["top1"], abs=0.3)

    # predict: by --runtime, the same top class as the PyTorch checkpoint
    img = tmp_path / "a.png"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(img)
    assert main(["predict", str(img), "-c", str(out), "--runtime", "toy", "-k", "1"]) == 0
    top = predict_files(digits_checkpoint, [img], top_k=1)[0]["top"][0]["class"]
    assert f"a.png: {top} " in capsys.readouterr().out
    assert predict_exported(out, [img], top_k=1)[0]["top"][0]["class"] == top

    # the CLI's choices and help come from the registry
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "toy runtime (a test)" in text and ".toy" in text


def test_toy_runtime_through_bench(toy: None, digits_checkpoint: Path, tmp_path: Path) -> None:
    from rexnet.deploy import run_bench, tiny_config

    cfg = tiny_config(
        model="rexnet_060",
        only=("ours toy",),
        timm=False,
        peers=False,
        train=False,
        onnx=False,
        openvino=False,
        bf16=False,
        int8=False,
    )
    res = run_bench(cfg, tmp_path / "bench", checkpoint=digits_checkpoint)
    rows = {r["name"]: r for r in res["inference"]}
    assert list(rows) == ["ours toy f32"] and rows["ours toy f32"]["throughput"] > 0 and _ToyRunner.calls > 0
    assert res["agreement"]["toy f32"]["top1_agreement"] == 1.0  # the same weights as the eager reference
    assert (tmp_path / "bench" / "bench.md").read_text().count("ours toy f32") >= 1


def test_export_registry_entry_without_runtime_is_not_benchmarked(toy: None) -> None:
    assert RUNTIMES["toy"].export_format in EXPORT_FORMATS
    assert all(rt.export_format in EXPORT_FORMATS for rt in RUNTIMES.values() if rt.export_format)


def _deploy_imports() -> dict[str, set[str]]:
    """deploy module -> the deploy modules it imports, at any depth of the file (function-level imports too)."""
    graph: dict[str, set[str]] = {}
    for path in DEPLOY.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                found |= {n.split(".")[0] for n in names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rexnet.deploy."):
                found.add(node.module.split(".")[2])
        graph[path.stem] = found - {path.stem}
    return graph


def test_no_import_circle_between_deploy_files() -> None:
    graph = _deploy_imports()
    assert "onnx_core" in graph and graph["onnx_core"] <= {"fuse", "pad"}  # the low core imports no writer

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(f"{a} -> {b}" for a in graph for b in graph[a] if a != "__init__" and reaches(b, a, {b}))
    assert not circles, circles
