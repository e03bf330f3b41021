"""Images in: base64 (data URLs accepted), resized by A1111's resize modes."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image

from sd_runtime.errors import RequestError

#: A1111's img2img resize modes by number, and ControlNet's by name.
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")


def open_base64(data: str, what: str = "image") -> Image.Image:
    """The picture a base64 string (a data URL too) holds, as it is (its own mode: RGBA keeps its alpha)."""
    payload = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (binascii.Error, ValueError, OSError) as error:
        raise RequestError(f"{what} is not a base64-encoded image: {error}") from None
    return image


def decode_image(data: str, what: str = "image") -> Image.Image:
    return open_base64(data, what).convert("RGB")


def decode_pixels(data: list, what: str = "image") -> Image.Image:
    """An image sent as rows of pixels (``[[[r, g, b], ...], ...]``, RGBA or grey values too)."""
    import numpy as np

    try:
        array = np.asarray(data, dtype=np.uint8)
        image = Image.fromarray(array if array.ndim == 2 or array.shape[2] != 1 else array[:, :, 0])
    except (ValueError, TypeError, IndexError) as error:
        raise RequestError(f"{what} is not an array of pixel rows of one width: {error}") from None
    return image


def decode_any_image(data: str | list, what: str = "image") -> Image.Image:
    """base64 (a data URL too) or pixel rows, as RGB."""
    return decode_image(data, what) if isinstance(data, str) else decode_pixels(data, what).convert("RGB")


def with_strokes(image: Image.Image, mask: str | list | None, what: str = "image") -> Image.Image:
    """ControlNet's UI value ``{image, mask}``: the strokes the user drew over the image (where the mask is
    not transparent, or not black for a mask without alpha) are painted white into it, as ControlNet's UI
    hands a sketched-on image to its preprocessor. A mask with no strokes leaves the image as it is."""
    if mask is None:
        return image
    import numpy as np

    layer = open_base64(mask, f"{what} mask") if isinstance(mask, str) else decode_pixels(mask, f"{what} mask")
    if layer.size != image.size:
        width, height = layer.size
        raise RequestError(f"{what} mask is {width}x{height}, its image {image.size[0]}x{image.size[1]}")
    strokes = np.asarray(layer.getchannel("A") if "A" in layer.getbands() else layer.convert("L")) > 127
    if not strokes.any():
        return image
    pixels = np.asarray(image.convert("RGB")).copy()
    pixels[strokes] = 255
    return Image.fromarray(pixels)


def resize_mode_name(mode: int | str | None) -> str:
    if mode is None:
        return RESIZE_MODES[0]
    if isinstance(mode, int) and 0 <= mode < len(RESIZE_MODES):
        return RESIZE_MODES[mode]
    for name in RESIZE_MODES:
        if str(mode).casefold() == name.casefold():
            return name
    raise RequestError(f"unknown resize_mode {mode!r}; supported: 0-2 or {', '.join(RESIZE_MODES)}")


def resize_image(image: Image.Image, width: int, height: int, mode: int | str | None = 0) -> Image.Image:
    """Resize as A1111 does: stretch, crop to fill, or fit and fill the borders with the stretched edges."""
    name = resize_mode_name(mode)
    if image.size == (width, height):
        return image
    if name == "Just Resize":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    ratio = width / height
    src_ratio = image.width / image.height
    if name == "Crop and Resize":
        scaled_w = width if ratio > src_ratio else image.width * height // image.height
        scaled_h = height if ratio <= src_ratio else image.height * width // image.width
        resized = image.resize((max(scaled_w, 1), max(scaled_h, 1)), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(resized, (width // 2 - scaled_w // 2, height // 2 - scaled_h // 2))
        return canvas
    # Resize and Fill: fit inside, then stretch the outermost rows/columns over the empty borders.
    scaled_w = width if ratio < src_ratio else image.width * height // image.height
    scaled_h = height if ratio >= src_ratio else image.height * width // image.width
    scaled_w, scaled_h = max(scaled_w, 1), max(scaled_h, 1)
    resized = image.resize((scaled_w, scaled_h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    left, top = width // 2 - scaled_w // 2, height // 2 - scaled_h // 2
    canvas.paste(resized, (left, top))
    if ratio < src_ratio and top > 0:
        canvas.paste(resized.resize((width, top), box=(0, 0, width, 0)), (0, 0))
        bottom = height - top - scaled_h
        if bottom > 0:
            canvas.paste(resized.resize((width, bottom), box=(0, scaled_h, width, scaled_h)), (0, top + scaled_h))
    elif ratio > src_ratio and left > 0:
        canvas.paste(resized.resize((left, height), box=(0, 0, 0, height)), (0, 0))
        right = width - left - scaled_w
        if right > 0:
            canvas.paste(resized.resize((right, height), box=(scaled_w, 0, scaled_w, height)), (left + scaled_w, 0))
    return canvas
