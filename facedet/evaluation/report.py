"""The FDDB report: ROC figures, a results table and sample images, as Markdown and one HTML file.

``write_report`` writes ``report.md`` (figures as PNG files beside it) and ``report.html`` (the
same content, figures embedded as base64 PNG, so the file stands alone). Published numbers (the
``PUBLISHED`` rows, each naming its source: a paper or a project README) appear as reference rows
marked "published, not measured".
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facedet.data.fddb import FDDBSet
from facedet.evaluation.fddb_eval import FP_COUNTS, TPR_RULE, FDDBEvaluation, Roc

__all__ = ["ModelEntry", "PublishedRow", "PUBLISHED", "write_report", "operating_threshold"]


@dataclass
class ModelEntry:
    """One measured model in the report.

    Attributes:
        label: name shown in figures and the table.
        source: where the numbers come from (model path, detection file, peer).
        evaluation: the FDDB scoring of its detections.
        detections: name -> (N, 5) rect or (N, 6) ellipse rows (for the sample figure), or None.
        stored_bytes: model file size in bytes, if known.
        macs: multiply-accumulates per image at the evaluation input size, if known.
        ms_per_image: mean detection time per image in milliseconds, if measured.
        img_size: network input size in pixels, if any.
    """

    label: str
    source: str
    evaluation: FDDBEvaluation
    detections: Mapping[str, NDArray[np.floating]] | None = None
    stored_bytes: int | None = None
    macs: int | None = None
    ms_per_image: float | None = None
    img_size: int | None = None


@dataclass(frozen=True)
class PublishedRow:
    """A published FDDB figure (discrete TPR at 1,000 FP unless the note says otherwise)."""

    model: str
    disc_at_1000: float
    size: str
    note: str


# Published figures; the note names each source (the metric and FP count behind the DupNet numbers are not given).
PUBLISHED: tuple[PublishedRow, ...] = (
    PublishedRow("Tiny-YOLO (face, DupNet paper)", 0.920, "63.1 MB fp32 (computed)", "DupNet abstract"),
    PublishedRow("DupNet-Tinier-YOLO", 0.880, "36.9 KB", "DupNet abstract"),
    PublishedRow("IFQ-Tinier-YOLO", 0.856, "240.9 KiB", "computed from DupNet's '+2.4%'"),
    PublishedRow("FaceBoxes", 0.960, "1.01M params", "FaceBoxes.PyTorch README"),
    PublishedRow("RetinaFace-MobileNet0.25", 0.960, "1.7 MB file", "LFFD evaluation"),
    PublishedRow("LFFD v1", 0.973, "-", "LFFD README"),
)

# Model colours; no green among them: green is the ground truth in the sample figure.
_COLORS = ("#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
GROUND_TRUTH_BGR = (0, 200, 0)


def published_marker_x(count: int, max_fp: int, at: int = 1000) -> list[float]:
    """x positions of the published TPR@1000 markers: spread evenly around ``at`` (2% of the axis
    apart), so that close values do not pile up on one spot."""
    gap = 0.02 * max_fp
    return [at + (j - (count - 1) / 2) * gap for j in range(count)]


def _markdown_code_to_html(text: str) -> str:
    """Escape for HTML, then turn Markdown `code` spans into <code> elements."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def operating_threshold(roc: Roc, max_fp: int = 1000) -> float:
    """Lowest score threshold whose discrete FP count is <= max_fp (inf when none is)."""
    ok = np.flatnonzero(roc.fp <= max_fp)
    return float(roc.thresholds[ok[0]]) if ok.size else float("inf")


def _fmt_int(v: int | None) -> str:
    return f"{v:,}" if v is not None else "-"


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return format(v, spec) if v is not None else "-"


