"""DBA's building blocks: face loaders on tiny files in the real formats, the debias triggers
(barcodes, implicit T channel), the strategies' sample choices, the safe deployments of an RGBT
model, and config validation before any work."""
import numpy as np
import pytest
import torch
from PIL import Image

from bdray.config import ConfigError
from bdray.runtime import run_local


# --- real formats, tiny files ------------------------------------------------------------------

def _jpeg(path, rgb, size=(24, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), rgb, dtype=np.uint8)).save(path, format="JPEG", quality=95)


def _write_celeba(root, rows):
    """rows: (file name, partition, {attribute: ±1}); files in torchvision's CelebA layout."""
    from bdray.data.faces import CELEBA_ATTRIBUTES

    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES)]
    partition = []
    for i, (name, part, attrs) in enumerate(rows):
        values = [attrs.get(a, -1) for a in CELEBA_ATTRIBUTES]
        lines.append(name + " " + " ".join(f"{v:2d}" for v in values))  # real file pads with spaces
        partition.append(f"{name} {part}")
        _jpeg(folder / "img_align_celeba" / name, (40 * i % 256, 100, 200 - 20 * i))
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")


def test_celeba_loader_reads_the_official_files(tmp_path):
    from bdray.data.attributes import load_attribute_dataset

    rows = [(f"{i + 1:06d}.jpg", [0, 0, 0, 1, 2, 2][i],
             {"Male": 1 if i % 2 else -1, "Wearing_Lipstick": -1 if i % 2 else 1, "Young": 1}) for i in range(6)]
    _write_celeba(tmp_path, rows)
    ds = load_attribute_dataset("celeba", targets=("Wearing_Lipstick", "Young"), bias="Male",
                                data_root=str(tmp_path), image_size=8)
    assert len(ds.train) == 3 and len(ds.test) == 2  # partition 1 (valid) is not used
    assert ds.image_shape == (3, 8, 8) and ds.target_names == ("Wearing_Lipstick", "Young")
    assert ds.train.a.tolist() == [0, 1, 0] and ds.train.y[:, 0].tolist() == [1, 0, 1]
    assert ds.test.a.tolist() == [0, 1] and ds.train.y[:, 1].tolist() == [1, 1, 1]
    # pixels come from the JPEGs (second image's red channel is 40)
    assert abs(int(ds.train.images[1, 0].float().mean()) - 40) <= 3
    assert (tmp_path / "celeba" / "bdray_celeba_8.npz").exists()  # decoded once, cached


def test_celeba_loader_errors_name_the_file(tmp_path):
    from bdray.data.attributes import load_attribute_dataset

    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
        load_attribute_dataset("celeba", data_root=str(tmp_path))
    _write_celeba(tmp_path, [("000001.jpg", 0, {})])
    path = tmp_path / "celeba" / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace(" 1", " 7", 1).replace("-1", " 7", 1))
    with pytest.raises(ValueError, match="list_attr_celeba.txt, line 3"):
        load_attribute_dataset("celeba", data_root=str(tmp_path), image_size=8)


def test_utkface_loader_parses_names_and_splits_7_to_3(tmp_path, capsys):
    from bdray.data.attributes import load_attribute_dataset

    folder = tmp_path / "UTKFace"
    folder.mkdir()
    people = [(20 + 3 * i, i % 2, i % 5) for i in range(10)]
    for i, (age, gender, race) in enumerate(people):
        _jpeg(folder / f"{age}_{gender}_{race}_2017011{i}1745.jpg.chip.jpg", (10 * i, 50, 90), size=(20, 20))
    _jpeg(folder / "39_1_20170109150557335.jpg.chip.jpg", (0, 0, 0), size=(20, 20))  # race missing: skipped
    ds = load_attribute_dataset("utkface", data_root=str(tmp_path), image_size=8, seed=3)
    assert "skipped 1" in capsys.readouterr().err
    assert len(ds.train) == 7 and len(ds.test) == 3
    ages = {20 + 3 * i for i in range(10)}
    got = torch.cat([ds.train.y[:, 0], ds.test.y[:, 0]])
    assert int(got.sum()) == sum(age > 35 for age in ages)
    assert int(torch.cat([ds.train.a, ds.test.a]).sum()) == sum(race == 0 for _, _, race in people)
    other = load_attribute_dataset("utkface", data_root=str(tmp_path), image_size=8, seed=4)
    assert not torch.equal(other.train.images, ds.train.images)  # the split follows the seed


