"""The torch-free integer engine (numpy + OpenCV): ``from facedet.engine import IntEngine``."""

from facedet.engine.core import IntEngine

__all__ = ["IntEngine"]
