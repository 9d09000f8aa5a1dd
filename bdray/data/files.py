"""Loaders for real datasets on disk: torchvision's datasets and bring-your-own ``.npz`` arrays.

torchvision downloads (and checks) the files; we then read the on-disk format into uint8
tensors once.  Nothing here unpickles arbitrary objects: CIFAR's pickled batches are read
with an unpickler that only rebuilds numpy arrays.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from bdray.config import ConfigError
from bdray.data.splits import Dataset, Split, channel_stats, check_labels, default_class_names, nhwc_to_nchw

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _default_root(root: str | os.PathLike | None) -> Path:
    return Path(root or os.environ.get("BDRAY_DATA", Path.home() / ".cache" / "bdray" / "data")).expanduser()


# --- MNIST ------------------------------------------------------------------------------

def load_mnist(root=None, download: bool = False, **_ignored) -> Dataset:
    from torchvision.datasets import MNIST

    root = _default_root(root)
    try:
        train = MNIST(str(root), train=True, download=download)
        test = MNIST(str(root), train=False, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(f"MNIST not found under {root}/MNIST/raw ({err}); pass download=True "
                                f"(--download) or point data_root at a copy") from err
    tr = Split(train.data.unsqueeze(1).to(torch.uint8), train.targets)
    te = Split(test.data.unsqueeze(1).to(torch.uint8), test.targets)
    mean, std = channel_stats(tr.images)
    return Dataset("mnist", tr, te, default_class_names(10), mean, std, hflip=False)


# --- CIFAR ------------------------------------------------------------------------------

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers; refuses every other global."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _read_cifar_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()


def _cifar_arrays(folder: Path, files, label_key: str) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in files:
        batch = _read_cifar_batch(folder / name)
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _cifar_folder(root, download: bool, folder_name: str, torchvision_class: str, title: str) -> Path:
    """The extracted CIFAR folder under ``root``; torchvision downloads and checks it if asked."""
    root = _default_root(root)
    folder = root / folder_name
    if download and not folder.exists():
        import torchvision.datasets

        getattr(torchvision.datasets, torchvision_class)(str(root), train=True, download=True)
    if not folder.exists():
        raise FileNotFoundError(f"{title} not found at {folder}; pass download=True (--download)")
    return folder


def load_cifar10(root=None, download: bool = False, **_ignored) -> Dataset:
    folder = _cifar_folder(root, download, "cifar-10-batches-py", "CIFAR10", "CIFAR-10")
    names = tuple(_read_cifar_batch(folder / "batches.meta").get("label_names", CIFAR10_CLASSES))
    x_tr, y_tr = _cifar_arrays(folder, [f"data_batch_{i}" for i in range(1, 6)], "labels")
    x_te, y_te = _cifar_arrays(folder, ["test_batch"], "labels")
    return _from_nchw("cifar10", x_tr, y_tr, x_te, y_te, names, hflip=True)


def load_cifar100(root=None, download: bool = False, **_ignored) -> Dataset:
    folder = _cifar_folder(root, download, "cifar-100-python", "CIFAR100", "CIFAR-100")
    names = tuple(_read_cifar_batch(folder / "meta")["fine_label_names"])
    x_tr, y_tr = _cifar_arrays(folder, ["train"], "fine_labels")
    x_te, y_te = _cifar_arrays(folder, ["test"], "fine_labels")
    return _from_nchw("cifar100", x_tr, y_tr, x_te, y_te, names, hflip=True)


def _from_nchw(name, x_tr, y_tr, x_te, y_te, names, hflip) -> Dataset:
    tr = Split(torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(y_tr))
    te = Split(torch.from_numpy(np.ascontiguousarray(x_te)), torch.from_numpy(y_te))
    check_labels(tr.labels, names, name)
    check_labels(te.labels, names, name)
    mean, std = channel_stats(tr.images)
    return Dataset(name, tr, te, tuple(names), mean, std, hflip=hflip)


# --- GTSRB ------------------------------------------------------------------------------

def load_gtsrb(root=None, download: bool = False, size: int = 32, **_ignored) -> Dataset:
    """GTSRB through torchvision; images of varying size are decoded and resized once, then
    cached as ``gtsrb_<size>.npz`` next to the data."""
    root = _default_root(root)
    cache = root / f"gtsrb_{size}.npz"
    if not cache.exists():
        from PIL import Image
        from torchvision.datasets import GTSRB

        arrays = {}
        for split in ("train", "test"):
            try:
                ds = GTSRB(str(root), split=split, download=download)
            except RuntimeError as err:
                raise FileNotFoundError(f"GTSRB not found under {root}/gtsrb ({err}); pass "
                                        f"download=True (--download)") from err
            xs, ys = [], []
            for path, label in ds._samples:  # decoded once, never in the training path
                with Image.open(path) as img:
                    xs.append(np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR)))
                ys.append(label)
            arrays[f"x_{split}"] = np.stack(xs).astype(np.uint8)
            arrays[f"y_{split}"] = np.asarray(ys, dtype=np.int64)
        _atomic_savez(cache, **arrays)
    with np.load(cache, allow_pickle=False) as z:
        x_tr, y_tr, x_te, y_te = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    return _from_nchw("gtsrb", nhwc_to_nchw(x_tr).numpy(), y_tr, nhwc_to_nchw(x_te).numpy(), y_te,
                      default_class_names(43), hflip=False)


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


# --- bring your own arrays ----------------------------------------------------------------

def npz_array_shapes(path) -> dict:
    """The shape of every array in an ``.npz``, read from the array headers only (nothing loaded)."""
    import zipfile

    if not os.path.isfile(os.path.expanduser(str(path))):
        raise ConfigError("data_root", path, "an existing .npz file (x_train/y_train/x_test/y_test or x/y)")
    shapes = {}
    with zipfile.ZipFile(os.path.expanduser(str(path))) as z:
        for member in z.namelist():
            if not member.endswith(".npy"):
                continue
            with z.open(member) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shapes[member[:-4]] = tuple(read(f)[0])
    return shapes


def load_npz(path=None, test_path=None, test_fraction: float = 0.2, seed: int = 0, hflip: bool = False,
             **_ignored) -> Dataset:
    """Arrays from an ``.npz``: ``x`` uint8 N×H×W[×C] and ``y`` int N.

    Either the file holds ``x_train``/``y_train``/``x_test``/``y_test``, or ``x``/``y`` (then a
    seeded stratified split is made, or ``test_path`` names a second file with ``x``/``y``).
    """
    from bdray.data.splits import stratified_split

    if path is None:
        raise ValueError("the npz dataset needs data_root=<file.npz>")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            parts = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        elif {"x", "y"} <= keys:
            parts = {"x": z["x"], "y": z["y"]}
        else:
            raise ValueError(f"{path}: expected arrays x and y (or x_train, y_train, x_test, y_test), "
                             f"found {sorted(keys)}")
    if "x" in parts:
        x, y = _check_xy(path, parts["x"], parts["y"])
        if test_path is not None:
            with np.load(test_path, allow_pickle=False) as z:
                x_te, y_te = _check_xy(Path(test_path), z["x"], z["y"])
            x_tr, y_tr = x, y
        else:
            tr_idx, te_idx = stratified_split(torch.from_numpy(y), test_fraction, seed)
            x_tr, y_tr, x_te, y_te = x[tr_idx.numpy()], y[tr_idx.numpy()], x[te_idx.numpy()], y[te_idx.numpy()]
    else:
        x_tr, y_tr = _check_xy(path, parts["x_train"], parts["y_train"], "x_train", "y_train")
        x_te, y_te = _check_xy(path, parts["x_test"], parts["y_test"], "x_test", "y_test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(f"{path}: train images {x_tr.shape[1:]} and test images {x_te.shape[1:]} differ in shape")
    for name, labels in (("training", y_tr), ("test", y_te)):
        if len(labels) == 0:
            raise ValueError(f"{path}: the {name} split is empty")
    if len(np.unique(y_tr)) < 2:
        raise ValueError(f"{path}: the training split has a single class ({int(y_tr[0])}); a classifier needs two or more")
    unseen = sorted(set(np.unique(y_te).tolist()) - set(np.unique(y_tr).tolist()))
    if unseen:
        raise ValueError(f"{path}: test labels {unseen[:5]} never occur in the training labels (out of range)")
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    return _from_nchw(path.stem, nhwc_to_nchw(x_tr).numpy(), y_tr, nhwc_to_nchw(x_te).numpy(), y_te,
                      default_class_names(num_classes), hflip=hflip)


def _check_xy(path: Path, x: np.ndarray, y: np.ndarray, xn: str = "x", yn: str = "y"):
    if np.issubdtype(x.dtype, np.floating) and x.size and not np.isfinite(x).all():
        raise ValueError(f"{path}: {xn} holds NaN/inf values (and must be uint8 images in 0..255)")
    if x.dtype != np.uint8:
        raise ValueError(f"{path}: {xn} must be uint8 images, got dtype {x.dtype}")
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"{path}: {xn} must have shape N×H×W or N×H×W×C (C in 1, 3, 4), got {x.shape}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: {yn} must be a 1-D integer array, got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{path}: {xn} has {len(x)} images but {yn} has {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"{path}: {xn} is empty")
    if y.min() < 0:
        raise ValueError(f"{path}: {yn} has negative labels")
    return x, y.astype(np.int64)
