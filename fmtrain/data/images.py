"""``image_folder``: a folder with one sub-folder of images per class, loaded into memory.

Every image is decoded into one uint8 array of shape (n, height, width, channels), so this suits
data sets that fit in memory (tens of thousands of small images, not ImageNet). Decoding follows
``keras.utils.load_img(path, color_mode=..., target_size=..., interpolation="bilinear")`` — Pillow,
converted to the colour mode, resized bilinearly — but calls Pillow directly so the data layer and
its tests stay free of TensorFlow; ``tests/test_preprocess.py`` checks the pixels are identical.
With ``stream: true`` the images are decoded inside tf.data instead, to the same pixels
(:mod:`fmtrain.data.folder_stream`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

if TYPE_CHECKING:
    import numpy as np
from pydantic import Field, field_validator

from fmtrain.data import folder_stream, folders
from fmtrain.data.encoding import EncoderState
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig, fixed_task_reason
from fmtrain.data.tabular import resolve_path
from fmtrain.errors import DataError

# The suffixes keras.utils.image_dataset_from_directory accepts.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
PIL_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
ColorMode = Literal["rgb", "grayscale", "rgba"]


class ImageFolderSource(SourceConfig):
    """Images in one sub-folder per class; the classes are the sub-folder names."""

    source: Literal["image_folder"] = "image_folder"
    """image_folder: a folder with one sub-folder of images per class."""
    path: str
    """The folder (relative to the config file)."""
    image_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = None
    """[height, width] every image is resized to (bilinear) when loaded; default: the images' own size,
    which must then be the same for every image."""
    color_mode: ColorMode = "rgb"
    """Channels loaded: rgb (3), grayscale (1) or rgba (4)."""
    stream: bool = False
    """Decode the images inside tf.data instead of into memory (data larger than memory)."""
    shuffle_buffer: int | None = Field(None, ge=1)
    """With stream: images permuted together (default 10000)."""
    adapt_samples: int | Literal["all"] | None = None
    """With stream: images adapting steps are fitted on (default 10000)."""

    @field_validator("shuffle_buffer", "adapt_samples")
    @classmethod
    def _stream_only(cls, value, info):
        return folder_stream.stream_only(value, info)

    @property
    def streams(self) -> bool:
        """``stream: true``: :func:`fmtrain.data.build` returns streams (:meth:`build_streams`)."""
        return self.stream

    def build_streams(self, *, seed: int, encoders: EncoderState):
        """The images decoded inside tf.data: :func:`fmtrain.data.folder_stream.build`."""
        decoder = folder_stream.ImageDecoder(self.color_mode, tuple(self.image_size) if self.image_size else None)
        return folder_stream.build(self, seed=seed, encoders=encoders, suffixes=IMAGE_SUFFIXES, decoder=decoder,
                                   hint="a folder with one sub-folder of images per class")

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "classification"


def read_image(path: Path, *, size: tuple[int, int] | None, color_mode: str) -> np.ndarray:
    """Decode one image as uint8 (height, width, channels), resized to ``size`` = (height, width) if given.

    Raises:
        DataError: the file is not an image Pillow can read.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = PIL_MODES[color_mode]
            if image.mode != mode:
                image = image.convert(mode)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err}); remove or replace the file") from err
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_images(files: list[Path], *, size: tuple[int, int] | None, color_mode: str, fix: str) -> np.ndarray:
    """Decode ``files`` into one uint8 array; without ``size`` every image must have the first one's size.

    Raises:
        DataError: an unreadable image, or one of another size (``fix`` says what to do).
    """
    import numpy as np

    first = read_image(files[0], size=size, color_mode=color_mode)
    images = np.empty((len(files), *first.shape), dtype=np.uint8)
    images[0] = first
    for i, path in enumerate(files[1:], start=1):
        pixels = read_image(path, size=size, color_mode=color_mode)
        if pixels.shape != first.shape:
            raise DataError(f"{path}: image is {pixels.shape[1]}×{pixels.shape[0]} pixels but {files[0]} is "
                            f"{first.shape[1]}×{first.shape[0]}; {fix}")
        images[i] = pixels
    return images


@SOURCES.register("image_folder", params=ImageFolderSource)
def load_image_folder(cfg: ImageFolderSource, saved: EncoderState) -> Loaded:
    """Images in one sub-folder per class (data.path), loaded into memory as uint8; data.image_size resizes."""

    root = resolve_path(cfg.path, "image_folder", "a folder with one sub-folder of images per class", folder=True)
    found = folders.class_files(root, IMAGE_SUFFIXES, "image")
    labels = folders.encode_folder_labels(found, saved)
    color_mode = cfg.color_mode
    size = tuple(cfg.image_size) if cfg.image_size is not None else None
    images = read_images(found.files, size=size, color_mode=color_mode,
                         fix="set data.image_size: [height, width] to resize every image")
    return Loaded(images, labels.y, f"image_folder {root}", "classification", fixed_task_reason(cfg),
                  class_names=labels.class_names, label_state=labels.state)
