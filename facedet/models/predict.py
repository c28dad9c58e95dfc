"""Run a torch model (float or fake-quantized) as a ``Detector``, through the shared numpy decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from facedet.anchors import PostProcess, decode
from facedet.boxes import letterbox
from facedet.config import ModelConfig
from facedet.detections import Detections
from facedet.model_summary import summarize, totals


class TorchDetector:
    """A ``FaceDetector`` in eval mode behind the ``Detector`` protocol.

    Args:
        model: the network (put in eval mode here).
        config: its config.
        img_size: network input size (default: the config's); any multiple of the stride.
        post: score threshold, NMS IoU and cap.
    """

    def __init__(
        self, model: torch.nn.Module, config: ModelConfig, img_size: int | None = None, post: PostProcess | None = None
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.img_size = img_size or config.img_size
        if self.img_size % config.stride:
            raise ValueError(f"img_size {self.img_size} is not a multiple of the stride {config.stride}")
        self.post = post or PostProcess()
        self.name = config.name
        t = totals(summarize(config, self.img_size))
        self.stored_bytes: int | None = t["stored_bytes"]
        self.macs: int | None = t["macs"]

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, img_size: int | None = None, post: PostProcess | None = None
    ) -> TorchDetector:
        """Rebuild from a checkpoint; the input size defaults to its stored deployment size."""
        from facedet.config import deployment_img_size
        from facedet.models.checkpoint import load_model

        model, config, data = load_model(path)
        return cls(model, config, img_size or deployment_img_size(data, config), post)

    @torch.no_grad()
    def raw(self, letterboxed: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(A*5, H, W) head output for one (S, S, 3) uint8 letterboxed BGR image."""
        x = torch.from_numpy(np.ascontiguousarray(letterboxed.transpose(2, 0, 1))).float()[None]
        return self.model(x)[0].numpy()

    def detect(self, image_bgr: NDArray[np.uint8], post: PostProcess | None = None) -> Detections:
        boxed, box = letterbox(image_bgr, self.img_size, self.config.letterbox_value)
        return decode(self.raw(boxed), self.config.anchors, self.config.stride, box, post or self.post)
