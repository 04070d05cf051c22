"""``rexnet detect train|eval|predict|export|table``: detectors on ReXNet backbones (paper Tables 6, 7, 9)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields

from ..detection import DETECTORS
from ..detection.engine import DetectConfig, load_detector, train_detector


def _train(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in fields(DetectConfig) if getattr(args, f.name, None) is not None}
    cfg = DetectConfig(**overrides, progress=not args.no_progress)
    summary = train_detector(cfg, args.out, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    metrics = {
        k: round(v, 2) for k, v in summary.items() if k.startswith("val_") and k.endswith(("AP", "AP50", "AP75"))
    }
    print(f"wrote {args.out}: {json.dumps(metrics)}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..detection.data import load_detection_data
    from ..detection.evaluate import evaluate_coco

    model, meta = load_detector(args.checkpoint)
    cfg = meta["config"]
    data = args.data or cfg["data"]
    ds = load_detection_data(data, args.split, image_size=cfg["image_size"], masks=cfg["masks"], limit=args.limit)
    metrics = evaluate_coco(model, ds, batch_size=args.batch_size)
    print(json.dumps({k: round(v, 3) for k, v in metrics.items()}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..detection.inference import predict_image

    model, meta = load_detector(args.checkpoint)
    for image in args.images:
        out_png = Path(args.out) / f"{Path(image).stem}_detections.png"
        dets = predict_image(model, image, out_png, meta["class_names"], score_thresh=args.score_thresh)
        print(f"{image}: {len(dets)} detections -> {out_png}")
        for d in dets:
            print(f"  {d['label']} {d['score']:.3f} {d['box']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..detection.inference import export_ssdlite_onnx

    model, meta = load_detector(args.checkpoint)
    if meta["config"]["arch"] != "ssdlite":
        from ..errors import InputError

        raise InputError(f"ONNX export covers SSDLite; {args.checkpoint} holds {meta['config']['arch']!r}")
    res = export_ssdlite_onnx(model, args.out, opset=args.opset, verify=not args.no_verify)
    print(
        f"wrote {res.path}; onnxruntime vs eager max |diff|: boxes {res.max_abs_diff_boxes:.3g} px, "
        f"scores {res.max_abs_diff_scores:.3g}"
    )
    return 0


def _table(args: argparse.Namespace) -> int:
    from ..detection.cost import paper_comparison

    rows = paper_comparison()
    print("| table | detector | backbone | params (M) | paper | gap | GMACs | paper | gap |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['table']} | {r['arch']} | {r['backbone']} | {r['params_m']:.3f} | {r['paper_params_m']} | "
            f"{r['params_gap_pct']:+.2f} % | {r['macs_b']:.2f} | {r['paper_macs_b']} | {r['macs_gap_pct']:+.2f} % |"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    det = sub.add_parser("detect", help="object detection / instance segmentation with ReXNet backbones")
    dsub = det.add_subparsers(dest="detect_command", metavar="ACTION", required=True)

    p = dsub.add_parser("train", help="train a detector into a run folder (demo set or a COCO folder)")
    p.add_argument("-o", "--out", required=True, help="run folder (config.json, metrics.jsonl, checkpoints/)")
    p.add_argument("--arch", choices=tuple(DETECTORS), default=None, help="detector (default: ssdlite)")
    p.add_argument("-m", "--backbone", default=None, help="zoo model name (default: rexnet_100)")
    p.add_argument(
        "--data",
        default=None,
        help="'demo' (embedded, default) or a COCO folder with instances_{train,val}.json + train/ val/",
    )
    p.add_argument("--pretrained-backbone", default=None, help="classification weights for the backbone")
    for name, typ, help_ in (
        ("image_size", int, "input side; demo canvas size (default: 128)"),
        ("epochs", int, "epochs (default: 12)"),
        ("batch_size", int, "images per step (default: 16)"),
        ("lr", float, "peak learning rate (default: 2e-3)"),
        ("weight_decay", float, "weight decay, not on BN/bias (default: 1e-4)"),
        ("seed", int, "seed (default: 0)"),
        ("train_limit", int, "use only the first N training images"),
        ("val_limit", int, "use only the first N validation images"),
        ("eval_every", int, "COCO eval every N epochs (default: only at the end)"),
        ("threads", int, "torch threads (default: torch's choice)"),
    ):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None, help=help_)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=None, help="optimizer (default: adamw)")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = dsub.add_parser("eval", help="COCO mAP of a trained detector")
    p.add_argument("checkpoint", help="checkpoints/best.pt or last.pt of a run")
    p.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    p.add_argument("--split", default="val", help="split (default: val)")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    p.set_defaults(func=_eval)

    p = dsub.add_parser("predict", help="detect objects in images and draw them (PNG)")
    p.add_argument("checkpoint", help="a run's checkpoint")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("-o", "--out", default=".", help="folder for the *_detections.png files (default: .)")
    p.add_argument("--score-thresh", type=float, default=0.5, help="minimum score (default: 0.5)")
    p.set_defaults(func=_predict)

    p = dsub.add_parser("export", help="export a trained SSDLite to ONNX and check it in onnxruntime")
    p.add_argument("checkpoint", help="a run's checkpoint (arch ssdlite)")
    p.add_argument("-o", "--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    p.set_defaults(func=_export)

    p = dsub.add_parser("table", help="params/MACs of the paper's Tables 6, 7, 9 built here, next to the paper's")
    p.set_defaults(func=_table)
