"""facedet: tiny face detectors (Tiny-YOLO, IFQ-Tinier-YOLO, DupNet-Tinier-YOLO).

This file imports nothing on purpose: importing a torch-free core module must never pull in a
training module.
"""

__version__ = "0.1.0"
