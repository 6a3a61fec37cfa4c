"""What each operation's images are made of, rendered fresh or from cached templates,
as toy pictures or at OpenAI's encoded sizes.

Generations draw a scene; edits draw one under the mask; variations transform the
input; partial images are coarser previews of the final one. With ``cached``, a
generation's pixels are rendered once per (model, size, format, background,
compression, and quality when real-sized) and each image only gets its identity stamped
into a copy of the template (~0.02 ms). With ``real_sizes``, PNG, JPEG and WebP
pictures are photographic-like and as large as OpenAI's (:mod:`.photo`,
:mod:`.real_sizes`); GIF and SVG stay as they are.
"""

from __future__ import annotations

import io
import threading
from dataclasses import replace

from PIL import Image, ImageFilter, ImageOps

from imagegate_server.emulator.photo import GrainCalibration, add_grain, photo_scene
from imagegate_server.emulator.real_sizes import target_bytes_per_pixel
from imagegate_server.emulator.render import PLACEHOLDER, RenderSpec, draw_scene, encode, stamp

# Bounds on cached templates, for exotic size mixes (real-sized ones are megabytes).
_MAX_TEMPLATES = 256
_MAX_TEMPLATE_BYTES = 512 * 1024 * 1024


class Renderer:
    """Renders requested images (see module doc)."""

    def __init__(self, *, cached: bool = False, real_sizes: bool = False) -> None:
        self.cached = cached
        self.real_sizes = real_sizes
        self._templates: dict[RenderSpec, bytes] = {}
        self._template_bytes = 0
        self._lock = threading.Lock()
        self._calibration = GrainCalibration()

    def generate(self, spec: RenderSpec) -> bytes:
        if not self.cached:
            return encode(self._scene(spec), spec, spec.identity)
        key = replace(spec, prompt="", index=0, quality=spec.quality if self.real_sizes else "")
        with self._lock:
            template = self._templates.get(key)
        if template is None:
            template = encode(self._scene(key, with_text=False), key, PLACEHOLDER)
            with self._lock:
                too_many = len(self._templates) >= _MAX_TEMPLATES
                if too_many or self._template_bytes + len(template) > _MAX_TEMPLATE_BYTES:
                    self._templates.clear()
                    self._template_bytes = 0
                self._templates[key] = template
                self._template_bytes += len(template)
        return stamp(template, spec.identity, spec.output_format)

    def edit(
        self,
        spec: RenderSpec,
        base: Image.Image,
        mask: Image.Image | None,
        markup: Image.Image | None,
    ) -> bytes:
        """Change only the pixels under the mask's fully transparent area (or, without a
        mask, the image's own fully transparent area, or where ``markup`` is drawn).

        Inputs are decoded RGBA images. When the output size is the input's, the other
        pixels are the input's exactly (resize to the same size is a copy); otherwise the
        input is scaled first and "unchanged" means "as scaled". Real-sized, only the
        drawn region is photographic: the rest keeps the input's pixels and their size."""
        size = (spec.width, spec.height)
        original = base.resize(size)
        if mask is not None:
            region = _alpha_zero(mask.resize(size, Image.Resampling.NEAREST))
        elif markup is not None:
            overlay = markup.resize(size, Image.Resampling.NEAREST)
            region = overlay.getchannel("A").point(lambda a: 255 if a > 0 else 0)
        else:
            region = _alpha_zero(original)
        scene = self._scene(spec).convert("RGBA")
        return encode(Image.composite(scene, original, region), spec, spec.identity)

    def variation(self, spec: RenderSpec, source: Image.Image) -> bytes:
        """A visibly related transform: mirrored/rotated, hue-shifted, lightly blurred
        (real-sized: with grain on top, so the size follows the target, not the input)."""
        image = source.convert("RGB")
        if spec.index % 2:
            image = ImageOps.mirror(image)
        image = image.rotate(8 * ((spec.index % 5) - 2), resample=Image.Resampling.BILINEAR)
        channels = image.split()
        shift = spec.index % 3
        image = Image.merge("RGB", channels[shift:] + channels[:shift])
        image = image.filter(ImageFilter.GaussianBlur(1)).resize((spec.width, spec.height))
        grain = self._grain(spec)
        if grain is not None:
            image = add_grain(image, spec, grain)
        return encode(image.convert("RGBA"), spec, spec.identity)

    def partial(self, final: bytes, spec: RenderSpec, step: int, steps: int) -> bytes:
        """A coarser preview of ``final``: pixelated more for earlier partial images
        (real-sized: with fresh grain, so a preview weighs what the final image does)."""
        image = _open_rgba(final)
        factor = 2 ** (steps - step + 1)
        small = image.resize((max(1, spec.width // factor), max(1, spec.height // factor)))
        preview = small.resize(image.size, Image.Resampling.NEAREST)
        grain = self._grain(spec)
        if grain is not None:
            opaque = preview if spec.transparent else preview.convert("RGB")
            preview = add_grain(opaque, spec, grain, salt=f"partial{step}")
        return encode(preview, spec, spec.identity)

    def _scene(self, spec: RenderSpec, *, with_text: bool = True) -> Image.Image:
        grain = self._grain(spec)
        if grain is None:
            return draw_scene(spec, with_text=with_text)
        return photo_scene(spec, grain, with_text=with_text)

    def _grain(self, spec: RenderSpec) -> float | None:
        """The grain strength that makes ``spec``'s picture real-sized; None when the
        pictures are toys (not real-sized, or a format without figures)."""
        if not self.real_sizes:
            return None
        target = target_bytes_per_pixel(
            spec.output_format, spec.quality, spec.compression, spec.transparent
        )
        if target is None:
            return None
        return self._calibration.strength(spec, target, _encode_placeholder)


def _encode_placeholder(image: Image.Image, spec: RenderSpec) -> bytes:
    return encode(image, spec, PLACEHOLDER)


def _open_rgba(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        return opened.convert("RGBA")


def _alpha_zero(image: Image.Image) -> Image.Image:
    return image.getchannel("A").point(lambda a: 255 if a == 0 else 0)
