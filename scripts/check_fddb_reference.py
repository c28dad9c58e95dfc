"""Score the Haar reference detections with facedet's FDDB evaluator and compare with the official output.

``../shared/fddb-reference/`` holds ``haar-dets.txt`` (rectangles on the 2,777 images present in
``../shared/data/fddb``) and what the official evaluator (UMass, 2010) wrote for it:
``haar-DiscROC.txt`` and ``haar-ContROC.txt``. This script prints, for both ROCs, facedet's TPR and
the official TPR at 100/500/1,000/2,000 FP (rule: highest TPR among points with FP <= k), and exits
1 if any differs by more than the tolerance (default 0.002).

    python scripts/check_fddb_reference.py [--shared ../shared] [--out DIR] [--tolerance 0.002]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facedet.data.fddb import load_fddb
from facedet.data.fddb_format import read_detections
from facedet.evaluation.fddb_eval import FP_COUNTS, TPR_RULE, evaluate_detections, read_roc, tpr_at_fp

REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared folder")
    parser.add_argument("--out", type=Path, default=None, help="also write our DiscROC/ContROC here")
    parser.add_argument("--tolerance", type=float, default=0.002, help="largest allowed TPR difference")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ref = args.shared / "fddb-reference"
    start = time.perf_counter()
    fddb = load_fddb(args.shared / "data" / "fddb")
    dets = read_detections(ref / "haar-dets.txt", fddb.order, kind="rect")
    loaded = time.perf_counter()
    result = evaluate_detections(fddb, dets, kind="rect")
    done = time.perf_counter()
    if args.out is not None:
        result.roc.write(args.out, prefix="haar-")
    print(
        f"{result.num_images} images, {result.num_faces} faces ({result.num_missing_images} images missing); "
        f"parse {loaded - start:.1f} s, score {done - loaded:.1f} s"
    )
    print(TPR_RULE)
    worst = 0.0
    print(f"{'ROC':<6}{'FP':>6}{'facedet':>10}{'official':>10}{'diff':>9}")
    for name, ours in (("Disc", result.roc.tpr_disc), ("Cont", result.roc.tpr_cont)):
        off_tpr, off_fp = read_roc(ref / f"haar-{name}ROC.txt")
        mine = tpr_at_fp(ours, result.roc.fp, FP_COUNTS)
        official = tpr_at_fp(off_tpr, off_fp, FP_COUNTS)
        for k, a, b in zip(FP_COUNTS, mine, official, strict=True):
            worst = max(worst, abs(a - b))
            print(f"{name:<6}{k:>6}{a:>10.4f}{b:>10.4f}{a - b:>+9.4f}")
        print(
            f"{name:<6} points: facedet {len(ours)}, official {len(off_tpr)}; "
            f"max FP facedet {int(result.roc.fp.max())}, official {int(off_fp.max())}"
        )
    ok = worst <= args.tolerance
    print(f"largest difference {worst:.4f} ({'within' if ok else 'OVER'} {args.tolerance})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