# --- triggers -------------------------------------------------------------------------------------

def test_debias_triggers_are_group_patches_and_barcodes():
    from bdray.attacks.debias_triggers import DebiasTrigger, apply_debias_triggers

    x = torch.full((4, 3, 16, 16), 0.5)
    a = torch.tensor([0, 1, 0, 1])
    marks = torch.tensor([[True, False], [True, True], [False, False], [False, True]])
    trig = DebiasTrigger(size=3)
    out = apply_debias_triggers(x, a, marks, trig)
    assert torch.equal(x, torch.full((4, 3, 16, 16), 0.5))  # pure: input untouched
    blue, red = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0])
    assert torch.equal(out[0, :, 13, 13], blue) and torch.equal(out[0, :, 13, 10], torch.full((3,), 0.5))
    assert torch.equal(out[1, :, 0, 0], red) and torch.equal(out[1, :, 0, 3], red)  # barcode: task 0 and 1
    assert torch.equal(out[2], x[2])
    assert torch.equal(out[3, :, 0, 0], torch.full((3,), 0.5)) and torch.equal(out[3, :, 2, 5], red)
    implicit = apply_debias_triggers(x, a, marks, DebiasTrigger(size=3, channel="implicit"))
    assert implicit.shape == (4, 4, 16, 16) and torch.equal(implicit[:, :3], x)  # pixels untouched
    assert implicit[0, 3].sum() == 9 and implicit[1, 3].sum() == 18 and implicit[2, 3].sum() == 0


@pytest.mark.parametrize("kwargs,field", [
    (dict(size=9), "trigger_size"),          # two tasks × 9 px > 16
    (dict(colors=("red", "mauve")), "trigger_colors"),
    (dict(locations=("top_left", "top_left"), channel="implicit"), "trigger_locations"),
    (dict(colors=("red", "red"), locations=("top_left", "top_left")), "trigger_colors"),
    (dict(channel="alpha"), "trigger_channel"),
])
def test_debias_trigger_validation(kwargs, field):
    from bdray.attacks.debias_triggers import DebiasTrigger

    with pytest.raises(ConfigError, match=field):
        DebiasTrigger(**kwargs).validate((3, 16, 16), num_tasks=2)


# --- strategies ------------------------------------------------------------------------------------

def test_strategy_sample_choices():
    from bdray.fairness import cell_counts
    from bdray.methods.fairness.debias_strategies import reweighing_weights, trigger_marks, undersampling_keep

    y = torch.tensor([1] * 80 + [0] * 20 + [1] * 10 + [0] * 40)[:, None]
    a = torch.tensor([0] * 100 + [1] * 50)
    keep = undersampling_keep(y, a, seed=0)
    assert cell_counts(y[keep, 0], a[keep]).tolist() == [[20, 20], [10, 10]]
    marks = trigger_marks(y, a, alpha=1.0, seed=0)
    assert cell_counts(y[marks[:, 0], 0], a[marks[:, 0]]).tolist() == [[0, 60], [30, 0]]
    assert int(trigger_marks(y, a, alpha=0.5, seed=0).sum()) == 30 + 15
    w = reweighing_weights(y, a)[:, 0]
    # Kamiran & Calders: the weighted cells are independent: weighted N(i, j) = N·P(A=i)·P(Y=j)
    for i in (0, 1):
        for j in (0, 1):
            cell = (a == i) & (y[:, 0] == j)
            expected = int((a == i).sum()) * int((y[:, 0] == j).sum()) / 150
            assert float(w[cell].sum()) == pytest.approx(expected)


