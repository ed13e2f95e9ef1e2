"""Size and pixel limits for incoming images, checked before a pixel is decoded.

Why: a 30 kB PNG can declare 30000 x 30000 pixels and need 2.7 GB once decoded (a decompression
bomb), and a device export can be hundreds of megabytes. Both are refused from the file size and
the dimensions in the headers, with a one-line reason, so no channel ties up memory or writes
half an object for them. The limits are parameters of `wrap.wrap_image`, so the configuration
can set them; these are the defaults.

Pillow keeps its own guard (`Image.MAX_IMAGE_PIXELS`, an error above twice that, ~179 Mpx): it
runs inside `Image.open` before ours, so a limit set above it is capped there, with the same
refusal. We never change that process-wide setting.
"""

from __future__ import annotations

from connector.domain.errors import ImageError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # same as the HTTP upload limit
DEFAULT_MAX_PIXELS = 100_000_000  # a 108-Mpx phone sensor bins to 12 Mpx by default

TOO_LARGE = "too-large"  # ImageError code for both limits (HTTP 413)


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse an empty file or one above `max_bytes`."""
    if not data:
        raise ImageError("the image file is empty (zero bytes)", where="image",
                         hint="send the file again; the upload or copy did not carry any data")
    if len(data) > max_bytes:
        raise ImageError(f"the image file is {_mib(len(data))}, above the {_mib(max_bytes)} limit",
                         where="image", code=TOO_LARGE,
                         hint="send a smaller export of the photo (phones: 'most compatible')")


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse dimensions read from a header when the decoded image would be too big or empty."""
    if width <= 0 or height <= 0:
        raise ImageError(f"the image declares {width} x {height} pixels", where="image",
                         hint="the file is corrupt; export the photo again")
    if width * height > max_pixels:
        raise ImageError(f"the image declares {width} x {height} pixels "
                         f"({width * height / 1e6:.0f} Mpx), above the "
                         f"{max_pixels / 1e6:.0f} Mpx limit", where="image", code=TOO_LARGE,
                         hint="resize the image before sending it")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"
