"""Bring-your-own attribute data for DBA (``dataset="npz"`` of the debias method).

An ``.npz`` holds images and binary attributes, either unsplit (``x``, ``y``, ``a``: a seeded split
stratified by the (first target, bias) cells is made) or split (``x_train``, ``y_train``, ``a_train``,
``x_test``, ``y_test``, ``a_test``):

- ``x``: uint8 images N×H×W or N×H×W×C (C in 1, 3, 4);
- ``y``: the binary target attributes, N (one task) or N×K (one column per task), values 0/1;
- ``a``: the binary bias attributes, N or N×B (one column per candidate bias attribute), values 0/1;
- optional ``y_names`` (K strings) and ``a_names`` (B strings) name the columns; without them the
  columns are called ``y0, y1, ...`` and ``a0, a1, ...``.

``npz_attribute_source`` reads the names, the label arrays and the image header only, so a config
is validated (names, 0/1 labels, trigger size against the image) before any image is loaded.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from bdray.config import ConfigError
from bdray.data.attribute_schema import AttributeDataset, AttributeSource, AttributeSplit, as_targets, check_request
from bdray.data.files import npz_array_shapes
from bdray.data.splits import channel_stats, nhwc_to_nchw, stratified_split

SPLIT_KEYS = ("x_train", "y_train", "a_train", "x_test", "y_test", "a_test")
WHOLE_KEYS = ("x", "y", "a")


def _layout(path: Path, shapes: Dict[str, Tuple[int, ...]]) -> Tuple[str, ...]:
    if set(SPLIT_KEYS) <= set(shapes):
        return SPLIT_KEYS
    if set(WHOLE_KEYS) <= set(shapes):
        return WHOLE_KEYS
    raise ConfigError("data_root", str(path), "an attribute .npz with arrays x, y, a (or x_train, y_train, a_train, "
                      f"x_test, y_test, a_test); found {sorted(shapes)}")


def _names(z, shapes, key: str, columns: int, prefix: str) -> Tuple[str, ...]:
    if key not in shapes:
        return tuple(f"{prefix}{i}" for i in range(columns))
    names = tuple(str(n) for n in z[key].reshape(-1))
    if len(names) != columns or len(set(names)) != len(names):
        raise ConfigError(key, list(names), f"{columns} distinct names, one per column of {prefix}")
    return names


def npz_attribute_source(data_root: Optional[str]):
    """``(AttributeSource, array keys)`` of an attribute npz (targets, biases, defaults = the first
    of each, image shape; the split or unsplit key layout), from its headers, label and name arrays;
    read once per version of the file."""
    if not data_root:
        raise ConfigError("data_root", data_root, "the path of an attribute .npz (x, y, a arrays) for dataset npz")
    path = Path(os.path.expanduser(str(data_root))).resolve()
    if not path.is_file():
        raise ConfigError("data_root", str(path), "an existing attribute .npz file")
    stat = path.stat()
    return _read_source(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_source(path: Path, _mtime_ns: int, _size: int):
    """``npz_attribute_source`` for one version (mtime, size) of the file: a config is checked at
    construction and at validation, and the data loaded after, without reading the labels again."""
    shapes = npz_array_shapes(path)
    keys = _layout(path, shapes)
    x_key, y_key, a_key = keys[:3]
    x_shape = shapes[x_key]
    if len(x_shape) not in (3, 4) or (len(x_shape) == 4 and x_shape[-1] not in (1, 3, 4)):
        raise ConfigError(x_key, x_shape, "images of shape N×H×W or N×H×W×C with C in 1, 3, 4")
    columns = {}
    for key in (y_key, a_key):
        shape = shapes[key]
        if len(shape) not in (1, 2) or shape[0] != x_shape[0]:
            raise ConfigError(key, shape, f"({x_shape[0]},) or ({x_shape[0]}, K): one row per image of {x_key}")
        columns[key] = 1 if len(shape) == 1 else shape[1]
    with np.load(path, allow_pickle=False) as z:  # labels are small: check them before any work
        for key in keys:
            if not key.startswith("x"):
                _binary_columns(path, key, z[key])
        targets = _names(z, shapes, "y_names", columns[y_key], "y")
        biases = _names(z, shapes, "a_names", columns[a_key], "a")
    image_shape = (1, x_shape[1], x_shape[2]) if len(x_shape) == 3 else (x_shape[3], x_shape[1], x_shape[2])
    return AttributeSource(targets, biases, targets[:1], biases[0], image_shape), keys


def _binary_columns(path: Path, key: str, values: np.ndarray) -> np.ndarray:
    if not np.issubdtype(values.dtype, np.integer) and values.dtype != np.bool_:
        raise ConfigError(key, str(values.dtype), f"an integer or boolean array of 0/1 ({path})")
    values = values.astype(np.int64)
    if values.size and not np.isin(values, (0, 1)).all():
        bad = sorted(set(np.unique(values).tolist()) - {0, 1})[:5]
        raise ConfigError(key, bad, f"binary attributes: every value 0 or 1 ({path})")
    return values.reshape(len(values), -1)


def load_npz_attributes(targets=(), bias: Optional[str] = None, data_root=None, seed: int = 0,
                        test_fraction: float = 0.2, hflip: bool = False, **_ignored):
    """An ``AttributeDataset`` from an attribute npz: the named target columns of ``y`` and the
    named bias column of ``a`` (defaults: the first of each)."""
    source, keys = npz_attribute_source(data_root)
    targets, bias = as_targets(targets) or source.default_targets, bias or source.default_bias
    check_request(source, "npz", targets, bias)
    path = Path(os.path.expanduser(str(data_root)))
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in keys}
    t_cols = [source.targets.index(t) for t in targets]
    b_col = source.biases.index(bias)
    parts = {}
    for split, (xk, yk, ak) in (("train", keys[:3]), ("test", keys[3:])) if keys == SPLIT_KEYS else (("all", keys),):
        x = arrays[xk]
        if x.dtype != np.uint8:
            raise ConfigError(xk, str(x.dtype), f"uint8 images in 0..255 ({path})")
        y = _binary_columns(path, yk, arrays[yk])[:, t_cols]
        a = _binary_columns(path, ak, arrays[ak])[:, b_col]
        parts[split] = (x, y, a)
    if "all" in parts:
        x, y, a = parts.pop("all")
        cells = torch.from_numpy(y[:, 0] * 2 + a)
        tr, te = stratified_split(cells, test_fraction, seed)
        parts = {"train": (x[tr.numpy()], y[tr.numpy()], a[tr.numpy()]),
                 "test": (x[te.numpy()], y[te.numpy()], a[te.numpy()])}
    splits = {}
    for split, (x, y, a) in parts.items():
        if len(x) == 0:
            raise ValueError(f"{path}: the {split} split is empty")
        splits[split] = AttributeSplit(nhwc_to_nchw(x), torch.from_numpy(y), torch.from_numpy(a))
    mean, std = channel_stats(splits["train"].images)
    return AttributeDataset(name=path.stem, train=splits["train"], test=splits["test"], target_names=targets,
                            bias_name=bias, mean=mean, std=std, hflip=hflip)
