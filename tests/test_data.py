"""Dataset loading: the embedded digits, and the real on-disk loaders on tiny files the tests write
in each format (MNIST idx, CIFAR pickled batches, GTSRB ppm folders, bring-your-own npz)."""
import pickle
import struct

import numpy as np
import pytest
import torch

from bdray.data import Split, augment, iterate_batches, load_dataset
from bdray.data.files import load_gtsrb, load_npz


def test_digits_is_embedded_seeded_and_stratified():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert a.image_shape == (1, 16, 16) and a.num_classes == 10
    assert len(a.train) + len(a.test) == 1797
    assert a.train.images.dtype == torch.uint8
    assert torch.equal(a.test.labels, b.test.labels) and torch.equal(a.train.images, b.train.images)
    counts = torch.bincount(a.test.labels, minlength=10)
    assert int(counts.min()) >= 35  # every class is in the test split
    assert len(a.mean) == 1 and 0 < a.mean[0] < 1


def test_unknown_dataset_is_a_clear_error():
    from bdray.config import ConfigError

    with pytest.raises(ConfigError, match="dataset='nope'"):
        load_dataset("nope")


def _write_idx_images(path, images):
    with open(path, "wb") as f:
        f.write(struct.pack(">HBBIII", 0, 0x08, 3, *images.shape))
        f.write(images.astype(np.uint8).tobytes())


def _write_idx_labels(path, labels):
    with open(path, "wb") as f:
        f.write(struct.pack(">HBBI", 0, 0x08, 1, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx_images(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    data = load_dataset("mnist", str(tmp_path))
    assert data.image_shape == (1, 28, 28) and len(data.train) == 12 and len(data.test) == 5
    assert data.train.labels.tolist() == [i % 10 for i in range(12)]


def test_mnist_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        load_dataset("mnist", str(tmp_path))


def test_cifar10_reads_pickled_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 3)]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(range(n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    data = load_dataset("cifar10", str(tmp_path))
    assert data.image_shape == (3, 32, 32) and len(data.train) == 20 and len(data.test) == 3
    assert data.class_names[0] == "c0" and data.hflip


def test_cifar_reader_refuses_non_array_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_dataset("cifar10", str(tmp_path))


def test_gtsrb_reads_ppm_folders_and_caches(tmp_path):
    from PIL import Image

    base = tmp_path / "gtsrb" / "GTSRB"
    rng = np.random.default_rng(0)
    for cls in range(2):
        folder = base / "Training" / f"{cls:05d}"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40 + i, 37, 3), dtype=np.uint8)).save(folder / f"{i:05d}.ppm")
    test_dir = base / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(test_dir / f"{i:05d}.ppm")
        rows.append(f"{i:05d}.ppm;30;30;0;0;29;29;{i}")
    (tmp_path / "gtsrb" / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    data = load_gtsrb(root=str(tmp_path))
    assert data.image_shape == (3, 32, 32) and len(data.train) == 6 and data.test.labels.tolist() == [0, 1]
    assert (tmp_path / "gtsrb_32.npz").exists()


def test_npz_loader_splits_and_validates(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    data = load_dataset("npz", str(tmp_path / "mine.npz"))
    assert data.image_shape == (3, 8, 8) and data.num_classes == 5 and len(data.train) + len(data.test) == 50


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 8, 8), np.float32), "y": np.zeros(4, int)}, "uint8"),
    ({"x": np.zeros((4, 8), np.uint8), "y": np.zeros(4, int)}, "N×H×W"),
    ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, int)}, "4 images but y has 3"),
    ({"x": np.zeros((0, 8, 8), np.uint8), "y": np.zeros(0, int)}, "empty"),
    ({"images": np.zeros((4, 8, 8), np.uint8)}, "expected arrays x and y"),
    ({"x": np.full((4, 8, 8), np.nan, np.float32), "y": np.zeros(4, int)}, "NaN/inf"),
    ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.array([0.0, 1.0, 0.5, 1.0])}, "1-D integer"),
    ({"x": np.zeros((6, 8, 8), np.uint8), "y": np.zeros(6, int)}, "single class"),
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.array([0, 1, 0, 1]),
      "x_test": np.zeros((2, 8, 8), np.uint8), "y_test": np.array([0, 7])}, r"test labels \[7\]"),
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.array([0, 1, 0, 1]),
      "x_test": np.zeros((0, 8, 8), np.uint8), "y_test": np.zeros(0, int)}, "empty"),
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.array([0, 1, 0, 1]),
      "x_test": np.zeros((2, 9, 9), np.uint8), "y_test": np.array([0, 1])}, "differ in shape"),
])
def test_npz_bad_files_name_the_file_and_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as err:
        load_npz(path=path)
    assert "bad.npz" in str(err.value)


def test_split_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2))


def test_batched_augmentation_crops_and_flips():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    gen = torch.Generator().manual_seed(0)
    y = augment(x, crop_padding=2, hflip=True, generator=gen)
    assert y.shape == x.shape
    same = augment(x, crop_padding=0, hflip=False)
    assert torch.equal(same, x)
    crops = [augment(x, crop_padding=2, hflip=False, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    assert any(not torch.equal(c, x) for c in crops)


def test_batch_iterator_covers_each_index_once_and_shards_by_rank():
    idx = torch.cat(list(iterate_batches(10, 3, shuffle=True, generator=torch.Generator().manual_seed(0))))
    assert sorted(idx.tolist()) == list(range(10))
    r0 = torch.cat(list(iterate_batches(10, 2, shuffle=True, generator=torch.Generator().manual_seed(1),
                                        rank=0, world_size=2)))
    r1 = torch.cat(list(iterate_batches(10, 2, shuffle=True, generator=torch.Generator().manual_seed(1),
                                        rank=1, world_size=2)))
    assert len(r0) == len(r1) == 5 and not set(r0.tolist()) & set(r1.tolist())


def test_cifar100_reads_pickled_train_and_test(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 6), ("test", 2)):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": [99] * n}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)]}, f)
    data = load_dataset("cifar100", str(tmp_path))
    assert data.num_classes == 100 and len(data.train) == 6 and data.train.labels.tolist() == [99] * 6


def test_fused_augmentation_equals_per_image_crop_then_flip():
    """``augment``'s single gather is exactly: reflect-pad, crop each image at its (dy, dx), flip the
    chosen ones -- written out image by image here -- and equals random_crop + random_hflip."""
    import torch.nn.functional as F

    from bdray.data import random_crop, random_hflip

    for shape, pad in (((9, 3, 8, 8), 2), ((5, 1, 16, 16), 1), ((4, 3, 6, 6), 0)):
        x = torch.rand(shape)
        n, _, h, w = shape
        for hflip in (False, True):
            gen = torch.Generator().manual_seed(7)
            out = augment(x, crop_padding=pad, hflip=hflip, generator=gen)
            draws = torch.Generator().manual_seed(7)
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=draws) if pad else torch.zeros(n, dtype=torch.long)
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=draws) if pad else torch.zeros(n, dtype=torch.long)
            flips = torch.rand(n, generator=draws) < 0.5 if hflip else torch.zeros(n, dtype=torch.bool)
            padded = F.pad(x, (pad,) * 4, mode="reflect") if pad else x
            for i in range(n):
                expected = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
                assert torch.equal(out[i], expected.flip(-1) if flips[i] else expected)
            two_step = torch.Generator().manual_seed(7)
            reference = random_crop(x, pad, two_step)
            reference = random_hflip(reference, two_step) if hflip else reference
            assert torch.equal(out, reference)
