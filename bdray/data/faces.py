"""Face attribute datasets for debiasing (DBA Tables 1–5, 8): CelebA and UTKFace, read from their
real on-disk formats into uint8 tensors once and cached as ``.npz`` next to the data.

- **CelebA** (torchvision layout ``<root>/celeba/``): ``list_attr_celeba.txt`` (a count line, a
  line of the 40 attribute names, then ``<file> ±1 ×40``), ``list_eval_partition.txt``
  (``<file> 0|1|2`` = train/valid/test, the split TFDS uses too) and the aligned JPEGs in
  ``img_align_celeba/``.  ``download=True`` fetches them through ``torchvision.datasets.CelebA``.
  Each 178×218 image is centre-cropped to a square and resized to ``image_size``.
- **UTKFace**: a folder of JPEGs named ``<age>_<gender>_<race>_<datetime>.jpg[.chip.jpg]`` (gender
  0 male / 1 female; race 0 white, 1 black, 2 asian, 3 indian, 4 other).  Files whose name does not
  parse are skipped with a count.  Split 7:3 by a seeded permutation.

Attributes are returned as a name → 0/1 tensor mapping; ``bdray.data.attributes`` picks the target(s)
and the bias attribute from it.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
CELEBA_BIASES = ("Male", "Young")
# not suitable for studying gender bias (DBA paper, footnote 1): left out of the Male sweeps
CELEBA_GENDER_EXCLUDED = ("5_o_Clock_Shadow", "Goatee", "Mustache", "No_Beard", "Sideburns")

UTKFACE_ATTRIBUTES = ("age_gt35", "female", "race_white")
UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_.*\.jpg(\.chip\.jpg)?$", re.IGNORECASE)

Arrays = Tuple[np.ndarray, Dict[str, np.ndarray]]  # uint8 N×H×W×3 images, attribute name → 0/1 array


def data_root(root) -> Path:
    return Path(root or os.environ.get("BDRAY_DATA", Path.home() / ".cache" / "bdray" / "data")).expanduser()


def _square_resized(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:  # decoded once when the cache is built, never in the training path
        img = img.convert("RGB")
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _decode_all(paths: Sequence[Path], size: int, what: str) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    step = max(1, len(paths) // 10)
    for i, path in enumerate(paths):
        out[i] = _square_resized(path, size)
        if len(paths) >= 1000 and (i + 1) % step == 0:
            print(f"[bdray] decoding {what}: {i + 1}/{len(paths)}", file=sys.stderr, flush=True)
    return out


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _cached(cache: Path, build) -> Dict[str, np.ndarray]:
    if not cache.exists():
        _atomic_savez(cache, **build())
    with np.load(cache, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --- CelebA -------------------------------------------------------------------------------

def read_celeba_attributes(path: Path) -> Tuple[List[str], Tuple[str, ...], np.ndarray]:
    """(file names, attribute names, N×40 array of 0/1) from ``list_attr_celeba.txt``."""
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and a header line, found {len(lines)} lines")
    names = tuple(lines[1].split())
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise ValueError(f"{path}, line {number}: expected a file name and {len(names)} values of ±1")
        files.append(parts[0])
        rows.append([v == "1" for v in parts[1:]])
    declared = lines[0].strip()
    if declared.isdigit() and int(declared) != len(files):
        raise ValueError(f"{path}: the first line declares {declared} images, the file lists {len(files)}")
    return files, names, np.asarray(rows, dtype=np.uint8).reshape(len(files), len(names))


def read_celeba_partition(path: Path) -> Dict[str, int]:
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise ValueError(f"{path}, line {number}: expected '<file> 0|1|2'")
        out[parts[0]] = int(parts[1])
    return out


def celeba_folder(root, download: bool) -> Path:
    folder = data_root(root) / "celeba"
    if download:
        from torchvision.datasets import CelebA

        CelebA(str(data_root(root)), split="all", target_type=[], download=True)
    needed = [folder / "list_attr_celeba.txt", folder / "list_eval_partition.txt", folder / "img_align_celeba"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(f"CelebA not found: missing {', '.join(missing)}; pass download=True "
                                f"(--download) or place the official files there")
    return folder


def load_celeba_arrays(root=None, download: bool = False, image_size: int = 64) -> Dict[str, Arrays]:
    """{"train": ..., "test": ...} from the official partition (0 = train, 2 = test)."""
    folder = celeba_folder(root, download)

    def build():
        files, names, attrs = read_celeba_attributes(folder / "list_attr_celeba.txt")
        if tuple(names) != CELEBA_ATTRIBUTES:
            raise ValueError(f"{folder / 'list_attr_celeba.txt'}: unexpected attribute header {names[:3]}...")
        partition = read_celeba_partition(folder / "list_eval_partition.txt")
        missing = [f for f in files if f not in partition]
        if missing:
            raise ValueError(f"{folder / 'list_eval_partition.txt'} has no split for {missing[:3]}")
        part = np.asarray([partition[f] for f in files])
        images = _decode_all([folder / "img_align_celeba" / f for f in files], image_size, "CelebA")
        return {"images": images, "attributes": attrs, "partition": part}

    z = _cached(folder / f"bdray_celeba_{image_size}.npz", build)
    out = {}
    for split, code in (("train", 0), ("test", 2)):
        keep = z["partition"] == code
        out[split] = (z["images"][keep], {n: z["attributes"][keep, i] for i, n in enumerate(CELEBA_ATTRIBUTES)})
    return out


# --- UTKFace ------------------------------------------------------------------------------

def utkface_folder(root) -> Path:
    base = data_root(root)
    for candidate in (base / "UTKFace", base / "utkface", base):
        if candidate.is_dir() and any(UTKFACE_NAME.match(p.name) for p in candidate.iterdir()):
            return candidate
    raise FileNotFoundError(f"UTKFace not found under {base}: expected a folder (UTKFace/) of images "
                            f"named <age>_<gender>_<race>_<datetime>.jpg.chip.jpg")


def parse_utkface_name(name: str):
    """(age, gender, race) from a UTKFace file name, or None when the name does not follow the format."""
    m = UTKFACE_NAME.match(name)
    return None if m is None else (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def load_utkface_arrays(root=None, image_size: int = 64, seed: int = 0, train_fraction: float = 0.7,
                        **_ignored) -> Dict[str, Arrays]:
    folder = utkface_folder(root)

    def build():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")
        parsed = [(p, parse_utkface_name(p.name)) for p in files]
        skipped = sum(1 for _, v in parsed if v is None)
        if skipped:
            print(f"[bdray] UTKFace: skipped {skipped} file(s) whose name is not <age>_<gender>_<race>_...",
                  file=sys.stderr)
        good = [(p, v) for p, v in parsed if v is not None]
        if not good:
            raise ValueError(f"{folder}: no UTKFace image names parse")
        labels = np.asarray([v for _, v in good], dtype=np.int64)
        return {"images": _decode_all([p for p, _ in good], image_size, "UTKFace"), "labels": labels}

    z = _cached(folder / f"bdray_utkface_{image_size}.npz", build)
    age, gender, race = z["labels"].T
    attrs = {"age_gt35": (age > 35), "female": gender == 1, "race_white": race == 0}
    order = torch.randperm(len(age), generator=torch.Generator().manual_seed(seed)).numpy()
    n_train = int(round(train_fraction * len(order)))
    out = {}
    for split, idx in (("train", order[:n_train]), ("test", order[n_train:])):
        out[split] = (z["images"][idx], {k: v[idx].astype(np.uint8) for k, v in attrs.items()})
    return out
