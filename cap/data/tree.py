"""A folder of files, or a zip of one, read the same way: the relative paths of its files
and folders, and a file's bytes. Datasets are read in place from the archives users
download (a zip holds both shapes: folder entries need not be stored)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from PIL import Image

from cap.utils.errors import DataError, MissingResourceError


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
        """The image at relative ``path``, not yet decoded."""
        if not self.is_zip:
            return Image.open(self.root / path)
        if self._archive is None or self._archive_pid != os.getpid():  # one handle per worker
            self._archive = zipfile.ZipFile(self.root)
            self._archive_pid = os.getpid()
        try:
            data = self._archive.read(path)
        except (zipfile.BadZipFile, KeyError, OSError) as error:
            raise DataError(f"cannot read {self.source(path)}: {error}") from error
        return Image.open(io.BytesIO(data))

    def source(self, path: str) -> str:
        """Where a relative ``path`` is, for messages."""
        return f"{self.root}::{path}" if self.is_zip else str(self.root / path)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_archive"] = state["_archive_pid"] = None  # open handles do not pickle
        return state
