"""The version of a shipped model file, as users quote it: ``<export date>+<sha256 prefix>``. Stdlib only.

Two files with the same version are byte-identical (the sha256 prefix); the date says which
export it is. Shown by ``facedet summary FILE`` and ``GET /v1/model``.
"""

from __future__ import annotations

from typing import Any


def model_version(provenance: dict[str, Any] | None, sha256: str | None) -> str:
    """``2026-11-24+7c248848`` (the export date from the provenance, the file's sha256 prefix)."""
    exported = str((provenance or {}).get("exported", ""))[:10] or "undated"
    return f"{exported}+{(sha256 or 'unknown')[:8]}"