def test_gradient_reversal_flips_the_sign():
    from bdray.methods.fairness.debias_strategies import reverse_gradient

    x = torch.ones(3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [-0.5, -1.0, -1.5]


# --- safe deployment of an implicit (RGBT) model ---------------------------------------------------

@pytest.mark.parametrize("model_name", ["small_cnn", "resnet9"])
def test_internal_padding_and_equivalent_pruning_match_the_rgbt_model(model_name):
    from bdray.attacks.debias_triggers import add_trigger_channel
    from bdray.models import create_model
    from bdray.models.rgbt import InternalPadding, equivalent_pruning, flop_count, parameter_count

    torch.manual_seed(0)
    model = create_model(model_name, (4, 16, 16), 4, (0.3, 0.4, 0.5, 0.0), (0.2, 0.25, 0.3, 1.0))
    for _ in range(2):  # non-trivial BN statistics
        model.train()(torch.rand(32, 4, 16, 16))
    model.eval()
    rgb = torch.rand(64, 3, 16, 16)
    with torch.no_grad():
        reference = model(add_trigger_channel(rgb))
        padded = InternalPadding(model)(rgb)
        pruned_model = equivalent_pruning(model)
        pruned = pruned_model(rgb)
    assert torch.equal(padded, reference) and torch.equal(pruned, reference)
    first = next(m for m in pruned_model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 3 and pruned_model.mean.shape[1] == 3
    assert parameter_count(model) - parameter_count(pruned_model) == first.out_channels * 9
    assert flop_count(model, (4, 16, 16)) > flop_count(pruned_model, (3, 16, 16))
    with pytest.raises(ValueError, match="3-channel"):
        InternalPadding(model)(torch.rand(1, 4, 16, 16))


# --- config validation before any work ------------------------------------------------------------

@pytest.mark.parametrize("changes,field", [
    (dict(strategy="oversampling"), "strategy"),
    (dict(dataset="celebb"), "dataset"),
    (dict(targets=("ge6",)), "targets"),
    (dict(dataset="celeba", targets=("Male",), bias_attribute="Male"), "targets"),
    (dict(dataset="celeba", bias_attribute="Smiling"), "bias_attribute"),
    (dict(dataset="utkface", targets=("age_gt40",)), "targets"),
    (dict(bias_strength=1.2), "bias_strength"),
    (dict(alpha=0.0), "alpha"),
    (dict(trigger_size=17), "trigger_size"),
    (dict(targets=("ge5", "even", "prime"), trigger_size=6), "trigger_size"),
    (dict(trigger_channel="implicit", strategy="normal"), "trigger_channel"),
    (dict(model="resnet7"), "model"),
    (dict(lr=-1e-3), "lr"),
    (dict(epochs=0), "epochs"),
    (dict(lr_schedule="step"), "lr_schedule"),
])
def test_debias_config_rejects_bad_input(changes, field):
    from bdray.methods.fairness.debias import DebiasConfig

    with pytest.raises(ConfigError, match=field):
        DebiasConfig(**changes)


def test_dba_sweep_scripts_reject_bad_grids_before_any_ray_work():
    from sweeps import dba_methods, dba_trigger

    sweeps = dba_trigger.build_sweeps(dba_trigger.parse_args(["--sizes", "3", "20"]))
    with pytest.raises(ConfigError, match="trigger_size"):
        for sweep in sweeps:
            sweep.validate()
    sweeps = dba_methods.build_sweeps(dba_methods.parse_args(["--targets", "ge5", "odd"]))
    with pytest.raises(ConfigError, match="targets"):
        for sweep in sweeps:
            sweep.validate()
    # the paper's target sets: CelebA with Male as bias has 34 targets, with Young 39
    for bias, count in (("Male", 34), ("Young", 39)):
        (sweep,) = dba_methods.build_sweeps(dba_methods.parse_args(["--dataset", "celeba", "--bias", bias]))
        assert len(sweep.search_space["targets"]["grid_search"]) == count
        assert sweep.base_config.model == "resnet9" and sweep.base_config.lr_schedule == "constant"


def _write_attribute_npz(path, split=True, **override):
    from bdray.data.attributes import load_digits_biased

    d = load_digits_biased(targets=("ge5", "even"), bias_strength=0.9, seed=0)
    nhwc = lambda s: s.images.permute(0, 2, 3, 1).numpy()  # noqa: E731
    if split:
        arrays = dict(x_train=nhwc(d.train), y_train=d.train.y.numpy(), a_train=d.train.a.numpy(),
                      x_test=nhwc(d.test), y_test=d.test.y.numpy(), a_test=d.test.a.numpy())
    else:
        arrays = dict(x=nhwc(d.train), y=d.train.y.numpy(), a=d.train.a.numpy())
    arrays.update(y_names=np.array(["ge5", "even"]), a_names=np.array(["colour"]))
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return d


def test_attribute_npz_loads_the_same_data_and_names_its_columns(tmp_path):
    from bdray.data.attributes import load_attribute_dataset

    path = tmp_path / "attrs.npz"
    original = _write_attribute_npz(path)
    d = load_attribute_dataset("npz", data_root=str(path), targets=("even",))
    assert d.target_names == ("even",) and d.bias_name == "colour"
    assert torch.equal(d.train.images, original.train.images)
    assert torch.equal(d.train.y[:, 0], original.train.y[:, 1]) and torch.equal(d.test.a, original.test.a)
    # unsplit: a seeded split, stratified by the (first target, bias) cells
    whole = tmp_path / "whole.npz"
    _write_attribute_npz(whole, split=False, y_names=None, a_names=None)
    u = load_attribute_dataset("npz", data_root=str(whole), seed=3)
    assert u.target_names == ("y0",) and u.bias_name == "a0"
    assert len(u.train) + len(u.test) == len(original.train) and abs(len(u.test) / len(original.train) - 0.2) < 0.01
    cells = lambda s: torch.bincount(s.y[:, 0] * 2 + s.a, minlength=4).double()  # noqa: E731
    assert torch.allclose(cells(u.test) / len(u.test), cells(u.train) / len(u.train), atol=0.01)


def test_dba_on_an_attribute_npz_matches_the_same_data_built_in(tmp_path):
    """The biased digits written to an npz and read back train to the very same numbers."""
    path = tmp_path / "attrs.npz"
    original = _write_attribute_npz(path)
    common = {"strategy": "dba", "epochs": 4, "targets": ("ge5",), "seed": 0}
    from_file = run_local("debias", {**common, "dataset": "npz", "data_root": str(path), "bias_attribute": "colour"},
                          device="cpu", verbose=False).metrics
    built_in = run_local("debias", {**common, "dataset": "digits_biased"}, device="cpu", verbose=False).metrics
    assert from_file["train_samples"] == len(original.train)  # DBA keeps every sample
    assert from_file["triggered_samples"] == built_in["triggered_samples"] > 0
    for key in ("acc", "eacc", "opp", "odds"):
        assert from_file[key] == pytest.approx(built_in[key], abs=1e-6), key


@pytest.mark.parametrize("override, field", [
    ({"y_train": np.full(1437, 2)}, "y_train"),
    ({"a_names": np.array(["c1", "c2"])}, "a_names"),
    ({"x_train": None, "x_test": None}, "data_root"),
])
def test_attribute_npz_errors_name_the_array(tmp_path, override, field):
    from bdray.config import ConfigError
    from bdray.methods.fairness.debias import DebiasConfig

    path = tmp_path / "bad.npz"
    _write_attribute_npz(path, **override)
    with pytest.raises(ConfigError) as err:  # at config time, before any training
        DebiasConfig(dataset="npz", data_root=str(path))
    assert err.value.field == field


def test_attribute_npz_config_checks_names_before_loading(tmp_path):
    from bdray.config import ConfigError
    from bdray.methods.fairness.debias import DebiasConfig

    path = tmp_path / "attrs.npz"
    _write_attribute_npz(path)
    assert DebiasConfig(dataset="npz", data_root=str(path)).targets == ("ge5",)
    with pytest.raises(ConfigError, match="targets"):
        DebiasConfig(dataset="npz", data_root=str(path), targets=("age",))
    with pytest.raises(ConfigError, match="data_root"):
        DebiasConfig(dataset="npz", data_root=str(tmp_path / "missing.npz"))
