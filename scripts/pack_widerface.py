"""Write a compact WIDER Face copy (official layout) to send with a training job to another machine.

Usage: python scripts/pack_widerface.py --src ../shared/data/widerface --dst runs/wider-256
[--max-side 256] [--quality 75]

Images are shrunk to at most --max-side px on their longer side and re-encoded as JPEG (the
480-px copy at 256 px, quality 75: 43 MiB instead of GBs); boxes
are scaled to match (facedet/data/pack.py). Train on the copy with ``facedet train --data-root DST``
at an --img-size no larger than --max-side. Never commit the copy (it is data).
"""

from __future__ import annotations

import argparse

from facedet.data.pack import pack_wider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="WIDER Face root in the official layout")
    parser.add_argument("--dst", required=True, help="output root (created)")
    parser.add_argument("--max-side", type=int, default=256, help="longest image side in px (default 256)")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality 1..100 (default 75)")
    args = parser.parse_args()
    for summary in pack_wider(args.src, args.dst, args.max_side, args.quality, progress=True):
        mib = summary.image_bytes / 2**20
        print(f"{summary.split}: {summary.images} images, {summary.faces} faces, {mib:.1f} MiB of JPEG")


if __name__ == "__main__":
    main()
