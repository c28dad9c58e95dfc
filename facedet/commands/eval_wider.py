"""``facedet eval wider``: COCO AP50 / AP50:95 on WIDER val, with a bootstrap interval or a paired
comparison of two models on the same images.

    facedet eval wider --data-root DIR --model A.fdet [--min-face 48] [--gray] [--bootstrap 1000]
    facedet eval wider --data-root DIR --model A.fdet --versus B.fdet --min-face 16 48

With ``--versus`` both models see the same images and the difference A - B gets a 95% interval
from a paired bootstrap over the images (``facedet.evaluation.bootstrap``): a difference whose
interval holds 0 is within what another draw of val images could reverse.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facedet.commands.common import UsageError, existing_dir, positive_int, score

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from facedet.data.wider import WiderSample
    from facedet.detections import Detections, Detector
    from facedet.evaluation.bootstrap import ImageMatches

ModelLoader = Callable[[Path, "int | None", float], "Detector"]
GroundTruth = list[tuple["NDArray[np.float64]", "NDArray[np.bool_]"]]


def add_arguments(wider: argparse.ArgumentParser) -> None:
    """Flags of ``facedet eval wider`` (the engine flags are added by the caller)."""
    wider.add_argument(
        "--data-root", type=Path, default=Path("data"), help="WIDER root (WIDER_val/, wider_face_split/); default data"
    )
    which = wider.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="PATH", help="a .fdet integer model or .pt checkpoint")
    which.add_argument("--peer", metavar="NAME", help="a peer detector instead, e.g. haar")
    wider.add_argument(
        "--versus",
        metavar="PATH",
        default=None,
        help="a second model file to compare with on the same images (paired bootstrap of the AP50 difference)",
    )
    wider.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="N",
        help="image resamples for the 95%% intervals (default: 1000 with --versus, none without; 0 turns it off)",
    )
    wider.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (0)")
    wider.add_argument("--img-size", type=int, default=None, help="network input size in pixels (model default)")
    wider.add_argument("--max-images", type=positive_int, default=None, help="score only the first N images")
    wider.add_argument(
        "--held-out",
        type=_subset_spec,
        action="append",
        default=[],
        metavar="N:SEED",
        help="score only the images outside the N-image subset that a training run with --max-val-images N "
        "--val-seed SEED validated on (repeatable): a comparison free of the choice of best.pt",
    )
    wider.add_argument("--min-score", type=score, default=0.01, help="lowest detection score kept")
    wider.add_argument(
        "--min-face",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="PX",
        help="faces smaller than this (pixels, either side) are ignore regions; several sizes (16 48) "
        "score one detection pass each way",
    )
    wider.add_argument(
        "--gray",
        action="store_true",
        help="score on grayscale copies of the images (luma in all three channels): robustness to "
        "black-and-white photos and IR cameras",
    )
    wider.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")


def run_wider(args: argparse.Namespace, load_model: ModelLoader) -> int:
    """Detect on every val image with the model (and ``--versus``), score, print and write JSON."""
    existing_dir(args.data_root, "--data-root")
    resamples = args.bootstrap if args.bootstrap is not None else (1000 if args.versus else 0)
    if resamples < 0:
        raise UsageError(f"--bootstrap must be 0 or more, got {resamples}")
    samples = _val_samples(args.data_root, args.max_images, args.held_out)
    detector = _detector(args, load_model)
    # Both models are loaded before any detection, so a bad --versus file fails at once.
    other = None if args.versus is None else load_model(Path(args.versus), args.img_size, args.min_score)
    gts = _ground_truth(samples)
    dets = _detect_all(detector, samples, args.gray)
    other_dets = None if other is None else _detect_all(other, samples, args.gray)
    by_size = {size: _score(gts, dets, other_dets, size, args, resamples) for size in args.min_face}
    if len(by_size) == 1:
        metrics = next(iter(by_size.values()))
    else:
        metrics = {"min_face": {f"{size:g}": result for size, result in by_size.items()}}
    metrics |= {"gray": True} if args.gray else {}
    print(json.dumps(metrics, indent=2))
    for size, result in by_size.items():
        if "versus" in result:
            print(_comparison_line(args.model or args.peer, args.versus, result["versus"], size))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(metrics, indent=2))
    return 0


def _score(
    gts: GroundTruth,
    dets: list[Detections],
    other_dets: list[Detections] | None,
    min_face: float,
    args: argparse.Namespace,
    resamples: int,
) -> dict[str, Any]:
    """The metrics of one face-size threshold: AP, and the interval or the comparison."""
    from facedet.evaluation.bootstrap import bootstrap_interval
    from facedet.evaluation.wider_ap import wider_evaluation

    ap, matches = wider_evaluation(gts, dets, min_size=min_face)
    metrics: dict[str, Any] = dict(ap)
    if other_dets is not None:
        metrics["versus"] = _compare(gts, matches, other_dets, min_face, args, resamples)
    elif resamples:
        metrics["AP50_ci95"] = list(bootstrap_interval(matches, resamples, args.seed))
    return metrics


def _subset_spec(text: str) -> tuple[int, int]:
    """``N:SEED`` -> (N, SEED), N > 0."""
    try:
        size, seed = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N:SEED (e.g. 200:8), got {text!r}") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"the subset size must be positive, got {size}")
    return size, seed


def _val_samples(
    data_root: Path, max_images: int | None, held_out: Sequence[tuple[int, int]] = ()
) -> list[WiderSample]:
    """The val images present, less the training runs' validation subsets, then the first ``max_images``."""
    from facedet.data.wider import load_wider, seeded_subset

    samples, missing = load_wider(data_root, "val", allow_missing=True)
    if missing:
        print(f"WIDER val: {len(missing)} listed images missing, skipped")
    if held_out:
        seen = {s.path for size, seed in held_out for s in seeded_subset(samples, size, seed)}
        kept = [s for s in samples if s.path not in seen]
        print(f"WIDER val: {len(kept)} of {len(samples)} images outside the subsets {held_out}")
        if not kept:
            raise UsageError("--held-out leaves no val image to score")
        samples = kept
    return samples[:max_images] if max_images is not None else samples


