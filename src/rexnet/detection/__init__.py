"""Detection and instance segmentation with ReXNet backbones on torchvision's detectors (paper Tables 6, 7, 9).

Example:
    >>> from rexnet.detection import fasterrcnn_rexnet_fpn
    >>> model = fasterrcnn_rexnet_fpn("rexnet_090")  # 20.16 M parameters; the paper's Table 7: 20.1 M
"""

from .config import DetectConfig
from .cost import PAPER_TABLE, count_detector_macs, count_detector_params, paper_comparison
from .data import CocoFolder, DetectionDataset, load_detection_data, make_demo_detection, write_coco
from .engine import fit_detector, load_detector, train_detector
from .evaluate import evaluate_coco, evaluate_detector
from .inference import export_ssdlite_onnx, predict_image
from .models import (
    DETECTORS,
    SSDLiteBoxGenerator,
    create_detector,
    fasterrcnn_rexnet_fpn,
    maskrcnn_rexnet_fpn,
    ssdlite_rexnet,
)

__all__ = [
    "DETECTORS",
    "PAPER_TABLE",
    "CocoFolder",
    "DetectConfig",
    "DetectionDataset",
    "SSDLiteBoxGenerator",
    "count_detector_macs",
    "count_detector_params",
    "create_detector",
    "evaluate_coco",
    "evaluate_detector",
    "export_ssdlite_onnx",
    "fasterrcnn_rexnet_fpn",
    "fit_detector",
    "load_detection_data",
    "load_detector",
    "make_demo_detection",
    "maskrcnn_rexnet_fpn",
    "paper_comparison",
    "predict_image",
    "ssdlite_rexnet",
    "train_detector",
    "write_coco",
]
