"""``detect demo-image`` writes an image to try; ``detect predict`` draws it at a readable size (issue 22)."""

from __future__ import annotations

import torch
from torchvision.io import read_image

from rexnet._files import forget_written
from rexnet.cli import main


def test_demo_image_then_predict_draws_at_least_512_px(tiny_checkpoint, tmp_path, capsys):
    img = tmp_path / "demo.png"
    assert main(["detect", "demo-image", str(img), "--image-size", "64"]) == 0
    assert "detect predict" in capsys.readouterr().out
    demo = read_image(str(img))
    assert demo.shape == (3, 64, 64) and demo.float().std() > 0  # a real picture, not a blank
    forget_written(img)  # as if another run wrote it
    assert main(["detect", "demo-image", str(img)]) == 2  # the output policy: a file not written by this run
    assert "--overwrite" in capsys.readouterr().err

    out = tmp_path / "pred"
    assert main(["detect", "predict", str(tiny_checkpoint[1]), str(img), "-o", str(out), "--score-thresh", "0"]) == 0
    drawn = read_image(str(out / "demo_detections.png"))
    assert drawn.shape == (3, 512, 512)  # 64 px upscaled by a whole factor 8
    # a filled label background: the drawing holds solid red label boxes the demo image has not
    red = (drawn[0] == 255) & (drawn[1] == 0) & (drawn[2] == 0)
    assert red.sum() > 10 * 512
    # the printed boxes stay in the image's own pixels
    boxes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert boxes and max(float(v) for b in boxes for v in b.split("[")[1].rstrip("]").split(",")) <= 64


def test_upscale_keeps_a_large_image_as_is():
    from rexnet.detection.inference import upscale_for_drawing

    img = torch.zeros(3, 600, 300, dtype=torch.uint8)
    out, boxes, _ = upscale_for_drawing(img, torch.tensor([[1.0, 2.0, 3.0, 4.0]]), None, 512)
    assert out.shape == (3, 600, 300) and boxes.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    out, boxes, _ = upscale_for_drawing(
        torch.zeros(3, 100, 50, dtype=torch.uint8), torch.tensor([[1.0, 2.0, 3.0, 4.0]]), None, 512
    )
    assert out.shape == (3, 600, 300) and boxes.tolist() == [[6.0, 12.0, 18.0, 24.0]]
