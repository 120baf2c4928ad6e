"""Filling the masked title with background: OpenCV's diffusion methods, its frequency-selective
reconstruction, and PatchMatch.

Telea (fast marching) and Navier-Stokes propagate the border colours inward:
right for smooth gradients, but they smear texture and straight edges into
blur. FSR (``cv2.xphoto``, from ``opencv-contrib-python-headless``) models each
block around the hole as a sparse sum of Fourier basis functions fitted to the
known pixels, so gradients and regular texture continue. PatchMatch
(``pypatchmatch``, the C++ implementation InvokeAI ships) copies whole patches
from elsewhere in the poster, so stripes, stars and grain continue through the
hole. ``bench/bench_localize.py`` measures them inside the mask against the
demo corpus' true clean backgrounds and, on real posters, whether OCR still
reads the erased title; the default is the one that measured best.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

CV_RADIUS = 5
"""Neighbourhood radius (px) for OpenCV's inpainting."""
PATCH_SIZE = 3
"""PatchMatch patch radius: (2r+1)^2 pixels; 3 follows poster-scale texture at interactive speed."""


Method = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def _opencv(flag: int) -> Method:
    def method(image: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        return cv2.inpaint(image, mask, CV_RADIUS, flag)  # diffusion reads only the hole's rim

    return method


def _xphoto():
    try:
        return cv2.xphoto
    except AttributeError:
        raise RuntimeError(
            "FSR inpainting needs cv2.xphoto from opencv-contrib-python-headless; another OpenCV wheel "
            "(opencv-python, opencv-python-headless) was installed over it: "
            "pip install --force-reinstall opencv-contrib-python-headless"
        ) from None


def _fsr(image: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    xphoto = _xphoto()
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)  # FSR expects intensity first, colour after
    filled = np.zeros_like(lab)
    xphoto.inpaint(
        lab, np.where(mask > 0, 0, 255).astype(np.uint8), filled, xphoto.INPAINT_FSR_FAST
    )  # its mask marks known pixels
    return cv2.cvtColor(filled, cv2.COLOR_LAB2RGB)


def _patchmatch(image: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    import patchmatch

    patchmatch.set_random_seed(0)  # the same poster gives the same variant
    if exclude is not None:
        exclude = np.where(mask > 0, 0, exclude).astype(np.uint8)
    return patchmatch.inpaint(image, mask, global_mask=exclude, patch_size=PATCH_SIZE)


METHODS: dict[str, Method] = {
    "telea": _opencv(cv2.INPAINT_TELEA),
    "ns": _opencv(cv2.INPAINT_NS),
    "fsr": _fsr,
    "patchmatch": _patchmatch,
}
DEFAULT_METHOD = "patchmatch"


def inpaint(
    image: np.ndarray, mask: np.ndarray, method: str = DEFAULT_METHOD, exclude: np.ndarray | None = None
) -> np.ndarray:
    """``image`` (RGB uint8) with the pixels where ``mask`` is set filled in; others untouched.

    ``exclude`` marks pixels that must not serve as a source (other text).
    """
    if method not in METHODS:
        raise ValueError(f"unknown inpainting method {method!r}; expected one of {sorted(METHODS)}")
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"mask shape {mask.shape[:2]} does not match image shape {image.shape[:2]}")
    hole = mask > 0
    if not hole.any():
        return image.copy()
    filled = METHODS[method](np.ascontiguousarray(image), hole.astype(np.uint8) * 255, exclude)
    return np.where(hole[:, :, None], filled, image)
