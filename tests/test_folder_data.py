"""Class folders of image files (``--dataset folder``): a folder, a .tar.gz and a .zip of the same
images load to the same tensors, decoded once into a content-addressed cache; every kind of bad
layout gets one error naming the file or folder; the shared copy of all of CIFAR-10 loads as
50,000 / 10,000 images of ten classes."""
import os
import pathlib
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import bdray.data.folders as folders
from bdray.config import ConfigError
from bdray.data import load_dataset
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.presets import image_shape_of

SHARED_CIFAR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_jpeg.tar.gz"
CLASSES = ("cat", "ant", "bee")  # sorted: ant=0, bee=1, cat=2


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BDRAY_DATA_CACHE", str(tmp_path / "cache"))


def make_folder(root: pathlib.Path, size=(8, 8), mode="RGB", per_class=(3, 2), classes=CLASSES, top="mydata"):
    """``root/top/{train,test}/<class>/<i>.png`` with pixels that encode split, class and index."""
    base = root / top
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class):
        for cls in classes:
            (base / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(base / split / cls / f"{i}.png")
    return base


def archive(base: pathlib.Path, kind: str) -> pathlib.Path:
    if kind == "tar.gz":
        out = base.parent / f"{base.name}.tar.gz"
        with tarfile.open(out, "w:gz") as t:
            t.add(base, arcname=base.name)
    else:
        out = base.parent / f"{base.name}.zip"
        with zipfile.ZipFile(out, "w") as z:
            for path in sorted(base.rglob("*")):
                z.write(path, path.relative_to(base.parent).as_posix())
    return out


def test_a_folder_and_its_archives_load_to_the_same_dataset(tmp_path):
    base = make_folder(tmp_path)
    data = load_dataset("folder", data_root=str(base))
    assert data.class_names == ("ant", "bee", "cat") and data.num_classes == 3
    assert tuple(data.train.images.shape) == (9, 3, 8, 8) and tuple(data.test.images.shape) == (6, 3, 8, 8)
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and data.hflip  # colour: flips on
    first = np.asarray(Image.open(base / "train" / "ant" / "0.png"))
    assert torch.equal(data.train.images[0], torch.from_numpy(first.copy()).permute(2, 0, 1))  # PNG: exact pixels
    for kind in ("tar.gz", "zip"):
        other = load_dataset("folder", data_root=str(archive(base, kind)))
        assert other.class_names == data.class_names
        assert torch.equal(other.train.images, data.train.images) and torch.equal(other.test.labels, data.test.labels)
    assert image_shape_of("folder", str(base)) == (3, 8, 8)


def test_the_decoded_images_are_cached_by_content(tmp_path, monkeypatch):
    base = make_folder(tmp_path)
    load_dataset("folder", data_root=str(base))
    decoded = []
    real = folders._decode
    monkeypatch.setattr(folders, "_decode", lambda *a: decoded.append(a[1]) or real(*a))
    again = load_dataset("folder", data_root=str(base))
    assert decoded == [] and len(again.train) == 9  # the second load reads the cache only
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(base / "test" / "bee" / "9.png")
    changed = load_dataset("folder", data_root=str(base))
    assert len(decoded) == 16 and len(changed.test) == 7  # an added file: decoded again


def test_grey_images_give_one_channel_and_no_flips(tmp_path):
    data = load_dataset("folder", data_root=str(make_folder(tmp_path, mode="L")))
    assert tuple(data.train.images.shape[1:]) == (1, 8, 8) and not data.hflip


def test_mixed_sizes_are_named_and_image_size_resizes_them(tmp_path):
    base = make_folder(tmp_path)
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(base / "train" / "cat" / "odd.png")
    with pytest.raises(ConfigError, match=r"mixed sizes: 8×8 \(15 files.*12×10 \(1 files, e.g. .*odd.png\).*--image-size"):
        load_dataset("folder", data_root=str(base))
    data = load_dataset("folder", data_root=str(base), image_size=6)
    assert tuple(data.train.images.shape) == (10, 3, 6, 6)
    cfg = BackdoorConfig(dataset="folder", data_root=str(base), image_size=6, attack_params={"trigger_size": 2})
    assert cfg.image_size == 6


@pytest.mark.parametrize("breakage, message", [
    ("no_test", r"no test/ folder found"),
    ("no_train", r"no train/ folder found"),
    ("class_in_one_split", r"class folders must be the same in train/ and test/ \(only in train/: dog\)"),
    ("undecodable", r"train/bee/broken.png could not be decoded"),
    ("loose_file", r"train/stray.png: images must sit directly in a class folder"),
])
def test_bad_layouts_get_one_error_naming_the_problem(tmp_path, breakage, message):
    base = make_folder(tmp_path)
    if breakage == "no_test":
        for path in sorted((base / "test").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (base / "test").rmdir()
    elif breakage == "no_train":
        (base / "train").rename(base / "training")
    elif breakage == "class_in_one_split":
        (base / "train" / "dog").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(base / "train" / "dog" / "0.png")
    elif breakage == "undecodable":
        (base / "train" / "bee" / "broken.png").write_bytes(b"not an image")
    elif breakage == "loose_file":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(base / "train" / "stray.png")
    for root in (base, archive(base, "tar.gz")):
        with pytest.raises(ConfigError, match=message):
            load_dataset("folder", data_root=str(root))


def test_configs_check_the_folder_before_any_training(tmp_path):
    with pytest.raises(ConfigError, match="data_root"):
        BackdoorConfig(dataset="folder", data_root=str(tmp_path / "missing"))
    not_archive = tmp_path / "notes.txt"
    not_archive.write_text("hello")
    with pytest.raises(ConfigError, match="neither"):
        BackdoorConfig(dataset="folder", data_root=str(not_archive))
    base = make_folder(tmp_path)
    with pytest.raises(ConfigError, match="trigger_size"):  # checked against the folder's 8×8 images
        BackdoorConfig(dataset="folder", data_root=str(base), attack_params={"trigger_size": 9})
    with pytest.raises(ConfigError, match="target_class"):  # three classes
        BackdoorConfig(dataset="folder", data_root=str(base), target_class=3, attack_params={"trigger_size": 2})
    with pytest.raises(ConfigError, match="image_size"):
        BackdoorConfig(dataset="digits", image_size=16)


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"{SHARED_CIFAR} not present (the shared real data)")
def test_the_shared_cifar10_archive_loads_as_all_of_cifar10(monkeypatch):
    monkeypatch.setenv("BDRAY_DATA_CACHE", os.path.expanduser("~/.cache/bdray/datasets"))
    data = load_dataset("folder", data_root=str(SHARED_CIFAR))
    assert len(data.train) == 50_000 and len(data.test) == 10_000
    assert data.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert data.train.labels.bincount().tolist() == [5000] * 10 and data.test.labels.bincount().tolist() == [1000] * 10
    assert tuple(data.train.images.shape[1:]) == (3, 32, 32) and data.hflip
