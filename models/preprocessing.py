"""Turning a poster into the square image a backbone takes.

Posters are 2:3. Squashing one into a square distorts faces and lettering,
letterboxing (padding the short side with black) keeps the shapes at the cost
of a third of the pixels; ``letterbox`` in ``posterrec_settings`` chooses and
the manifest records the choice so that embedding uses what training used.

Training resizes inside its ``tf.data`` pipeline (:func:`resize_to_square`, TensorFlow's
bilinear filter with antialiasing); embedding resizes 8-bit pixels with Pillow's bilinear filter,
the same triangle filter, to within one grey level of TensorFlow's pixels and several times faster
(:func:`resize_image_to_square`, ``bench/bench_embed.py``). The backbone's pixel
scaling (:class:`PixelScaling`) is a layer of the exported model itself, so callers hand it
plain 0-255 pixels. TensorFlow is imported by the functions that use it only, so that embedding with
LiteRT (a server's uploads) never loads it.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import TYPE_CHECKING

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import tensorflow as tf

ImageInput = bytes | Image.Image | str | Path


@dataclasses.dataclass(frozen=True)
class PixelScaling:
    """``x * scale + offset`` on 0-255 pixels, the input scaling a backbone was trained with."""

    description: str
    """What the manifest records as ``preprocessing``."""
    scale: float
    offset: float
    layer_name: str

    def layer(self) -> tf.keras.layers.Layer:
        """The scaling as a serialisable layer, the first of the exported model."""
        import tensorflow as tf

        return tf.keras.layers.Rescaling(self.scale, offset=self.offset, name=self.layer_name)


NASNET_SCALING = PixelScaling("nasnet.preprocess_input (x/127.5 - 1)", 1.0 / 127.5, -1.0, "nasnet_preprocess")
EFFICIENTNET_LITE_SCALING = PixelScaling(
    "efficientnet_lite ((x - 127) / 128)", 1.0 / 128.0, -127.0 / 128.0, "efficientnet_lite_preprocess"
)


def resize_to_square(image: tf.Tensor, size: int, letterbox: bool) -> tf.Tensor:
    """An ``HxWx3`` image of any dtype -> ``size x size x 3`` float32 in 0-255."""
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    if letterbox:
        return tf.image.resize_with_pad(image, size, size, antialias=True)
    return tf.image.resize(image, (size, size), antialias=True)


def letterbox_geometry(height: int, width: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The resized ``(height, width)`` and the ``(top, left)`` padding that
    ``tf.image.resize_with_pad`` gives an image of ``height x width`` in a ``size`` square,
    computed in float32 as TensorFlow computes them (the padding uses the unrounded sizes); a side that
    would round to no pixel (an image over ``size`` times longer than wide) keeps one."""
    f32 = np.float32
    ratio = max(f32(width) / f32(size), f32(height) / f32(size))
    exact_height, exact_width = f32(height) / ratio, f32(width) / ratio
    top = max(0, int(np.floor((f32(size) - exact_height) / 2)))
    left = max(0, int(np.floor((f32(size) - exact_width) / 2)))
    return (max(1, int(np.floor(exact_height))), max(1, int(np.floor(exact_width)))), (top, left)


def resize_image_to_square(image: Image.Image, size: int, letterbox: bool) -> np.ndarray:
    """:func:`resize_to_square` for an RGB image, with Pillow: ``size x size x 3`` uint8, within one grey
    level of TensorFlow's float pixels (Pillow rounds after each of its two passes)."""
    (resized_height, resized_width), (top, left) = (
        letterbox_geometry(image.height, image.width, size) if letterbox else ((size, size), (0, 0))
    )
    square = Image.new("RGB", (size, size))  # black, as resize_with_pad pads
    square.paste(image.resize((resized_width, resized_height), Image.Resampling.BILINEAR), (left, top))
    return np.asarray(square)


def decode_image_file(path: tf.Tensor) -> tf.Tensor:
    """Read and decode one image inside ``tf.data`` (JPEG, PNG, GIF, BMP; first frame only)."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


class UnreadableImage(ValueError):
    """An input that cannot be read or decoded; ``index`` is its position among the inputs of the call."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def _describe(item: ImageInput, index: int) -> str:
    if isinstance(item, (str, Path)):
        return f"image {item}"
    if isinstance(item, bytes):
        return f"image #{index} ({len(item)} bytes)"
    return f"image #{index} ({type(item).__name__})"


def load_image(item: ImageInput, index: int = 0) -> Image.Image:
    """Decode bytes, a path or a PIL image into an RGB PIL image.

    Raises :class:`UnreadableImage` (a ``ValueError``) naming the input when it cannot be read or decoded,
    so a caller embedding a thousand files knows which one is bad.
    """
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if not isinstance(item, (bytes, str, Path)):
        raise UnreadableImage(f"{_describe(item, index)}: expected bytes, a path or a PIL image", index)
    try:
        data = item if isinstance(item, bytes) else Path(item).read_bytes()
    except OSError as err:
        raise UnreadableImage(f"{_describe(item, index)} cannot be read: {err.strerror or err}", index) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise UnreadableImage(f"{_describe(item, index)} is not an image Pillow can decode", index) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"{_describe(item, index)} is truncated or corrupt: {err}", index) from None


def load_rgb(item: ImageInput, index: int = 0) -> np.ndarray:
    """:func:`load_image` as an ``HxWx3`` uint8 array; raises its :class:`UnreadableImage`."""
    return np.asarray(load_image(item, index))
