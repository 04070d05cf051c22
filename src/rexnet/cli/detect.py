"""``rexnet detect train|eval|predict|export|table``: detectors on ReXNet backbones (paper Tables 6, 7, 9)."""

from __future__ import annotations

import argparse
import json
import sys

from .._config import add_flags, flag_overrides
from .._env import dist_env
from ..detection.config import DetectConfig
from ..detection.engine import load_detector, resume_detect_config, train_detector
from ..errors import InputError
from .train import add_resume_flags


def _train(args: argparse.Namespace) -> int:
    flags = flag_overrides(args)
    allow = [a for a in args.allow_change.split(",") if a.strip()]
    if allow and not args.resume:
        raise InputError(f"--allow-change {args.allow_change} needs --resume")
    cfg = resume_detect_config(args.out, **flags) if args.resume else DetectConfig.from_dict(flags)
    summary = train_detector(cfg, args.out, resume=args.resume, allow_change=allow)
    if dist_env().rank != 0:  # torchrun: rank 0 reports
        return 0
    metrics = {
        k: round(v, 2) for k, v in summary.items() if k.startswith("val_") and k.endswith(("AP", "AP50", "AP75"))
    }
    print(f"wrote {args.out}: {json.dumps(metrics)}")
    if summary["status"] != "completed":
        print(f"interrupted; continue with: rexnet detect train --resume --out {args.out}", file=sys.stderr)
        return 130
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..detection.evaluate import evaluate_detector

    res = evaluate_detector(args.checkpoint, args.data, split=args.split, limit=args.limit, batch_size=args.batch_size)
    print(f"{args.checkpoint} on {res['data']} {res['split']} at {res['image_size']} px", file=sys.stderr)
    print(json.dumps({k: round(v, 3) for k, v in res.items() if isinstance(v, float)}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .._files import check_output
    from ..detection.inference import predict_image

    outs = [Path(args.out) / f"{Path(image).stem}_detections.png" for image in args.images]
    same = sorted({str(o) for o in outs if outs.count(o) > 1})
    if same:  # a.png and a.jpg would draw onto one file, the second replacing the first
        raise InputError(f"images with the same name would write one file: {', '.join(same)}; predict them apart")
    for out_png in outs:  # every output path checked before any model is loaded or image read
        check_output(out_png, overwrite=args.overwrite, what="detections image")
    model, meta = load_detector(args.checkpoint)
    for image, out_png in zip(args.images, outs):
        dets = predict_image(
            model, image, out_png, meta["class_names"], score_thresh=args.score_thresh, overwrite=args.overwrite
        )
        print(f"{image}: {len(dets)} detections -> {out_png}")
        for d in dets:
            print(f"  {d['label']} {d['score']:.3f} {d['box']}")
    return 0


def _demo_image(args: argparse.Namespace) -> int:
    from ..detection.inference import write_demo_image

    path = write_demo_image(args.out, image_size=args.image_size, index=args.index, overwrite=args.overwrite)
    print(f"wrote {path}; try: rexnet detect predict RUN {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .._files import check_output
    from ..detection.inference import export_ssdlite_onnx

    check_output(args.out, overwrite=args.overwrite, what="ONNX file")  # before loading anything
    model, meta = load_detector(args.checkpoint)
    if meta["config"]["arch"] != "ssdlite":
        raise InputError(f"ONNX export covers SSDLite; {args.checkpoint} holds {meta['config']['arch']!r}")
    res = export_ssdlite_onnx(model, args.out, opset=args.opset, verify=not args.no_verify, overwrite=args.overwrite)
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
    add_resume_flags(p, "continue the run in --out from checkpoints/last.pt")
    add_flags(p.add_argument_group("config fields"), DetectConfig, aliases={"backbone": ["-m"]})
    p.set_defaults(func=_train)

    p = dsub.add_parser("eval", help="COCO mAP of a trained detector")
    p.add_argument("checkpoint", help="a detection run folder, or its checkpoints/best.pt or last.pt")
    p.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    p.add_argument("--split", default="val", help="split (default: val)")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    p.set_defaults(func=_eval)

    p = dsub.add_parser("predict", help="detect objects in images and draw them (PNG)")
    p.add_argument("checkpoint", help="a detection run folder or one of its checkpoints")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("-o", "--out", default=".", help="folder for the *_detections.png files (default: .)")
    p.add_argument("--score-thresh", type=float, default=0.5, help="minimum score (default: 0.5)")
    p.add_argument("--overwrite", action="store_true", help="replace *_detections.png files this run did not write")
    p.set_defaults(func=_predict)

    p = dsub.add_parser("demo-image", help="write an image of the embedded demo set (PNG) to try predict on")
    p.add_argument("out", help="output .png file")
    p.add_argument("--image-size", type=int, default=128, help="canvas side, >= 64 (default: 128, as detect train)")
    p.add_argument("--index", type=int, default=0, help="which demo val image (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file this run did not write")
    p.set_defaults(func=_demo_image)

    p = dsub.add_parser("export", help="export a trained SSDLite to ONNX and check it in onnxruntime")
    p.add_argument("checkpoint", help="a detection run folder (arch ssdlite) or one of its checkpoints")
    p.add_argument("-o", "--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file this run did not write")
    p.set_defaults(func=_export)

    p = dsub.add_parser("table", help="params/MACs of the paper's Tables 6, 7, 9 built here, next to the paper's")
    p.set_defaults(func=_table)
