"""Families ``numbers`` (NaN/inf/absurd flags and config files) and ``env`` (environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import craft
from .common import DETECT, RANK, SEARCH, TRAIN, cli
from .core import Probe

# (flag, value, expect): every train flag that takes a number, with a value that must be refused
TRAIN_BAD = [
    ("--lr", "1e309"), ("--lr", "inf"), ("--lr", "nan"), ("--lr", "-1"), ("--lr", "0"),
    ("--weight-decay", "nan"), ("--weight-decay", "inf"), ("--weight-decay", "-1"),
    ("--warmup-epochs", "nan"), ("--warmup-epochs", "-1"), ("--seed", "1e23"), ("--seed", "-1", "any"),
    ("--seed", "nan"),
    ("--val-limit", "0"), ("--train-limit", "0"), ("--train-limit", "-5"), ("--epochs", "0"), ("--epochs", "-1"),
    ("--epochs", "nan"), ("--batch-size", "0"), ("--batch-size", "-1"), ("--accum-steps", "0"),
    ("--momentum", "nan"), ("--momentum", "5"), ("--label-smoothing", "2"), ("--label-smoothing", "nan"),
    ("--dropout", "1.5"), ("--dropout", "nan"), ("--drop-path", "inf"), ("--clip-grad", "nan"),
    ("--clip-grad", "-1"), ("--hflip", "5"), ("--randaug-m", "nan"), ("--reprob", "2"), ("--min-lr", "inf"),
    ("--base-lr", "inf"), ("--base-batch", "0"), ("--warmup-lr", "nan"), ("--image-size", "0"),
    ("--image-size", "-32"), ("--image-size", "100000"), ("--num-classes", "0"), ("--num-classes", "-3"),
    ("--save-every-steps", "-1"), ("--log-every-steps", "-1"), ("-j", "-1"), ("--threads", "0"),
    ("--threads", "100000"), ("--threads", "-1"), ("--amp", "xyz"), ("--device", "xyz"), ("--aug-ratio", "nan"),
    ("--aug-scale", "nan"), ("--randaug-mstd", "inf"), ("--model", "rexnet_999"), ("--data", "nonexistent-set"),
]  # fmt: skip
DETECT_BAD = [
    ("--lr", "nan"), ("--lr", "inf"), ("--train-limit", "0"), ("--image-size", "100000"), ("--image-size", "0"),
    ("--batch-size", "0"), ("--epochs", "-1"), ("--weight-decay", "nan"), ("--threads", "100000"),
    ("--eval-every", "0"), ("--seed", "1e23"), ("--val-limit", "-1"), ("--backbone", "rexnet_999"),
]  # fmt: skip
EXPORT_BAD = [
    ("--image-size", "0"), ("--image-size", "100000"), ("--image-size", "nan"), ("--opset", "0"), ("--opset", "999"),
]  # fmt: skip
EVAL_BAD = [("-b", "0"), ("-b", "-1"), ("--image-size", "0"), ("--image-size", "100000"), ("-j", "-1")]
RANK_BAD = [
    ("-n", "0"), ("-n", "-1"), ("--ratios", "0"), ("--ratios", "nan"), ("--ratios", "2"), ("--ratios", "inf"),
    ("--seed", "nan"), ("-j", "0"), ("--set", "bogus=1"), ("--blocks", "nope"), ("--activations", "nope"),
]  # fmt: skip
SEARCH_BAD = [
    ("--budget-macs", "nan"), ("--budget-macs", "-1"), ("--budget-macs", "1e30"), ("--tolerance", "nan"),
    ("--trials", "0"), ("--heartbeat", "0"), ("--max-memory", "-1"), ("--train-options", '{"lr": NaN}'),
    ("--train-options", "[1]"), ("--train-options", "not json"), ("--threads", "100000"), ("--seeds", "0"),
    ("--image-size", "0"), ("--blocks", "0"),
]  # fmt: skip
QUICK = {("--lr", "1e309"), ("--weight-decay", "nan"), ("--seed", "1e23"), ("--threads", "100000")}


def _slug(flag: str, value: str) -> str:
    v = value.replace("{", "").replace("}", "").replace('"', "").replace(":", "").replace(" ", "").replace("[", "")
    return f"{flag.lstrip('-')}={v.replace(']', '')[:12]}"


def _config(name: str, text: str) -> Any:
    def setup(d: Path, fx: Path) -> None:
        (d / name).write_text(text)

    return setup


def flag_probes() -> list[Probe]:
    """One probe per bad value of every numeric flag of every command."""
    ps = [cli(f"train {_slug(f, v)}", "numbers", [*TRAIN, f, v, "--out", "r"], quick=(f, v) in QUICK,
              expect=e[0] if e else "refuse") for f, v, *e in TRAIN_BAD]  # fmt: skip
    ps += [cli(f"detect {_slug(f, v)}", "numbers", [*DETECT, f, v, "--out", "det"], timeout=120) for f, v in DETECT_BAD]
    ps += [cli(f"export {_slug(f, v)}", "numbers", ["export", "rexnet_060", f, v, "--out", "m.onnx"])
           for f, v in EXPORT_BAD]  # fmt: skip
    ps += [cli(f"eval {_slug(f, v)}", "numbers", ["eval", "-c", "{fx}/run", "--data", "digits", f, v], needs=("run",))
           for f, v in EVAL_BAD]  # fmt: skip
    ps += [cli(f"rank-study {_slug(f, v)}", "numbers", [*RANK, f, v, "--out", "rk"]) for f, v in RANK_BAD]
    ps += [cli(f"search {_slug(f, v)}", "numbers", [*SEARCH, f, v, "--out", "s"], timeout=150) for f, v in SEARCH_BAD]
    ps += [
        cli(
            "search grace<heartbeat",
            "numbers",
            [*SEARCH, "--heartbeat", "10", "--grace", "5", "--out", "s"],
            timeout=150,
            quick=True,
        ),
        cli(
            "search grace=heartbeat",
            "numbers",
            [*SEARCH, "--heartbeat", "10", "--grace", "10", "--out", "s"],
            timeout=150,
        ),
        cli(
            "export calib-images=-1",
            "numbers",
            [
                "export",
                "rexnet_060",
                "--image-size",
                "32",
                "--precision",
                "int8",
                "--calib-data",
                "digits",
                "--calib-images",
                "-1",
                "--out",
                "m.onnx",
            ],
        ),
        cli(
            "export calib-images=0",
            "numbers",
            [
                "export",
                "rexnet_060",
                "--image-size",
                "32",
                "--precision",
                "int8",
                "--calib-data",
                "digits",
                "--calib-images",
                "0",
                "--out",
                "m.onnx",
            ],
        ),
        cli(
            "predict k=0",
            "numbers",
            ["predict", "-c", "{fx}/run", "-k", "0", "x.png"],
            needs=("run",),
            setup=_png("x.png"),
        ),
        cli(
            "predict k=-1",
            "numbers",
            ["predict", "-c", "{fx}/run", "-k", "-1", "x.png"],
            needs=("run",),
            setup=_png("x.png"),
        ),
        cli(
            "predict image-size=0",
            "numbers",
            ["predict", "-c", "{fx}/run", "--image-size", "0", "x.png"],
            needs=("run",),
            setup=_png("x.png"),
        ),
        cli(
            "detect-eval limit=-1",
            "numbers",
            ["detect", "eval", "{fx}/det/checkpoints/best.pt", "--limit", "-1"],
            needs=("det",),
        ),
        cli(
            "detect-eval limit=0",
            "numbers",
            ["detect", "eval", "{fx}/det/checkpoints/best.pt", "--limit", "0"],
            needs=("det",),
        ),
        cli(
            "detect-eval batch=0",
            "numbers",
            ["detect", "eval", "{fx}/det/checkpoints/best.pt", "--batch-size", "0"],
            needs=("det",),
        ),
        cli(
            "detect-predict thresh=nan",
            "numbers",
            ["detect", "predict", "{fx}/det/checkpoints/best.pt", "x.png", "--score-thresh", "nan", "-o", "o"],
            needs=("det",),
            setup=_png("x.png", 64),
        ),
        cli("rank-profile b=0", "numbers", ["rank", "profile", "rexnet_060", "-b", "0", "--out", "p"]),
        cli(
            "rank-profile image-size=100000",
            "numbers",
            ["rank", "profile", "rexnet_060", "-b", "2", "--image-size", "100000", "--out", "p"],
        ),
        cli("bench threads=100000", "numbers", ["bench", "--tiny", "--threads", "100000", "--out", "b"]),
        cli("bench rounds=0", "numbers", ["bench", "--tiny", "--rounds", "0", "--out", "b"]),
        cli("models image-size=nan", "numbers", ["models", "--image-size", "nan"]),
        cli("info image-size=-1", "numbers", ["info", "rexnet_100", "--image-size", "-1"]),
    ]
    return ps


def _png(name: str, size: int = 32) -> Any:
    def setup(d: Path, fx: Path) -> None:
        (d / name).write_bytes(craft.png_bytes(size, size))

    return setup


def _int8_weights(d: Path, fx: Path) -> None:
    craft.retype_tensors(fx, d / "int8.safetensors", "I8")


def config_probes() -> list[Probe]:
    """Crafted ``--config`` files (YAML and JSON) and crafted pretrained weights for fine-tuning."""
    bad = {
        "lr-nan.yaml": "lr: .nan\n",
        "lr-inf.yaml": "lr: 1e309\n",
        "wd-inf.yaml": "weight_decay: .inf\n",
        "epochs-str.yaml": "epochs: abc\n",
        "epochs-float.yaml": "epochs: 1.5\n",
        "unknown-key.yaml": "lrr: 0.1\n",
        "list.yaml": "- lr\n- 0.1\n",
        "empty.yaml": "",
        "garbage.yaml": "\x00\x01\x02{[}",
        "python-tag.yaml": "lr: !!python/object/apply:os.system ['touch PWNED']\n",
        "nan.json": '{"lr": NaN}',
        "neg-batch.json": '{"batch_size": -4}',
        "bool-epochs.json": '{"epochs": true}',
        "nested.json": '{"lr": {"a": 1}}',
        "big-int.json": '{"seed": 1' + "0" * 400 + "}",
        "preset-unknown.yaml": "preset: nope\n",
        "image-size-str.yaml": "image_size: '32px'\n",
    }
    ps = [
        cli(f"train config {name}", "numbers", [*TRAIN, "--config", name, "--out", "r"], setup=_config(name, text),
            check=_pwned, quick=name in ("lr-nan.yaml", "nan.json"))
        for name, text in bad.items()
    ]  # fmt: skip
    ps.append(cli("finetune int8 weights", "numbers", ["finetune", *TRAIN[1:], "--pretrained", "int8.safetensors",
                  "--out", "r"], setup=_int8_weights, needs=("st",)))  # fmt: skip
    return ps


def _pwned(d: Path, res: dict[str, Any]) -> tuple[str, str] | None:
    if (d / "PWNED").exists():
        return "executed", "a !!python YAML tag ran code"
    return None


def env_probes() -> list[Probe]:
    """Distributed and thread environment variables left behind or crafted."""
    run = [*TRAIN, "--out", "r"]
    return [
        cli("train WORLD_SIZE=abc", "env", run, env={"WORLD_SIZE": "abc"}, quick=True),
        cli(
            "train WORLD_SIZE=2 RANK=0 no peer",
            "env",
            run,
            env={"WORLD_SIZE": "2", "RANK": "0"},
            timeout=240,
            quick=True,
            note="must end with a clear message, not wait forever",
        ),
        cli("train WORLD_SIZE=2 RANK=5", "env", run, env={"WORLD_SIZE": "2", "RANK": "5"}, timeout=240),
        cli(
            "train WORLD_SIZE=2 RANK=0 MASTER_ADDR set, no peer",
            "env",
            run,
            env={"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"},
            timeout=240,
            note="torchrun's leftovers: the store waits for a peer that never comes; must time out clearly",
        ),
        cli(
            "detect WORLD_SIZE=2 RANK=0 MASTER_ADDR set, no peer",
            "env",
            [*DETECT, "--out", "det"],
            env={"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29534"},
            timeout=240,
        ),
        cli("train RANK=abc", "env", run, env={"WORLD_SIZE": "2", "RANK": "abc"}),
        cli("train WORLD_SIZE=0", "env", run, env={"WORLD_SIZE": "0"}),
        cli("train WORLD_SIZE=-1", "env", run, env={"WORLD_SIZE": "-1"}),
        cli("train LOCAL_RANK=x", "env", run, env={"LOCAL_RANK": "x", "WORLD_SIZE": "2", "RANK": "0"}),
        cli(
            "train LOCAL_WORLD_SIZE=0",
            "env",
            run,
            env={"LOCAL_WORLD_SIZE": "0", "WORLD_SIZE": "2", "RANK": "0"},
            timeout=240,
        ),
        cli("train OMP_NUM_THREADS=100000", "env", run, env={"OMP_NUM_THREADS": "100000"}, expect="any"),
        cli("train OMP_NUM_THREADS=abc", "env", run, env={"OMP_NUM_THREADS": "abc"}, expect="any"),
        cli(
            "detect WORLD_SIZE=2 RANK=0 no peer",
            "env",
            [*DETECT, "--out", "det"],
            env={"WORLD_SIZE": "2", "RANK": "0"},
            timeout=240,
        ),  # fmt: skip
        cli("detect WORLD_SIZE=abc", "env", [*DETECT, "--out", "det"], env={"WORLD_SIZE": "abc"}),
        cli(
            "fashion-mnist REXNET_DATA missing",
            "env",
            [*TRAIN, "--data", "fashion-mnist", "--out", "r"],
            env={"REXNET_DATA": "/nonexistent/rexnet-data"},
        ),
        cli("REXNET_STAGE_LAYERS=abc", "env", ["info", "rexnet_100"], env={"REXNET_STAGE_LAYERS": "abc"}, expect="any"),
        cli("rank study WORLD_SIZE=abc", "env", [*RANK, "--out", "rk"], env={"WORLD_SIZE": "abc"}, expect="any"),
    ]
