"""Detection and instance segmentation with ReXNet backbones on torchvision's detectors (paper Tables 6, 7, 9)."""

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
    "SSDLiteBoxGenerator",
    "create_detector",
    "fasterrcnn_rexnet_fpn",
    "maskrcnn_rexnet_fpn",
    "ssdlite_rexnet",
]