def _detector(args: argparse.Namespace, load_model: ModelLoader) -> Detector:
    if args.peer is not None:
        from facedet.peers import load_peer

        return load_peer(args.peer)
    return load_model(Path(args.model), args.img_size, args.min_score)


def _ground_truth(samples: Sequence[WiderSample]) -> GroundTruth:
    """(boxes, invalid flags) per val image, as ``wider_ap`` takes them."""
    import numpy as np

    return [(np.asarray(sample.boxes, np.float64), np.asarray(sample.invalid, bool)) for sample in samples]


def _detect_all(detector: Detector, samples: Sequence[WiderSample], gray: bool) -> list[Detections]:
    """The detector's faces in each val image, in colour or on grayscale copies."""
    import cv2
    import numpy as np
    from tqdm import tqdm

    dets: list[Detections] = []
    for sample in tqdm(samples, desc=f"WIDER val {detector.name}", unit="img"):
        bgr = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read {sample.path}")
        if gray:
            bgr = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        dets.append(detector.detect(np.asarray(bgr, np.uint8)))
    return dets


def _compare(
    gts: GroundTruth,
    matches: ImageMatches,
    other: list[Detections],
    min_face: float,
    args: argparse.Namespace,
    resamples: int,
) -> dict[str, Any]:
    """The ``--versus`` model's AP and, with resamples, the paired bootstrap of A - B."""
    from facedet.evaluation.bootstrap import paired_bootstrap
    from facedet.evaluation.wider_ap import wider_evaluation

    ap, other_matches = wider_evaluation(gts, other, min_size=min_face)
    result: dict[str, Any] = {"model": str(args.versus)} | ap
    if resamples:
        result["comparison"] = paired_bootstrap(matches, other_matches, resamples, args.seed).as_dict()
    return result


def _comparison_line(a: str, b: str, versus: dict[str, Any], min_face: float) -> str:
    """One readable line: the AP50 of both, the difference and its interval."""
    faces = f"faces >= {min_face:g} px" if min_face else "all faces"
    comparison = versus.get("comparison")
    if comparison is None:
        return f"AP50 ({faces}): {a} {versus.get('AP50', 0.0):.3f} vs {b}"
    verdict = "significant" if comparison["significant"] else "within the noise of these images"
    return (
        f"AP50 ({faces}): A {a} {comparison['AP50_a']:.3f}, B {b} {comparison['AP50_b']:.3f}; "
        f"A - B {comparison['difference']:+.3f}, 95% interval [{comparison['ci95_low']:+.3f}, "
        f"{comparison['ci95_high']:+.3f}] ({comparison['resamples']} paired resamples; A higher in "
        f"{comparison['a_better']:.0%}): {verdict}"
    )
