"""Augmentation policies (albumentations), the ONLY module of facedet importing albumentations.

``build_transforms(policy, size)`` returns one ``A.Compose`` per named policy (torchvision
references/detection/presets.py shape); an unknown name raises ``ValueError``.

Call convention (both policies)::

    out = transform(image=bgr_uint8_hwc, bboxes=float32 (K, 4) xyxy, ignore=int (K,))
    out["image"]  # (size, size, 3) uint8, letterboxed: top-left aligned, padded with 114
    out["bboxes"], out["ignore"]  # surviving boxes (network pixels) and their ignore flags

The ``ignore`` label field travels with the boxes, so a crop that drops a box drops its flag.
"""

from __future__ import annotations

import albumentations as A
import cv2

from facedet.data.scale_sampling import PAD_VALUE, ScaleAwareCrop

POLICIES = ("train", "scale", "eval")


def _letterbox(size: int) -> list[A.BasicTransform]:
    # Longest side -> size (INTER_AREA when shrinking, LINEAR when enlarging, as boxes.letterbox),
    # then pad right and bottom: the geometry facedet.boxes.letterbox and Letterbox.to_original use.
    return [
        A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR, area_for_downscale="image"),
        A.PadIfNeeded(
            min_height=size, min_width=size, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE
        ),
    ]


def _bbox_params(min_visibility: float) -> A.BboxParams:
    return A.BboxParams(
        format="pascal_voc",
        label_fields=["ignore"],
        min_visibility=min_visibility,
        clip=True,  # boxes touching the border by rounding stay valid
        filter_invalid_bboxes=True,
    )


def _colour_jitter() -> A.ColorJitter:
    # darknet's exposure / saturation / hue jitter
    return A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.5, hue=0.03, p=0.8)


def _photometric(gray: float) -> list[A.BasicTransform]:
    # Colour jitter, then (with probability ``gray``) the BT.601 luma in all three channels: a
    # detector that has only seen colour leans on skin hue and loses faces in grayscale photos
    # and IR cameras. No ToGray at 0, so older runs draw the same random stream.
    return [_colour_jitter()] + ([A.ToGray(num_output_channels=3, p=gray)] if gray > 0 else [])


def build_transforms(
    policy: str, size: int, min_height: float = 16.0, max_height: float = 320.0, gray: float = 0.0
) -> A.Compose | ScaleAwareCrop:
    """The named augmentation pipeline producing ``size`` x ``size`` letterboxed images.

    Policies:
        ``"eval"``: letterbox only (deterministic; equals ``facedet.boxes.letterbox``).
        ``"train"``: letterbox-resize, random scale 0.75x to 2x (biased to zoom-in: WIDER is
            full of faces too small for a stride-32 grid, FDDB faces are large and frontal, so
            enlarging faces helps both), a random ``size`` crop of the padded canvas that keeps
            at least one face when there is one, horizontal flip, colour jitter (brightness,
            contrast, saturation, small hue: darknet's exposure/saturation/hue), and a final
            letterbox so the output size is fixed. Boxes less than 35% visible after the crop
            are dropped. No mosaic: WIDER images are already crowded and mosaic would shrink
            faces further.

        ``"scale"``: scale-aware face-centred crops (``facedet.data.scale_sampling``): a face's
            box height is drawn log-uniformly in [``min_height``, ``max_height``] pixels, then
            flip and colour jitter. The policy that matches the deployment input's face sizes.

        Both training policies turn the image gray with probability ``gray`` after the jitter.

    Raises:
        ValueError: unknown policy.
    """
    if policy == "eval":
        return A.Compose(_letterbox(size), bbox_params=_bbox_params(0.0))
    if policy == "train":
        return A.Compose(
            [
                A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_LINEAR, area_for_downscale="image"),
                # Scale factor 1 + U(-0.25, 1.0): 80% of draws enlarge the image (zoom in).
                A.RandomScale(scale_limit=(-0.25, 1.0), interpolation=cv2.INTER_LINEAR, p=0.8),
                A.PadIfNeeded(
                    min_height=size, min_width=size, position="random", border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE
                ),
                A.AtLeastOneBBoxRandomCrop(height=size, width=size),
                A.HorizontalFlip(p=0.5),
                *_photometric(gray),
                *_letterbox(size),
            ],
            bbox_params=_bbox_params(0.35),
        )
    if policy == "scale":
        return ScaleAwareCrop(size, min_height, max_height, photometric=A.Compose(_photometric(gray)))
    raise ValueError(f"unknown augmentation policy {policy!r}; choose one of {POLICIES}")
