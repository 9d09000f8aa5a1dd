"""Class folders of image files, as most users keep their data: ``--dataset folder --data-root PATH``.

PATH is a directory, or a ``.tar`` / ``.tar.gz`` / ``.tgz`` / ``.zip`` archive, holding
``train/<class>/<image>`` and ``test/<class>/<image>`` (torchvision's ``ImageFolder`` convention,
possibly under one top folder).  Classes are the sorted folder names.  The images are decoded once
(Pillow, a progress bar) into a content-addressed uint8 cache beside the attack artifacts
(``~/.cache/bdray/datasets``, or ``$BDRAY_DATA_CACHE``): the key is the archive's bytes (a
directory: every file's path, size and modification time) plus ``image_size``, so an edited
dataset is decoded again and a second run starts in seconds.

Rules: every image must decode; a class folder must exist in both splits; all images must share
one size unless ``image_size`` resizes each to ``image_size``×``image_size`` (bilinear); the
images are grey (one channel) when every file is greyscale, else RGB; horizontal flips are on for
colour images (photographs) and off for grey ones (digits, characters).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import zipfile
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from bdray.config import ConfigError

SPLITS = ("train", "test")
CACHE_FORMAT = 1
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class FolderDataError(ConfigError):
    """A class-folder dataset that cannot be used as it is; the message says which file and why."""

    def __init__(self, root, problem: str):
        ValueError.__init__(self, f"data_root={root!s}: {problem}")
        self.field, self.value, self.allowed, self.problem = "data_root", str(root), problem, problem

    def __reduce__(self):  # crosses process boundaries (Ray) intact
        return type(self), (self.value, self.problem)


def cache_root() -> Path:
    """``$BDRAY_DATA_CACHE``, else ``datasets/`` beside the artifact store (``$BDRAY_ARTIFACTS``,
    default ``~/.cache/bdray/artifacts``)."""
    if os.environ.get("BDRAY_DATA_CACHE"):
        return Path(os.environ["BDRAY_DATA_CACHE"]).expanduser()
    artifacts = Path(os.environ.get("BDRAY_ARTIFACTS", Path.home() / ".cache" / "bdray" / "artifacts")).expanduser()
    return artifacts.parent / "datasets"


# -- reading the files -------------------------------------------------------------------------
def _is_archive(path: Path) -> bool:
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def _members(path: Path) -> Iterator[Tuple[str, bytes]]:
    """``(relative posix path, bytes)`` of every regular file, in the source's own order."""
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                yield full.relative_to(path).as_posix(), full.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, z.read(info)
    else:
        with tarfile.open(path, "r:*") as t:
            for info in t:
                if info.isfile():
                    yield info.name, t.extractfile(info).read()


def _hidden(parts: Tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _content_digest(path: Path, image_size: Optional[int]) -> str:
    h = hashlib.sha256(f"folder-dataset v{CACHE_FORMAT} size={image_size}\n".encode())
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                st = (Path(dirpath) / name).stat()
                rel = (Path(dirpath) / name).relative_to(path).as_posix()
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=32)
def _digest_memo(path: str, size: int, mtime_ns: int, image_size: Optional[int]) -> str:
    return _content_digest(Path(path), image_size)


def _source(data_root) -> Path:
    if data_root is None:
        raise ConfigError("data_root", None, "a folder or a .tar/.tar.gz/.zip archive holding train/<class>/* "
                                             "and test/<class>/* (--data-root PATH)")
    path = Path(str(data_root)).expanduser()
    if not path.exists():
        raise ConfigError("data_root", str(data_root), "an existing folder or .tar/.tar.gz/.zip archive holding "
                                                        "train/<class>/* and test/<class>/*")
    if not path.is_dir() and not _is_archive(path):
        raise ConfigError("data_root", str(data_root), "a folder or a .tar/.tar.gz/.zip archive (this file is "
                                                        "neither)")
    return path


def _layout(root, names: List[str]) -> Tuple[str, Dict[str, Dict[str, List[str]]]]:
    """The prefix above ``train/`` and ``test/`` and ``{split: {class: [file paths]}}``."""
    visible = [n for n in names if not _hidden(tuple(n.split("/")))]
    prefixes = set()
    for name in visible:
        parts = name.split("/")
        for i, part in enumerate(parts[:-1]):
            if part in SPLITS:
                prefixes.add("/".join(parts[:i]))
                break
    found = {p for p in prefixes if all(any(n.startswith((p + "/" if p else "") + s + "/") for n in visible)
                                        for s in SPLITS)}
    if not found:
        has = sorted({s for p in prefixes for s in SPLITS
                      if any(n.startswith((p + "/" if p else "") + s + "/") for n in visible)})
        missing = [s for s in SPLITS if s not in has]
        raise FolderDataError(root, f"no {' or '.join(m + '/' for m in missing)} folder found (expected "
                                    f"train/<class>/<image> and test/<class>/<image>, e.g. train/cat/0001.jpg)")
    prefix = min(found, key=lambda p: (p.count("/"), p))
    layout: Dict[str, Dict[str, List[str]]] = {s: {} for s in SPLITS}
    for name in visible:
        rel = name[len(prefix) + 1:] if prefix else name
        parts = rel.split("/")
        if parts[0] not in SPLITS:
            continue
        if len(parts) != 3:
            raise FolderDataError(root, f"{name}: images must sit directly in a class folder "
                                        f"({parts[0]}/<class>/<image>)")
        layout[parts[0]].setdefault(parts[1], []).append(name)
    for split in SPLITS:
        if not layout[split]:
            raise FolderDataError(root, f"{split}/ holds no class folders")
    only = {s: sorted(set(layout[s]) - set(layout[o])) for s, o in (("train", "test"), ("test", "train"))}
    if only["train"] or only["test"]:
        said = "; ".join(f"only in {s}/: {', '.join(c[:5])}" for s, c in only.items() if c)
        raise FolderDataError(root, f"class folders must be the same in train/ and test/ ({said})")
    return prefix, layout


