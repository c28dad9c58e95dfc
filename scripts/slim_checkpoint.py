"""Strip a training checkpoint to what shipping needs (model + config + metrics), optionally fp16.

Usage: python scripts/slim_checkpoint.py runs/tiny-yolo/best.pt weights/tiny-yolo.fp16.pt --half --deploy-img-size 416
"""

from __future__ import annotations

import argparse

from facedet.models.checkpoint import slim_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="training checkpoint (.pt)")
    parser.add_argument("dst", help="slim checkpoint to write (.pt)")
    parser.add_argument("--half", action="store_true", help="store float weights as float16")
    parser.add_argument(
        "--deploy-img-size", type=int, help="input size to deploy at (stored; export and detect default to it)"
    )
    parser.add_argument("--raw", action="store_true", help="the trained weights, not their moving average")
    args = parser.parse_args()
    path = slim_checkpoint(args.src, args.dst, half=args.half, deploy_img_size=args.deploy_img_size, raw=args.raw)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
