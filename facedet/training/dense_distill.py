"""Dense distillation from a trained facedet detector with the same head layout (``--teacher-model``).

Where ``--teacher`` adds the faces a peer found to the annotation, a teacher *model* (in practice
the float Tiny-YOLO: 74x the weights of IFQ, 0.03 higher on FDDB) is run on every training batch
and each prediction slot (image, anchor, row, column) of the student learns the teacher's output
at the same slot (the objectness and the objectness-scaled box terms of Mehta & Ozturk 2018,
"Object detection at 200 frames per second"):

- ``kd_obj`` = sum over slots of KL(Bernoulli(sig(t)) || Bernoulli(sig(s))) = BCE(s, sig(t)) -
  H(sig(t)) for objectness logits s (student) and t (teacher): zero when the two agree; the soft
  targets say how face-like every background slot is, which hard labels do not;
- ``kd_box`` = sum over slots of sig(t) * [(sig(s_xy) - sig(t_xy))^2 + (s_wh - t_wh)^2]: the
  teacher's box where the teacher believes in a face, in the region loss's coordinates.

Both are divided by the batch size, like the region loss they are added to. The slots only mean
the same thing when stride and anchors are the same: the student takes the teacher's anchors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from facedet.config import ModelConfig
from facedet.models.checkpoint import load_model


class Teacher:
    """A frozen detector in eval mode whose raw head maps are the distillation targets.

    Args:
        path: a facedet checkpoint (float16 weights load as float32).
        student: the student's model config; stride and anchors must be the teacher's (a fresh run
            takes them, ``fit_anchors``; a resumed run with other anchors is refused here).
        device: where the teacher runs.
        bf16: run it under bfloat16 autocast in channels-last layout (Tiny-YOLO on a CPU with
            AVX-512 bf16: several times faster; the targets move by well under the student's error).
    """

    def __init__(self, path: str, student: ModelConfig, device: torch.device, bf16: bool = True) -> None:
        model, config, _ = load_model(path)
        if config.stride != student.stride or config.anchors != student.anchors:
            raise ValueError(
                f"teacher {path} ({config.name}: stride {config.stride}, anchors {config.anchors}) does not match "
                f"the student ({student.name}: stride {student.stride}, anchors {student.anchors})"
            )
        for p in model.parameters():
            p.requires_grad_(False)
        self.bf16 = bf16 and device.type == "cpu"
        layout = torch.channels_last if self.bf16 else torch.contiguous_format
        self.model = model.float().to(device, memory_format=layout).eval()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """(B, A*5, H, W) float32 raw head maps of a (B, 3, S, S) 0..255 batch."""
        if self.bf16:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(images).float().contiguous()


def dense_distill_loss(student_raw: Tensor, teacher_raw: Tensor, num_anchors: int) -> dict[str, Tensor]:
    """``{"kd_obj", "kd_box"}``: the distillation terms (sums over slots / batch size).

    Args:
        student_raw: (B, A*5, H, W) the student's head output (channel ``a*5 + k`` = tx, ty, tw, th,
            objectness logit of anchor a, as ``facedet.loss.region_loss`` reads it).
        teacher_raw: the teacher's, same shape (no gradient flows into it).
        num_anchors: A.
    """
    if student_raw.shape != teacher_raw.shape:
        raise ValueError(f"student head {tuple(student_raw.shape)} and teacher head {tuple(teacher_raw.shape)} differ")
    batch, _, height, width = student_raw.shape
    s = student_raw.view(batch, num_anchors, 5, height, width)
    t = teacher_raw.detach().view(batch, num_anchors, 5, height, width)
    t_prob = torch.sigmoid(t[:, :, 4])  # (B, A, H, W)
    # KL = BCE(s, p) - H(p); H(p) = BCE(t, p) (the logits of p are t)
    kd_obj = F.binary_cross_entropy_with_logits(s[:, :, 4], t_prob, reduction="sum") - (
        F.binary_cross_entropy_with_logits(t[:, :, 4], t_prob, reduction="sum")
    )
    xy = (torch.sigmoid(s[:, :, :2]) - torch.sigmoid(t[:, :, :2])) ** 2  # (B, A, 2, H, W)
    wh = (s[:, :, 2:4] - t[:, :, 2:4]) ** 2
    kd_box = (t_prob * (xy.sum(2) + wh.sum(2))).sum()
    return {"kd_obj": kd_obj / batch, "kd_box": kd_box / batch}
