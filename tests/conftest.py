"""Shared fixtures: a tiny WIDER Face tree (``facedet.testing.make_wider_tree``) in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from facedet.testing import make_wider_tree


@pytest.fixture(scope="session")
def wider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny WIDER Face tree: 8 train and 4 val images (one face-less each, invalid faces included)."""
    return make_wider_tree(tmp_path_factory.mktemp("widerface"))