def _png(fig: Any, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _roc_figure(entries: Sequence[ModelEntry], continuous: bool, max_fp: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, e in enumerate(entries):
        roc = e.evaluation.roc
        tpr = roc.tpr_cont if continuous else roc.tpr_disc
        order = np.argsort(roc.fp, kind="stable")
        ax.step(roc.fp[order], tpr[order], where="post", color=_COLORS[i % len(_COLORS)], label=e.label)
    if not continuous:
        markers = "xP*^vD"
        xs = published_marker_x(len(PUBLISHED), max_fp)
        for j, p in enumerate(PUBLISHED):  # in the legend, so close values stay readable
            ax.scatter(
                [xs[j]],
                [p.disc_at_1000],
                marker=markers[j % len(markers)],
                color="gray",
                zorder=3,
                s=30,
                label=f"{p.model}: {p.disc_at_1000:.3f} (published, not measured)",
            )
    ax.set_xlim(0, max_fp)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positives")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"FDDB {'continuous' if continuous else 'discrete'} ROC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    data = _png(fig)
    plt.close(fig)
    return data


def _samples_figure(entries: Sequence[ModelEntry], fddb: FDDBSet, num: int) -> bytes | None:
    """A few images with ground-truth ellipses (green) and each model's detections at its 1,000-FP point."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    with_dets = [e for e in entries if e.detections is not None]
    if num <= 0 or not fddb.images:
        return None
    # Evenly spaced images with faces, so the figure covers several folds.
    candidates = [im for im in fddb.images if im.num_faces > 0] or fddb.images
    picks = [candidates[int(k)] for k in np.linspace(0, len(candidates) - 1, min(num, len(candidates)))]
    cols = min(len(picks), 2)
    rows = (len(picks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image in zip(axes.ravel(), picks, strict=False):
        bgr = cv2.imread(str(fddb.path(image)), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None:
            continue
        for ra, rb, t, cx, cy in image.ellipses:
            angle = float(np.degrees(t))
            cv2.ellipse(bgr, (round(cx), round(cy)), (int(ra), int(rb)), angle, 0, 360, GROUND_TRUTH_BGR, 2)
        for i, e in enumerate(with_dets):
            found = e.detections or {}
            rows_ = np.asarray(found[image.name], np.float64) if image.name in found else np.zeros((0, 5))
            keep = rows_[rows_[:, -1] >= operating_threshold(e.evaluation.roc)] if rows_.size else rows_
            color = tuple(int(_COLORS[i % len(_COLORS)][k : k + 2], 16) for k in (5, 3, 1))  # hex -> BGR
            for row in keep:
                if row.shape[0] == 5:
                    x, y, w, h = row[:4]
                    cv2.rectangle(bgr, (round(x), round(y)), (round(x + w), round(y + h)), color, 2)
                else:
                    ra, rb, t, cx, cy = row[:5]
                    cv2.ellipse(bgr, (round(cx), round(cy)), (int(ra), int(rb)), float(np.degrees(t)), 0, 360, color, 2)
        ax.imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        ax.set_title(f"{image.name} (fold {image.fold}, {image.num_faces} faces)", fontsize=8)
    handles = [Line2D([], [], color="#00c800", lw=2, label="ground truth")]
    handles += [Line2D([], [], color=_COLORS[i % len(_COLORS)], lw=2, label=e.label) for i, e in enumerate(with_dets)]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    data = _png(fig, dpi=80)
    plt.close(fig)
    return data


def _table(entries: Sequence[ModelEntry]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "source", "stored bytes", "MACs (input px)", "ms/image"]
    header += [f"disc@{k}" for k in FP_COUNTS] + [f"cont@{k}" for k in FP_COUNTS]
    rows: list[list[str]] = []
    for e in entries:
        roc = e.evaluation.roc
        macs = _fmt_int(e.macs) + (f" ({e.img_size})" if e.img_size and e.macs is not None else "")
        row = [e.label, f"measured: {e.source}", _fmt_int(e.stored_bytes), macs, _fmt(e.ms_per_image, ".1f")]
        row += [f"{v:.4f}" for v in roc.tpr_at(FP_COUNTS)] + [f"{v:.4f}" for v in roc.tpr_at(FP_COUNTS, True)]
        rows.append(row)
    for p in PUBLISHED:
        row = [p.model, f"published, not measured ({p.note})", p.size, "-", "-"]
        row += ["-" if k != 1000 else f"{p.disc_at_1000:.3f}" for k in FP_COUNTS] + ["-"] * len(FP_COUNTS)
        rows.append(row)
    return header, rows


def write_report(
    out_dir: str | Path, entries: Sequence[ModelEntry], fddb: FDDBSet, num_samples: int = 4, max_fp: int = 2000
) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNG files) and a self-contained ``report.html`` into ``out_dir``.

    Args:
        out_dir: output folder (created).
        entries: the measured models, in table order.
        fddb: the scored FDDB set (for counts and the sample images).
        num_samples: images in the sample figure (0 for none).
        max_fp: right end of the ROC plots.

    Returns:
        (markdown path, html path).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _figures(entries, fddb, num_samples, max_fp)
    for name, _, data in figures:
        (out_dir / name).write_bytes(data)
    header, rows = _table(entries)
    scope = (
        f"{len(fddb.images):,} images with {fddb.num_faces:,} faces scored; {len(fddb.missing):,} images "
        f"({fddb.num_missing_faces:,} faces) absent from `{fddb.root}` were skipped."
    )
    protocol = (
        "Official FDDB protocol (Jain & Learned-Miller 2010): pixel-set overlap of detection and "
        "ground-truth ellipse clipped to the image, per-image maximum-weight matching, every distinct "
        f"score as a threshold. {TPR_RULE}."
    )
    md_path = out_dir / "report.md"
    md_path.write_text(_markdown(scope, protocol, header, rows, figures))
    html_path = out_dir / "report.html"
    html_path.write_text(_html(scope, protocol, header, rows, figures))
    return md_path, html_path


Figure = tuple[str, str, bytes]  # file name, caption, PNG bytes


def _figures(entries: Sequence[ModelEntry], fddb: FDDBSet, num_samples: int, max_fp: int) -> list[Figure]:
    figures: list[Figure] = [
        (
            "roc_discrete.png",
            "Discrete ROC (match when overlap > 0.5; grey markers: published TPR@1000 FP, spread around 1,000)",
            _roc_figure(entries, False, max_fp),
        ),
        ("roc_continuous.png", "Continuous ROC (sum of matched overlaps)", _roc_figure(entries, True, max_fp)),
    ]
    samples = _samples_figure(entries, fddb, num_samples) if entries else None
    if samples is not None:
        figures.append(
            (
                "samples.png",
                "Ground-truth ellipses (green) and detections at each model's 1,000-FP operating point",
                samples,
            )
        )
    return figures


def _markdown(scope: str, protocol: str, header: list[str], rows: list[list[str]], figures: list[Figure]) -> str:
    md = [
        "# FDDB evaluation report",
        "",
        scope,
        "",
        protocol,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [
        "",
        "Rows marked *published, not measured* are copied from the papers and READMEs named in their "
        "source column; their metric details and FP counts are not all known.",
        "",
    ]
    for name, caption, _ in figures:
        md += [f"## {caption}", "", f"![{caption}]({name})", ""]
    return "\n".join(md)


def _html(scope: str, protocol: str, header: list[str], rows: list[list[str]], figures: list[Figure]) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>FDDB evaluation report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "td:first-child,td:nth-child(2){text-align:left}td:nth-child(2){max-width:18em;overflow-wrap:anywhere}"
        "tr.published{color:#777;font-style:italic}.wide{overflow-x:auto;max-width:100%}"
        "img{max-width:100%}</style></head><body>",
        "<h1>FDDB evaluation report</h1>",
        f"<p>{_markdown_code_to_html(scope)}</p>",
        f"<p>{_markdown_code_to_html(protocol)}</p>",
        "<div class='wide'><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>",
    ]
    for r in rows:
        cls = " class='published'" if r[1].startswith("published") else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{_markdown_code_to_html(c)}</td>" for c in r) + "</tr>")
    parts.append(
        "</table></div><p>Rows in grey italics are <b>published, not measured</b>, copied from the papers and "
        "READMEs named in their source column.</p>"
    )
    for _, caption, data in figures:
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(f"<h2>{esc(caption)}</h2><img alt='{esc(caption)}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
