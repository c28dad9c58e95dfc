"""The camera demo's window: OpenCV's own when the installed OpenCV build has a GUI, else pygame.

The project depends on ``opencv-python-headless`` (no GUI; the service and servers need no X11
libraries). Installing the GUI build next to it is unreliable (both wheels own ``cv2/``), so the
``camera`` extra brings pygame (SDL, wheels for every desktop) to show the frames instead. Capture
stays in OpenCV either way.
"""

from __future__ import annotations

import os
import re
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

QUIT_KEYS = {ord("q"), ord("Q"), 27}  # q, Q, Esc
CAMERA_EXTRA_HINT = (
    "install the camera extra: pip install 'facedet-tiny[camera]' (in a clone: pip install -e '.[camera]'), "
    "or run with --headless --output FILE"
)


class WindowError(RuntimeError):
    """No window can be shown here."""


class Window(Protocol):
    def show(self, frame: NDArray[np.uint8]) -> bool:
        """Display a BGR frame; False once the user asked to quit (q, Esc, window closed)."""
        ...

    def close(self) -> None: ...


def opencv_has_gui() -> bool:
    """True unless the OpenCV build says ``GUI: NONE`` (the headless wheels)."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match is not None and match.group(1).upper() != "NONE"


class OpenCVWindow:
    def __init__(self, title: str) -> None:
        self.title = title

    def show(self, frame: NDArray[np.uint8]) -> bool:
        try:
            cv2.imshow(self.title, frame)
            return (cv2.waitKey(1) & 0xFF) not in QUIT_KEYS
        except cv2.error as exc:
            raise WindowError(f"cannot open a window ({exc.msg.strip()}); {CAMERA_EXTRA_HINT}") from exc

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


class PygameWindow:
    """A pygame window sized to the first frame; q, Esc or closing the window quits."""

    def __init__(self, title: str) -> None:
        import pygame

        self.pygame = pygame
        try:
            pygame.display.init()
        except pygame.error as exc:
            raise WindowError(f"cannot open a window ({exc}); run with --headless --output FILE") from exc
        pygame.display.set_caption(title)
        self.screen: object | None = None

    def show(self, frame: NDArray[np.uint8]) -> bool:
        pygame = self.pygame
        height, width = frame.shape[:2]
        if self.screen is None:
            self.screen = pygame.display.set_mode((width, height))
        rgb = np.ascontiguousarray(frame[:, :, ::-1].transpose(1, 0, 2))  # pygame surfaces are (W, H, 3) RGB
        pygame.surfarray.blit_array(self.screen, rgb)
        pygame.display.flip()
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key in QUIT_KEYS):
                return False
        return True

    def close(self) -> None:
        self.pygame.display.quit()


def open_window(title: str) -> Window:
    """OpenCV's window if this OpenCV can show one, else pygame's (the camera extra).

    Raises:
        WindowError: neither is available; the message says how to get one.
    """
    if opencv_has_gui():
        return OpenCVWindow(title)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner on stdout
    try:
        import pygame  # noqa: F401  (the camera extra)
    except ImportError:
        raise WindowError(
            f"this OpenCV build has no window support (opencv-python-headless); {CAMERA_EXTRA_HINT}"
        ) from None
    return PygameWindow(title)
