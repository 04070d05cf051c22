"""Training step, COCO evaluation, run folder / resume, predictions and ONNX export."""

import json

import pytest
import torch
from torch import nn

from rexnet.detection import ssdlite_rexnet
from rexnet.detection.data import collate, make_demo_detection
from rexnet.detection.engine import DetectConfig, fit_detector, load_detector
from rexnet.detection.evaluate import evaluate_coco
from rexnet.detection.inference import export_ssdlite_onnx, predict_image
from rexnet.errors import RexnetError


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    data = make_demo_detection("train", image_size=96, num_images=4)
    images, targets = collate([data[i] for i in range(4)])
    model = ssdlite_rexnet("rexnet_060", num_classes=data.num_classes, image_size=96).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0], losses


class _Oracle(nn.Module):
    """Returns the ground truth (optionally shifted) as detections: COCO AP must be 100 (or 0)."""

    def __init__(self, data, shift: float = 0.0, masks: bool = False):
        super().__init__()
        self.data, self.shift, self.masks = data, shift, masks
        self.by_id = {int(data[i][1]["image_id"]): data[i][1] for i in range(len(data))}
        self.calls = iter(range(len(data)))

    def forward(self, images):
        outs = []
        for _ in images:
            t = self.data[next(self.calls)][1]
            out = dict(boxes=t["boxes"] + self.shift, scores=torch.ones(len(t["boxes"])), labels=t["labels"])
            if self.masks:
                out["masks"] = t["masks"][:, None].float()
            outs.append(out)
        return outs


def test_coco_eval_scores_the_ground_truth_100_and_misses_0():
    data = make_demo_detection("val", image_size=96, num_images=6)
    perfect = evaluate_coco(_Oracle(data, masks=True), data, batch_size=4)
    assert perfect["bbox_AP"] == pytest.approx(100) and perfect["bbox_AP50"] == pytest.approx(100)
    assert perfect["segm_AP"] == pytest.approx(100)
    missed = evaluate_coco(_Oracle(data, shift=60.0), data, batch_size=4)
    assert missed["bbox_AP"] == pytest.approx(0) and "segm_AP" not in missed


@pytest.mark.slow
def test_fit_writes_run_folder_resumes_exactly_and_reloads(tmp_path):
    train = make_demo_detection("train", image_size=80, num_images=8)
    val = make_demo_detection("val", image_size=80, num_images=3)
    cfg = DetectConfig(
        backbone="rexnet_060", image_size=80, epochs=2, batch_size=4, progress=False, threads=1, warmup_iters=2
    )
    straight = fit_detector(cfg, train, val, tmp_path / "straight")
    out = tmp_path / "run"
    fit_detector(cfg, train, val, out, stop_after=1)
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl", "summary.json", "checkpoints"}
    summary = fit_detector(cfg, train, val, out, resume=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and summary["epochs_run"] == 2
    assert 0 <= summary["val_bbox_AP"] <= 100 and "val_bbox_AP50" in rows[-1]
    assert summary["val_bbox_AP"] == straight["val_bbox_AP"]
    a = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())  # resume is exact
    model, meta = load_detector(out / "checkpoints" / "last.pt")
    assert meta["epoch"] == 2 and meta["class_names"][0] == "0"
    assert all(torch.equal(v, a[k]) for k, v in model.state_dict().items())
    with pytest.raises(RexnetError, match="unknown detection config key .bogus."):
        DetectConfig.from_dict({"bogus": 1})


def test_predict_draws_png_and_onnx_matches_eager(tmp_path):
    from torchvision.io import decode_image, write_png

    torch.manual_seed(0)
    model = ssdlite_rexnet("rexnet_060", num_classes=11, image_size=96, score_thresh=0.0).eval()
    for m in model.head.modules():  # make the raw outputs non-trivial
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.3)
    img_path = tmp_path / "in.png"
    write_png(make_demo_detection("val", image_size=96, num_images=1).load_image(1), str(img_path))
    dets = predict_image(model, img_path, tmp_path / "out.png", [str(i) for i in range(10)], score_thresh=0.0)
    assert dets and set(dets[0]) == {"label", "score", "box"}
    drawn = decode_image(str(tmp_path / "out.png"))
    # drawn at a readable size: scaled up (nearest) by a whole factor to >= 512 px (6 x 96), boxes on top
    plain = decode_image(str(img_path)).repeat_interleave(6, dim=-2).repeat_interleave(6, dim=-1)
    assert drawn.shape == (3, 576, 576) and not torch.equal(drawn, plain)
    res = export_ssdlite_onnx(model, tmp_path / "m.onnx")
    assert res.path.is_file() and res.max_abs_diff_boxes < 1e-3 and res.max_abs_diff_scores < 1e-4


def test_predict_draws_masks(tmp_path):
    from torchvision.io import decode_image, write_png

    from rexnet.detection import maskrcnn_rexnet_fpn

    torch.manual_seed(0)
    model = maskrcnn_rexnet_fpn(
        "rexnet_060",
        num_classes=3,
        min_size=96,
        max_size=96,
        rpn_post_nms_top_n_test=20,
        box_detections_per_img=5,
        box_score_thresh=0.0,
    ).eval()
    img_path = tmp_path / "in.png"
    write_png(make_demo_detection("val", image_size=96, num_images=1).load_image(1), str(img_path))
    dets = predict_image(model, img_path, tmp_path / "out.png", ["a", "b"], score_thresh=0.0)
    assert 0 < len(dets) <= 5 and dets[0]["label"] in ("a", "b")
    assert decode_image(str(tmp_path / "out.png")).shape == (3, 576, 576)  # 6 x 96: readable, >= 512 px