def _decode(root, name: str, data: bytes, image_size: Optional[int]):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            grey = img.mode in _GREY_MODES
            img = img.convert("L" if grey else "RGB")
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8), grey
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise FolderDataError(root, f"{name} could not be decoded as an image ({type(err).__name__}: {err})") from None


def _decode_all(root, path: Path, image_size: Optional[int], verbose: bool) -> Dict[str, np.ndarray]:
    from tqdm import tqdm

    files = dict(_members(path))
    _, layout = _layout(root, list(files))
    classes = sorted(layout["train"])
    total = sum(len(v) for s in SPLITS for v in layout[s].values())
    bar = tqdm(total=total, desc=f"decoding {path.name}", unit="img", file=sys.stderr, disable=not verbose,
               mininterval=1.0)
    images: Dict[str, list] = {s: [] for s in SPLITS}
    labels: Dict[str, list] = {s: [] for s in SPLITS}
    names: Dict[str, list] = {s: [] for s in SPLITS}
    all_grey = True
    for split in SPLITS:
        for label, cls in enumerate(classes):
            for name in sorted(layout[split][cls]):
                array, grey = _decode(root, name, files.pop(name), image_size)
                all_grey &= grey
                images[split].append(array)
                labels[split].append(label)
                names[split].append(name)
                bar.update(1)
    bar.close()
    sizes = Counter(a.shape[:2] for s in SPLITS for a in images[s])
    if len(sizes) > 1:
        examples = {}
        for s in SPLITS:
            for a, n in zip(images[s], names[s]):
                examples.setdefault(a.shape[:2], n)
        said = ", ".join(f"{h}×{w} ({count:,} files, e.g. {examples[(h, w)]})" for (h, w), count in sizes.most_common())
        raise FolderDataError(root, f"images of mixed sizes: {said}; pass --image-size N (image_size=N) to resize "
                                    f"every image to N×N")
    out: Dict[str, np.ndarray] = {}
    for split in SPLITS:
        stack = [a if a.ndim == 3 else (a[..., None] if all_grey else np.repeat(a[..., None], 3, axis=2))
                 for a in images[split]]
        out[f"x_{split}"] = np.stack(stack).astype(np.uint8)          # N×H×W×C
        out[f"y_{split}"] = np.asarray(labels[split], dtype=np.int64)
    out["class_names"] = np.asarray(classes)
    return out


# -- the cache ---------------------------------------------------------------------------------
def _cached(data_root, image_size: Optional[int], verbose: bool = True) -> Tuple[Path, dict]:
    """The cache file of ``data_root`` at ``image_size`` (decoded now if absent) and its summary."""
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1):
        raise ConfigError("image_size", image_size, "a positive integer (images are resized to N×N), or None")
    path = _source(data_root)
    if path.is_dir():  # a nested change leaves the top folder's stat as it was: walk it every time
        digest = _content_digest(path, image_size)
    else:
        st = path.stat()
        digest = _digest_memo(str(path.resolve()), st.st_size, st.st_mtime_ns, image_size)
    folder = cache_root()
    file, meta_file = folder / f"folder_{digest[:24]}.npz", folder / f"folder_{digest[:24]}.json"
    if file.exists() and meta_file.exists():
        return file, json.loads(meta_file.read_text())
    arrays = _decode_all(data_root, path, image_size, verbose)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, file)
    x = arrays["x_train"]
    meta = {"source": str(path.resolve()), "image_size": image_size, "class_names": arrays["class_names"].tolist(),
            "shape": [int(x.shape[3]), int(x.shape[1]), int(x.shape[2])],
            "train": int(len(arrays["y_train"])), "test": int(len(arrays["y_test"]))}
    tmp = meta_file.with_name(meta_file.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, meta_file)
    if verbose:
        print(f"folder dataset {path.name}: {meta['train']:,} train / {meta['test']:,} test images "
              f"{meta['shape'][1]}×{meta['shape'][2]}×{meta['shape'][0]}, classes (label order) "
              f"{', '.join(f'{i}={c}' for i, c in enumerate(meta['class_names']))}; cached at {file}", file=sys.stderr)
    return file, meta


def folder_info(data_root, image_size: Optional[int] = None) -> Tuple[Tuple[int, int, int], Tuple[str, ...]]:
    """``((C, H, W), class names)`` of a class-folder dataset (decoding it into the cache if needed)."""
    _, meta = _cached(data_root, image_size)
    return tuple(meta["shape"]), tuple(meta["class_names"])


def load_folder(root=None, image_size: Optional[int] = None, verbose: bool = True, **_ignored):
    """The class-folder dataset at ``root`` (a folder or archive) as a ``Dataset``; classes in
    sorted folder order (printed once, when first decoded)."""
    from bdray.data.files import _from_nchw
    from bdray.data.splits import nhwc_to_nchw

    file, meta = _cached(root, image_size, verbose)
    with np.load(file, allow_pickle=False) as z:
        x_tr, y_tr, x_te, y_te = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    classes = tuple(meta["class_names"])
    name = Path(str(root)).name.split(".")[0] or "folder"
    colour = x_tr.shape[3] == 3
    return _from_nchw(name, nhwc_to_nchw(x_tr).numpy(), y_tr, nhwc_to_nchw(x_te).numpy(), y_te, classes,
                      hflip=colour)
