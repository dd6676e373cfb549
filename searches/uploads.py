"""Data sets users bring: checking uploads, unpacking them safely, reading text tables.

Two kinds are accepted:

* an image folder as a ``.zip``: one folder per class holding that class's PNG or
  JPEG images (a single enclosing folder is allowed);
* a text table as ``.csv`` (a header naming the columns ``text`` and ``label``) or
  ``.jsonl`` (one object per line with the keys ``text`` and ``label``), in UTF-8.

Whatever is refused raises ``UploadError`` with a message for a person. An upload is
unpacked into a temporary folder *inside* the owner's upload folder and renamed into
place only once all of it is valid; on any failure the temporary folder is removed,
so a refused upload leaves nothing behind. Archive members are never extracted with
``zipfile.extract``: each name is checked (no absolute path, no ``..``, no backslash),
links and special files are refused from their mode bits, and every member is
inflated here, counting the bytes it really expands to against both its declared
size and the overall limit, so a lying header cannot smuggle a zip bomb through.

No Django model is imported here; ``workers.datasets`` reads text tables with the
same ``read_text_table`` so the worker and the upload form agree on what is valid.
"""
from __future__ import annotations

import codecs
import copy
import csv
import io
import json
import os
import re
import shutil
import stat
import tempfile
import zlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEXT_SUFFIXES = (".csv", ".jsonl")
ARCHIVE_SUFFIXES = (".zip",)
IMAGE_FORMATS = ("PNG", "JPEG")
MIN_EXAMPLES = 10  # enough for a train, a validation and a test split
MAX_CLASSES = 1000
CHUNK = 1 << 16
KIND_IMAGES = "image-folder"
KIND_TEXT = "text"
# Written by other tools beside the real content; skipped, never extracted.
_IGNORED_PARTS = ("__MACOSX",)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+([^\s'\"/]+)")


class UploadError(Exception):
    """An upload refused, with a message that says why and what to do. Absolute paths
    that a library put into its reason (PIL names the file it could not read) are cut to
    their last part: the page never shows where the server keeps files."""

    def __init__(self, message: str):
        super().__init__(_ABSOLUTE_PATH.sub(r"\1", str(message)))


@dataclass
class Checked:
    """What a valid upload turned out to be."""

    kind: str
    num_examples: int
    class_names: list
    size: int  # bytes stored on disk


@dataclass
class TextTable:
    texts: list
    labels: list  # strings, one per text

    @property
    def class_names(self) -> list:
        return sorted(set(self.labels))


def human_size(n: int) -> str:
    """A size for people: MB from 0.1 MB, bytes below."""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def kind_of(filename: str) -> str:
    """image-folder or text, from the file's name; refuses anything else."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in ARCHIVE_SUFFIXES:
        return KIND_IMAGES
    if suffix in TEXT_SUFFIXES:
        return KIND_TEXT
    raise UploadError(f"{Path(filename or '').name or 'The file'} is neither a .zip of image folders nor "
                      f"a .csv or .jsonl text file.")


def store_upload(fileobj, filename: str, dest: Path, *, max_bytes: int, max_files: int,
                 max_pixels: int) -> Checked:
    """Check the uploaded ``fileobj`` and keep it at ``dest`` (a folder that must not exist yet).

    On any refusal nothing remains: neither ``dest`` nor any temporary file.
    """
    dest = Path(dest)
    kind = kind_of(filename)
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise UploadError(f"A data set folder named {dest.name!r} is already there; choose another name.")
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
    try:
        if kind == KIND_TEXT:
            staged = tmp / "data"
            staged.mkdir()
            target = staged / f"data{Path(filename).suffix.lower()}"
            _copy_limited(fileobj, target, max_bytes)
            table = read_text_table(target)
            checked = Checked(KIND_TEXT, len(table.texts), table.class_names, target.stat().st_size)
        else:
            staged = tmp / "data"
            staged.mkdir()
            extract_zip(fileobj, staged, max_bytes=max_bytes, max_files=max_files)
            staged = _content_root(staged)
            names, count = check_image_folder(staged, max_pixels=max_pixels)
            checked = Checked(KIND_IMAGES, count, names, _tree_size(staged))
        os.rename(staged, dest)  # atomic on one file system; dest did not exist
        return checked
    except OSError as exc:
        raise UploadError(f"The upload could not be stored: {exc.strerror or exc}.") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_limited(fileobj, target: Path, max_bytes: int) -> None:
    if hasattr(fileobj, "seek"):
        fileobj.seek(0)
    written = 0
    with open(target, "xb") as out:
        while True:
            chunk = fileobj.read(CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > max_bytes:
                raise UploadError(f"The file is larger than the limit of {human_size(max_bytes)}.")
            out.write(chunk)


# --- zip archives -------------------------------------------------------------------

def member_parts(name: str) -> list[str]:
    """The path components of an archive member, refusing any name that could land outside."""
    if "\x00" in name:
        raise UploadError(f"The archive member {name!r} has a NUL byte in its name.")
    if "\\" in name:
        raise UploadError(f"The archive member {name!r} has a backslash in its name; "
                          f"make the zip with forward slashes.")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadError(f"The archive member {name!r} has an absolute path; refused.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UploadError(f"The archive member {name!r} points outside the archive (path traversal); refused.")
    return parts


def _member_type(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "link"
    if kind in (0, stat.S_IFREG, stat.S_IFDIR):
        return "dir" if info.is_dir() or kind == stat.S_IFDIR else "file"
    return "special"


def extract_zip(fileobj, dest: Path, *, max_bytes: int, max_files: int) -> int:
    """Unpack the zip archive ``fileobj`` into the existing folder ``dest``; returns bytes written."""
    dest = Path(dest)
    root = dest.resolve()
    try:
        if hasattr(fileobj, "seek"):
            fileobj.seek(0)
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise UploadError(f"The file is not a valid zip archive ({exc}).") from exc
    with archive:
        files = _files_to_extract(archive, root, dest)
        if len(files) > max_files:
            raise UploadError(f"The archive holds {len(files):,} files; the limit is {max_files:,}.")
        declared = sum(info.file_size for info, _ in files)
        if declared > max_bytes:
            raise UploadError(f"The archive expands to {human_size(declared)}, more than the limit of "
                              f"{human_size(max_bytes)}.")
        total = 0
        for info, parts in files:
            total = _extract_member(archive, info, _inside(root, dest.joinpath(*parts)), total, max_bytes)
        return total


def _files_to_extract(archive: zipfile.ZipFile, root: Path, dest: Path) -> list:
    """(info, path parts) of the members to write; makes the folders; refuses what must not land."""
    files = []
    for info in archive.infolist():
        parts = member_parts(info.filename)
        kind = _member_type(info)
        if kind == "link":
            raise UploadError(f"The archive member {info.filename!r} is a symbolic link; links are refused.")
        if kind == "special":
            raise UploadError(f"The archive member {info.filename!r} is not a regular file; refused.")
        if info.flag_bits & 0x1:
            raise UploadError(f"The archive member {info.filename!r} is encrypted; upload an unencrypted zip.")
        if not parts or parts[0] in _IGNORED_PARTS or any(p.startswith(".") for p in parts):
            continue
        if kind == "dir":
            _inside(root, dest.joinpath(*parts)).mkdir(parents=True, exist_ok=True)
            continue
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(f"The archive member {info.filename!r} uses compression method "
                              f"{info.compress_type}; only stored and deflated members are accepted.")
        files.append((info, parts))
    return files


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, total: int,
                    max_bytes: int) -> int:
    """Write one member to ``target`` as it really expands; returns the archive's bytes so far.

    ``ZipFile.open`` checks the CRC at the end of the member and stops at the size the
    header declares; it is told one read more than that, so a member that expands beyond
    its header (a lying zip bomb) shows here, before the CRC check of a cut-off member.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    probe = copy.copy(info)
    probe.file_size = info.file_size + CHUNK + 1
    written = 0
    try:
        out = open(target, "xb")
    except FileExistsError:
        raise UploadError(f"The archive holds {info.filename!r} twice.") from None
    try:
        with out, archive.open(probe) as member:
            while chunk := member.read(CHUNK):
                written += len(chunk)
                total += len(chunk)
                if written > info.file_size:
                    raise UploadError(f"The archive member {info.filename!r} expands beyond its declared size "
                                      f"of {human_size(info.file_size)} (a zip bomb?); refused.")
                if total > max_bytes:
                    raise UploadError(f"The archive expands to more than the limit of "
                                      f"{human_size(max_bytes)}; refused.")
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UploadError(f"The archive member {info.filename!r} is corrupt ({exc}); make the zip again.") from exc
    if written != info.file_size:
        raise UploadError(f"The archive member {info.filename!r} is corrupt (its size or checksum "
                          f"does not match); make the zip again.")
    return total


def _inside(root: Path, path: Path) -> Path:
    """``path``, after checking that it stays under ``root`` (defence in depth)."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise UploadError(f"The archive member {path.name!r} would land outside the upload folder; refused.")
    return path


def _content_root(folder: Path) -> Path:
    """Step into a single enclosing folder (``myset/cat/1.png`` → classes under ``myset``)."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            inner = [e for e in entries[0].iterdir() if not e.name.startswith(".")]
            if inner and all(e.is_dir() for e in inner):
                folder = entries[0]
                continue
        return folder


def check_image_folder(folder: Path, *, max_pixels: int) -> tuple[list, int]:
    """(class names, number of images) of a folder of class folders; refuses what will not train."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    entries = sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    stray = [e.name for e in entries if not e.is_dir()]
    if stray:
        raise UploadError(f"{stray[0]!r} is not inside a class folder: put each image in the folder of its class "
                          f"(for example cat/1.png, dog/2.png).")
    classes = [e.name for e in entries]
    if len(classes) < 2:
        raise UploadError(f"Found {len(classes)} class folder{'s' if len(classes) != 1 else ''}; a classifier "
                          f"needs at least two (one folder per class, each holding its images).")
    if len(classes) > MAX_CLASSES:
        raise UploadError(f"Found {len(classes):,} class folders; the limit is {MAX_CLASSES:,}.")
    count = 0
    for name in classes:
        images = 0
        for path in sorted((folder / name).rglob("*")):
            if path.is_dir():
                continue
            rel = path.relative_to(folder).as_posix()
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise UploadError(f"{rel!r} is not a PNG or JPEG image (by its name); remove it or convert it.")
            try:
                with Image.open(path) as im:
                    if im.format not in IMAGE_FORMATS:
                        raise UploadError(f"{rel!r} is a {im.format} file, not a PNG or JPEG image.")
                    width, height = im.size
                    if width * height > max_pixels:
                        raise UploadError(f"{rel!r} is {width}×{height} pixels, more than the limit of "
                                          f"{max_pixels:,} pixels.")
                    im.load()
                    im.convert("RGB")  # every accepted mode has to reach RGB (or L) for training
            except UploadError:
                raise
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise UploadError(f"{rel!r} cannot be read as an image ({exc}).") from exc
            images += 1
        if not images:
            raise UploadError(f"The class folder {name!r} has no images; every class needs at least one.")
        count += images
    if count < MIN_EXAMPLES:
        raise UploadError(f"Found {count} images; at least {MIN_EXAMPLES} are needed to split into "
                          f"training, validation and test sets.")
    return classes, count


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# --- text tables ---------------------------------------------------------------------

def read_text_table(path: Path) -> TextTable:
    """The texts and labels of a ``.csv`` or ``.jsonl`` file; refuses with the line at fault."""
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UploadError(f"Line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file "
                          f"as UTF-8.") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UploadError(f"Line {line} holds a NUL byte: this is not a text table.")
    if path.suffix.lower() == ".csv":
        texts, labels = _read_csv(text)
    elif path.suffix.lower() == ".jsonl":
        texts, labels = _read_jsonl(text)
    else:
        raise UploadError(f"{path.name} is neither .csv nor .jsonl.")
    table = TextTable(texts, labels)
    classes = table.class_names
    if not texts:
        raise UploadError("The file holds no rows.")
    if len(classes) < 2:
        raise UploadError(f"Every row has the label {classes[0]!r}; a classifier needs at least two labels.")
    if len(classes) > MAX_CLASSES:
        raise UploadError(f"The file has {len(classes):,} different labels; the limit is {MAX_CLASSES:,}.")
    if len(texts) < MIN_EXAMPLES:
        raise UploadError(f"The file has {len(texts)} rows; at least {MIN_EXAMPLES} are needed to split into "
                          f"training, validation and test sets.")
    return table


def _read_csv(text: str):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise UploadError("The file is empty; the first line must be a header naming text and label.")
        names = [h.strip().lower() for h in header]
        if "text" not in names or "label" not in names:
            raise UploadError(f"The CSV header must name the columns text and label; found: "
                              f"{', '.join(repr(h) for h in header[:10])}.")
        ti, li = names.index("text"), names.index("label")
        texts, labels = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise UploadError(f"Line {reader.line_num} has {len(row)} fields; the header has {len(header)}.")
            texts.append(_check_text(row[ti], reader.line_num))
            labels.append(_check_label(row[li], reader.line_num))
    except csv.Error as exc:
        raise UploadError(f"Line {reader.line_num} is not valid CSV ({exc}).") from None
    return texts, labels


def _read_jsonl(text: str):
    texts, labels = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UploadError(f"Line {number} is not valid JSON ({getattr(exc, 'msg', exc)}).") from None
        if not isinstance(row, dict):
            raise UploadError(f"Line {number} is not a JSON object with the keys text and label.")
        for key in ("text", "label"):
            if key not in row:
                raise UploadError(f"Line {number} has no {key!r} key.")
        if not isinstance(row["text"], str):
            raise UploadError(f"Line {number}: the text must be a string.")
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise UploadError(f"Line {number}: the label must be a string or a whole number.")
        texts.append(_check_text(row["text"], number))
        labels.append(_check_label(str(label), number))
    return texts, labels


def _check_text(value: str, line: int) -> str:
    if not value.strip():
        raise UploadError(f"Line {line}: the text is empty.")
    return value


def _check_label(value: str, line: int) -> str:
    value = value.strip()
    if not value:
        raise UploadError(f"Line {line}: the label is empty.")
    if len(value) > 200:
        raise UploadError(f"Line {line}: the label is longer than 200 characters.")
    return value
