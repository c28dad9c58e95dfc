"""Untrusted image bytes -> BGR array, safely. numpy + cv2 + stdlib only.

Order of checks, cheapest first, so that a hostile upload is refused before any real work:

1. ``sniff_format``: the magic bytes decide the format (the declared Content-Type is ignored).
   JPEG, PNG, WebP and BMP are accepted; a recognised but unsupported image format (GIF, TIFF,
   HEIF/AVIF, ...) is a 415; bytes that match no image signature at all are a 422.
2. ``read_header``: the width and height are parsed from the format's own header by hand (JPEG
   SOFn segment, PNG IHDR, WebP VP8/VP8L/VP8X, BMP info header) -- a few hundred bytes at most,
   no pixel is decoded. Too many pixels (a decompression bomb: a small file that decodes to a
   huge array) is a 413 before ``cv2.imdecode`` allocates anything. Truncation that the header
   can prove (a JPEG with no end-of-image marker after its scan, a PNG with no IEND chunk, a
   RIFF/BMP file shorter than its declared size) is a 422.
3. JPEG only: ``facedet.media.image_damage`` runs libjpeg's entropy decoder and collects the
   warnings it would only print (damaged data -> 422 instead of wrong detections; a structural
   scan where the libjpeg check is not built, see ``facedet.jpeg_check``).
4. ``cv2.imdecode``: anything it still cannot decode is a 422 (corrupt image).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from facedet.jpeg_scan import jpeg_frame
from facedet.media import image_damage

SUPPORTED_FORMATS = ("jpeg", "png", "webp", "bmp")

# Signatures of image formats we recognise but do not accept (-> 415 rather than "not an image").
_UNSUPPORTED_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"\x00\x00\x01\x00", "ico"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (0, b"\xff\x4f\xff\x51", "jpeg2000"),
    (0, b"\xff\x0a", "jpegxl"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jpegxl"),
    (0, b"8BPS", "psd"),
    (0, b"qoif", "qoi"),
    (0, b"v/1\x01", "openexr"),
    (0, b"#?RADIANCE", "hdr"),
    (0, b"#?RGBE", "hdr"),
    (0, b"%PDF", "pdf"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


class ImageError(Exception):
    """An upload that is not a usable image; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, before decoding: format name and pixel dimensions."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(data: bytes) -> str:
    """Name the format of ``data`` from its magic bytes.

    Returns:
        One of ``SUPPORTED_FORMATS``.

    Raises:
        ImageError: 400 if empty, 415 for a recognised unsupported image format, 422 if the bytes
            match no image signature at all.
    """
    if not data:
        raise ImageError(400, "empty body: no image bytes were sent")
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM" and len(data) >= 18:
        return "bmp"
    for offset, signature, name in _UNSUPPORTED_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            raise ImageError(415, f"unsupported image format {name!r}; send one of {', '.join(SUPPORTED_FORMATS)}")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        raise ImageError(415, f"unsupported image format 'heif/avif'; send one of {', '.join(SUPPORTED_FORMATS)}")
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        raise ImageError(415, f"unsupported image format 'svg'; send one of {', '.join(SUPPORTED_FORMATS)}")
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3] in b" \t\r\n":
        raise ImageError(415, f"unsupported image format 'pnm'; send one of {', '.join(SUPPORTED_FORMATS)}")
    raise ImageError(
        422,
        f"not an image: the {len(data)}-byte body does not start with the signature of any image format "
        f"(expected {', '.join(SUPPORTED_FORMATS)})",
    )


def _truncated(fmt: str, why: str) -> ImageError:
    return ImageError(422, f"truncated or corrupt {fmt.upper()} image: {why}")


def _jpeg_header(data: bytes) -> ImageHeader:
    try:
        frame = jpeg_frame(data)
    except ValueError as exc:
        raise _truncated("jpeg", str(exc)) from exc
    return ImageHeader("jpeg", frame.width, frame.height)


def _png_header(data: bytes) -> ImageHeader:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _truncated("png", "missing IHDR header chunk")
    width, height = struct.unpack(">II", data[16:24])
    if data.rfind(b"IEND\xaeB`\x82") < 0:
        raise _truncated("png", "no IEND chunk (the file was cut short)")
    return ImageHeader("png", int(width), int(height))


def _webp_header(data: bytes) -> ImageHeader:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if len(data) < riff_size + 8:
        raise _truncated("webp", f"RIFF says {riff_size + 8} bytes, got {len(data)}")
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8 " and len(data) >= 30:
        if data[23:26] != b"\x9d\x01\x2a":
            raise _truncated("webp", "bad VP8 start code")
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
    elif chunk == b"VP8L" and len(data) >= 25:
        if data[20] != 0x2F:
            raise _truncated("webp", "bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    else:
        raise _truncated("webp", f"unknown or short first chunk {chunk!r}")
    return ImageHeader("webp", int(width), int(height))


def _bmp_header(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise _truncated("bmp", "the info header is cut short")
    (file_size,) = struct.unpack("<I", data[2:6])
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    if file_size and len(data) < file_size:
        raise _truncated("bmp", f"header says {file_size} bytes, got {len(data)}")
    return ImageHeader("bmp", abs(int(width)), abs(int(height)))


def read_header(data: bytes) -> ImageHeader:
    """Sniff the format and parse the pixel dimensions from the header, without decoding.

    Raises:
        ImageError: see ``sniff_format``; 422 for a header that is truncated or inconsistent.
    """
    fmt = sniff_format(data)
    parse = {"jpeg": _jpeg_header, "png": _png_header, "webp": _webp_header, "bmp": _bmp_header}[fmt]
    try:
        header = parse(data)
    except struct.error as exc:  # a slice came back short
        raise _truncated(fmt, "the header is cut short") from exc
    if header.width <= 0 or header.height <= 0:
        raise ImageError(422, f"corrupt {fmt.upper()} image: header gives size {header.width}x{header.height}")
    return header


def decode_image(data: bytes, max_pixels: int) -> tuple[NDArray[np.uint8], ImageHeader]:
    """Decode untrusted bytes to an HxWx3 uint8 BGR image, refusing bombs before decoding.

    Args:
        data: the raw file bytes.
        max_pixels: the largest width*height accepted, checked on the header dimensions.

    Returns:
        The BGR image (EXIF orientation applied, as a browser shows it) and the parsed header.

    Raises:
        ImageError: 400 empty, 413 too many pixels, 415 unsupported format, 422 not an image,
            truncated or corrupt.
    """
    header = read_header(data)
    if header.pixels > max_pixels:
        raise ImageError(
            413,
            f"image too large: {header.width}x{header.height} = {header.pixels} pixels exceeds the limit of "
            f"{max_pixels} pixels (checked from the {header.format.upper()} header before decoding)",
        )
    if damage := image_damage(data):
        # libjpeg would only warn and hand back grey or garbled blocks: refuse instead of guessing.
        raise ImageError(422, damage)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ImageError(422, f"corrupt {header.format.upper()} image: the decoder could not read the pixel data")
    if image.shape[0] * image.shape[1] > max_pixels:  # belt and braces: never trust the header alone
        raise ImageError(413, f"image too large: decoded to {image.shape[1]}x{image.shape[0]} pixels")
    return np.asarray(image, np.uint8), header
