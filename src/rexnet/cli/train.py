"""``rexnet train``, ``rexnet finetune``, ``rexnet eval``, ``rexnet predict``.

Every :class:`~rexnet.train.TrainConfig` field is a flag (``--batch-size``, ``--warmup-epochs``,
...); precedence: preset < ``--config FILE`` (YAML/JSON) < flags. ``--resume`` starts from the run
folder's own ``config.json`` instead of the preset. Under ``torchrun`` the same command runs DDP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._config import add_flags, flag_overrides
from ..data.build import EVAL_SPLITS, data_help
from .shell import call_with_args

__all__ = ["add_parsers", "config_from_args"]

#: Short options, and the flags of the augmentation keys from before they moved into ``aug`` (still accepted).
_ALIASES = {
    "model": ["-m"],
    "batch_size": ["-b"],
    "workers": ["-j"],
    "epochs": ["-e"],
    "out": ["-o"],
    **{f"aug.{k}": [f"--{k.replace('_', '-')}"] for k in ("hflip", "randaug_n", "randaug_m", "randaug_mstd", "reprob")},
}


def add_resume_flags(p: argparse.ArgumentParser, resume_help: str) -> None:
    """``--resume`` and ``--allow-change KEYS``: the resume rules every long job shares (``rexnet.run``)."""
    p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument(
        "--allow-change",
        metavar="KEYS",
        default="",
        help="with --resume: config keys you change on purpose, comma-separated (e.g. epochs,lr); "
        "other changes are refused",
    )


def _add_config_flags(p: argparse.ArgumentParser, preset: str = "quick") -> None:
    from ..train.config import PRESETS, TrainConfig

    p.set_defaults(default_preset=preset)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help=f"recipe preset (default: {preset})")
    p.add_argument("--config", metavar="FILE", help="YAML/JSON file of config keys (may hold 'preset')")
    add_resume_flags(p, "continue the run in --out (default: newest run folder)")
    g = p.add_argument_group(f"config fields (default: the {preset} preset's value; paper: the paper preset's)")
    add_flags(
        g,
        TrainConfig,
        defaults=TrainConfig.preset(preset),
        alt_defaults=("paper", TrainConfig.preset("paper")),
        aliases=_ALIASES,
    )


def config_from_args(args: argparse.Namespace, **forced: Any) -> Any:
    """Build the :class:`TrainConfig` a parsed command line describes."""
    return _config_and_keys(args, **forced)[0]


def _config_and_keys(args: argparse.Namespace, **forced: Any) -> tuple[Any, set[str]]:
    """The config, and the fields the user set (config file, flags): a fine-tune takes the rest from its weights."""
    from ..train.config import load_config_file, preset_config
    from ..train.run import resolve_out, resume_config

    flags = flag_overrides(args)
    file = load_config_file(args.config) if args.config else {}
    preset = args.preset or file.pop("preset", None) or getattr(args, "default_preset", "quick")
    file.pop("preset", None)
    cfg = preset_config(preset).replace(**file).replace(**flags).replace(**forced)
    if args.resume:
        out = resolve_out(cfg, resume=True)
        cfg = resume_config(out).replace(**file).replace(**flags).replace(**forced).replace(out=str(out))
    return cfg, {*file, *flags, *forced}


def _train(args: argparse.Namespace, **forced: Any) -> int:
    from ..train import train

    cfg, given = _config_and_keys(args, **forced)
    if args.allow_change and not args.resume:
        from ..errors import InputError

        raise InputError(f"--allow-change {args.allow_change} needs --resume")
    # a resumed run's config.json is the user's setting throughout; a fresh fine-tune follows its weights elsewhere
    explicit = None if args.resume else given
    res = train(cfg, resume=args.resume, allow_change=args.allow_change.split(","), explicit=explicit)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank:
            return 0
    m = res.metrics
    print(f"run folder: {res.out_dir}")
    if m.get("epochs_completed"):
        from ..data.evaluation import topk_label

        top5 = topk_label(m, m.get("num_classes"), key="val_top5").replace("  ", ", ", 1)
        print(
            f"status: {res.status}; epochs {m['epochs_completed']}/{cfg.epochs}; "
            f"val top-1 {res.val_top1:.2f}% (best {res.best_top1:.2f}% at epoch {m.get('best_epoch')})"
            f"{top5}; {m.get('total_seconds', 0):.0f}s"
        )
    else:
        print(f"status: {res.status}; no epoch completed yet")
    if m.get("skipped_images"):
        print(f"skipped {len(m['skipped_images'])} unreadable image(s):")
        for s in m["skipped_images"]:
            print(f"  {s['path']}: {s['reason']}")
    if res.status != "completed":
        print(f"interrupted; continue with: rexnet train --resume --out {res.out_dir}", file=sys.stderr)
        return 130
    return 0


def _finetune(args: argparse.Namespace) -> int:
    if not args.cfg_pretrained and not args.resume:
        print("rexnet finetune: error: --pretrained WEIGHTS is required", file=sys.stderr)
        return 2
    return _train(args)


def _is_exported(args: argparse.Namespace) -> bool:
    """Whether ``-c`` names a file of a runtime in ``RUNTIMES`` (or ``--runtime`` asks for one)."""
    from ..deploy.runtime import is_exported_model

    return bool(args.runtime) or is_exported_model(args.checkpoint)


def _eval(args: argparse.Namespace) -> int:
    if _is_exported(args):
        from .deploy import eval_exported

        return eval_exported(args)  # without --data: the data the file records
    from ..data.evaluation import topk_label
    from ..train import evaluate_checkpoint
    from .deploy import print_per_class

    res = call_with_args(evaluate_checkpoint, args, confusion_png=args.confusion)
    print(
        f"{res['model']} on {res['data']} {res['split']} ({res['count']} images): "
        f"top-1 {res['top1']:.2f}%{topk_label(res)}  loss {res['loss']:.4f}"
    )
    print_per_class(res, args.per_class)
    if res["skipped"]:
        print(f"skipped {len(res['skipped'])} unreadable image(s): " + ", ".join(s["path"] for s in res["skipped"]))
    written = [str(p) for p in (args.out, args.confusion, args.predictions) if p]
    if args.out and not args.confusion:
        written.insert(1, str(Path(args.out).with_suffix(".png")))
    if written:
        print("wrote " + ", ".join(written))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..data import list_image_files

    args.images = list_image_files(args.images)  # folders and globs, for every runtime
    if _is_exported(args):
        from .deploy import predict_exported

        return predict_exported(args)
    from ..train import predict_files

    res = call_with_args(predict_files, args)
    from .deploy import print_predictions

    return print_predictions(res, as_json=args.json, out=args.out)


def _add_overwrite_flag(p: argparse.ArgumentParser, outputs: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {outputs} even if this run did not write it")


def _add_runtime_flag(p: argparse.ArgumentParser) -> None:
    """``--runtime``, its choices and help generated from the runtime registry."""
    from ..deploy.runtime import RUNTIMES, runtime_help

    p.add_argument("--runtime", default=None, choices=list(RUNTIMES), help=runtime_help())


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train``, ``finetune``, ``eval`` and ``predict``."""
    p = sub.add_parser(
        "train",
        help="train a model (default: rexnet_100 on the embedded digits, quick preset)",
        description="Train with the paper's recipe (--preset paper) or the quick demo preset. "
        "Writes config.json, metrics.jsonl, summary.json, checkpoints/, curves.png.",
    )
    _add_config_flags(p)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "finetune",
        help="train from --pretrained weights with a new head (--freeze-backbone); preset finetune",
        description="Same flags as 'train', with the finetune preset (10 epochs at a fine-tuning LR) by default; "
        "--pretrained is required (a weights file, a run folder, a model name, local-dir:DIR or hf-hub:ORG/NAME), "
        "the classifier is replaced for --num-classes (default: the dataset's). The model, image size, "
        "interpolation, crop and mean/std follow the weights' pretrained_cfg unless given (the log says which).",
    )
    _add_config_flags(p, preset="finetune")
    p.set_defaults(func=_finetune)

    p = sub.add_parser(
        "eval",
        help="top-1, per-class precision/recall and confusion matrix of a checkpoint",
        description="Evaluate a run (folder or checkpoint) on the data it was trained on, with its image size, "
        "preprocessing and class names, or on --data. -o writes the results JSON and the confusion matrix "
        "next to it (.png); --predictions writes each image's path, label, prediction and top-k.",
    )
    p.add_argument("-m", "--model", default=None, help="model name (default: the one the checkpoint records or fits)")
    p.add_argument("-c", "--checkpoint", required=True, help="a run folder, its checkpoints/best.pt, or a weights file")
    p.add_argument(
        "--data",
        default=None,
        help=f"{data_help()} (default: the data the run or exported file was trained on; required for a bare "
        "weights file)",
    )
    p.add_argument(
        "--split",
        default=None,
        choices=EVAL_SPLITS,
        help="val: the held-out split; test: the official test split (fashion-mnist, mnist, a folder's test/); "
        "all: every image (default: val on the run's own data, all for a folder of class folders, else val)",
    )
    p.add_argument("--image-size", type=int, default=None, help="crop size (default: the training size)")
    p.add_argument("-b", "--batch-size", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("-j", "--workers", type=int, default=0, help="DataLoader workers (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16", "auto"], help="autocast (default: none)")
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights of a training checkpoint")
    p.add_argument("--strict", action="store_true", help="fail on an unreadable image")
    p.add_argument("--per-class", action="store_true", help="print per-class accuracy")
    p.add_argument("-o", "--out", default=None, help="write results JSON here (+ confusion matrix .png next to it)")
    p.add_argument("--confusion", default=None, help="write the confusion-matrix image here")
    p.add_argument(
        "--predictions",
        metavar="FILE",
        default=None,
        help="write each image's path, label, prediction and top-k here (.csv, .jsonl, or .json)",
    )
    p.add_argument("-k", "--top-k", type=int, default=5, help="classes per image in --predictions (default: 5)")
    _add_overwrite_flag(p, "an existing -o/--confusion/--predictions file")
    _add_runtime_flag(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "predict",
        help="top-k classes for image files, folders or globs",
        description="Predict with the image size, preprocessing and class names the run was trained with.",
    )
    p.add_argument("images", nargs="+", help="image files, folders (searched recursively for images) or globs")
    p.add_argument("-m", "--model", default=None, help="model name (default: the one the checkpoint records or fits)")
    p.add_argument("-c", "--checkpoint", required=True, help="a run folder, its checkpoints/best.pt, or a weights file")
    p.add_argument("-k", "--top-k", type=int, default=5, help="classes per image (default: 5, at most the class count)")
    p.add_argument("--image-size", type=int, default=None, help="crop size (default: the training size)")
    p.add_argument("--ema", action="store_true", help="use the EMA weights of a training checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "-o",
        "--out",
        default=None,
        help="also write the results here: .csv (one row per image), .jsonl (JSON lines), else one JSON list",
    )
    _add_overwrite_flag(p, "an existing -o file")
    _add_runtime_flag(p)
    p.set_defaults(func=_predict)
