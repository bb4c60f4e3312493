"""A folder of files, or a zip of one, read the same way: the relative paths of its files
and folders, and a file's bytes. Datasets are read in place from the archives users
download (a zip holds both shapes: folder entries need not be stored).

Every image file a dataset reads is opened by :func:`open_image_file` or
:meth:`FileTree.open_image`, which refuse one too large to be an image before it costs
memory: :data:`MAX_FILE_BYTES` on the file, :data:`MAX_PIXELS` on its header's size.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import IO

from PIL import Image

from cap.utils.errors import DataError, MissingResourceError

#: Largest image file read, in bytes. A zip member is read whole into memory, and a tiny
#: zip can hold a member of gigabytes of zeros: 64 MiB is far above any dataset image (the
#: largest members of the MVTec 3D-AD tire zip and the CIFAR-10 JPEG zip are 166 kB and
#: 1.1 kB; MVTec AD's largest images, 1024 × 1024 PNGs, a few MB) and far below what
#: exhausts a machine.
MAX_FILE_BYTES = 64 * 2**20
#: Largest image, in pixels (width × height, from the header, before decoding): Pillow's
#: default ``Image.MAX_IMAGE_PIXELS`` (1 GiB / 4 bytes per pixel / 3, about 89.5 Mpixel),
#: where Pillow itself only warns up to twice that. Stated here, so that a library that
#: sets ``Image.MAX_IMAGE_PIXELS = None`` does not lift it; dataset images are ~1 Mpixel.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


def ignored(part: str) -> bool:
    """Hidden entries and macOS zip metadata."""
    return part.startswith(".") or part == "__MACOSX"


class FileTree:
    """The files under ``root``, a folder or a ``.zip`` (``layout`` names what is expected
    there, for errors); picklable for DataLoader workers, each opening its own handle."""

    def __init__(self, root: str | os.PathLike[str], layout: str) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise MissingResourceError(f"{self.root} does not exist; expected {layout}")
        self.is_zip = not self.root.is_dir()
        if self.is_zip and not zipfile.is_zipfile(self.root):
            raise DataError(
                f"{self.root} is neither a folder nor a readable .zip; expected {layout}"
            )
        self.files, self.folders = self._list()
        self._archive: zipfile.ZipFile | None = None
        self._archive_pid: int | None = None

    def _list(self) -> tuple[list[str], set[str]]:
        """Relative POSIX paths of every file and every folder."""
        files: list[str] = []
        folders: set[str] = set()
        if not self.is_zip:
            for folder, subfolders, names in os.walk(self.root, followlinks=True):
                relative = Path(folder).relative_to(self.root).as_posix()
                prefix = "" if relative == "." else relative + "/"
                folders.update(prefix + name for name in subfolders)
                files.extend(prefix + name for name in names)
            return files, folders
        with zipfile.ZipFile(self.root) as archive:
            for member in archive.namelist():
                if member.endswith("/"):
                    folders.add(member.rstrip("/"))
                else:
                    files.append(member)
        for path in files:  # zips need not store folder entries
            parent = path.rpartition("/")[0]
            while parent and parent not in folders:
                folders.add(parent)
                parent = parent.rpartition("/")[0]
        return files, folders

    def open_image(self, path: str) -> Image.Image:
        """The image at relative ``path``, not yet decoded; a member or file larger than
        :data:`MAX_FILE_BYTES`, or an image of more than :data:`MAX_PIXELS`, raises
        :class:`DataError` naming it."""
        if not self.is_zip:
            return open_image_file(self.root / path)
        if self._archive is None or self._archive_pid != os.getpid():  # one handle per worker
            self._archive = zipfile.ZipFile(self.root)
            self._archive_pid = os.getpid()
        source = self.source(path)
        try:
            info = self._archive.getinfo(path)
            check_file_size(info.file_size, source)  # before inflating a byte
            with self._archive.open(info) as member:
                data = member.read(MAX_FILE_BYTES + 1)  # bounded, whatever the header says
        except (zipfile.BadZipFile, KeyError, OSError) as error:
            raise DataError(f"cannot read {source}: {error}") from error
        check_file_size(len(data), source)  # a header that lies (zipfile stops at it, too)
        return open_checked_image(io.BytesIO(data), source)

    def source(self, path: str) -> str:
        """Where a relative ``path`` is, for messages."""
        return f"{self.root}::{path}" if self.is_zip else str(self.root / path)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_archive"] = state["_archive_pid"] = None  # open handles do not pickle
        return state


def open_image_file(path: Path) -> Image.Image:
    """The image file at ``path``, not yet decoded, within :data:`MAX_FILE_BYTES` and
    :data:`MAX_PIXELS` (:class:`DataError` naming it otherwise)."""
    check_file_size(path.stat().st_size, str(path))
    return open_checked_image(path, str(path))


def check_file_size(size: int, source: str) -> None:
    """Refuse an image file of more than :data:`MAX_FILE_BYTES`."""
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{source} holds {size} bytes, more than the {MAX_FILE_BYTES} an image file may have"
        )


def open_checked_image(file: Path | IO[bytes], source: str) -> Image.Image:
    """``Image.open`` (the header only) refusing an image of more than :data:`MAX_PIXELS`
    pixels, whose decoding alone could take gigabytes: a decompression bomb."""
    try:
        image = Image.open(file)
    except Image.DecompressionBombError as error:  # beyond Pillow's own limit
        raise DataError(f"{source} refused as a decompression bomb: {error}") from error
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise DataError(
            f"{source} is {width}x{height} pixels, more than the {MAX_PIXELS} an image may "
            "have: refused as a decompression bomb"
        )
    return image
