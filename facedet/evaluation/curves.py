"""Training curves from ``facedet train``'s per-epoch JSONL log: read, tabulate, plot.

A log line with ``"type": "epoch"`` carries the epoch's mean training losses (``train_*``) and the
WIDER-val scores of the weights that epoch ended with (``val_ap50``, ``val_ap50_ge16``,
``val_ap50_ge48``: AP50 of all faces, of faces >= 16 px and >= 48 px at the deployment size).
Lines of other types (``step``) are skipped. Standard library plus matplotlib (for the figure).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# What the figure shows, panel by panel: (log key, panel title).
PANELS = (
    ("val_ap50_ge48", "WIDER val AP50, faces >= 48 px"),
    ("val_ap50_ge16", "WIDER val AP50, faces >= 16 px"),
    ("train_total", "training loss (epoch mean)"),
)


@dataclass
class Curve:
    """One run's per-epoch values: ``values[key][i]`` belongs to ``epochs[i]`` (None: not logged)."""

    label: str
    epochs: list[int] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def best(self, key: str) -> tuple[int, float] | None:
        """(epoch, value) of the highest logged value of ``key``, the first on a tie."""
        logged = [(v, -e) for e, v in zip(self.epochs, self.values.get(key, []), strict=True) if v is not None]
        if not logged:
            return None
        value, neg_epoch = max(logged)
        return -neg_epoch, value


def log_path(path: str | Path) -> Path:
    """A run folder (its ``log.jsonl``) or a ``.jsonl`` file; ``FileNotFoundError`` names what is missing."""
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such training log (give a run folder or its log.jsonl)")
    return path


def read_curve(path: str | Path, label: str | None = None) -> Curve:
    """Parse the epoch lines of a training log; a malformed line is a ``ValueError`` naming file:line.

    A resumed run may log an epoch twice (the second time after the resume); the later line wins.
    """
    path = log_path(path)
    rows: dict[int, dict[str, object]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            if not isinstance(row, dict) or row.get("type") != "epoch":
                continue
            epoch = row.get("epoch")
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise ValueError(f"{path}:{number}: epoch line without a whole-number 'epoch'")
            rows[epoch] = row
    default = path.parent.name if path.name == "log.jsonl" else path.stem
    curve = Curve(label or default, epochs=sorted(rows))
    keys = sorted({k for row in rows.values() for k in row if k.startswith(("val_", "train_"))})
    for key in keys:
        curve.values[key] = [_number(rows[e].get(key)) for e in curve.epochs]
    return curve


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def format_table(curves: list[Curve]) -> str:
    """A Markdown table: epochs, last and best WIDER-val AP50 (>= 16 / >= 48 px) per run."""
    lines = [
        "| run | epochs | last >= 16 | last >= 48 | best >= 48 (epoch) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for c in curves:
        last16 = c.values.get("val_ap50_ge16", [None])[-1] if c.epochs else None
        last48 = c.values.get("val_ap50_ge48", [None])[-1] if c.epochs else None
        best = c.best("val_ap50_ge48")
        best_text = f"{best[1]:.3f} ({best[0]})" if best else "-"
        lines.append(f"| {c.label} | {len(c.epochs)} | {_fmt(last16)} | {_fmt(last48)} | {best_text} |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_figure(curves: list[Curve], out: str | Path) -> Path:
    """One panel per entry of ``PANELS``, one line per run, epochs on x; PNG (or any matplotlib format)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 4.2), squeeze=False)
    for ax, (key, title) in zip(axes[0], PANELS, strict=True):
        for curve in curves:
            points = [(e, v) for e, v in zip(curve.epochs, curve.values.get(key, []), strict=True) if v is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=curve.label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
