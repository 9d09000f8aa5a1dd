"""The four attacks of issue 18 as pure trigger functions: what each trigger does to a batch, what
poisoning adds (BppAttack's negatives, Adaptive-Blend's partial blends and covers, Refool's clean
labels), rebuilding from the stored state, and bad parameters failing by name.  Whether each one
implants a backdoor in a trained model: tests/test_new_attacks_train.py."""
import pytest
import torch

from bdray.attacks import build_trigger, poison_split
from bdray.attacks.adaptive_blend import piece_masks
from bdray.attacks.bpp import floyd_steinberg, quantize
from bdray.attacks.low_frequency import gaussian_blur, optimise_smooth_perturbation, rescale_range
from bdray.config import ConfigError
from bdray.data.splits import Split

SHAPE = (3, 16, 16)


def split_of(n=200, shape=SHAPE, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Split((torch.rand(n, *shape, generator=gen) * 255).to(torch.uint8), torch.arange(n) % 10)


def high_frequency_share(v: torch.Tensor) -> float:
    """Share of the (mean-removed) spectral energy outside the lowest quarter of frequencies."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(v - v.mean(dim=(-2, -1), keepdim=True)), dim=(-2, -1)).abs() ** 2
    h, w = v.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    low = (yy.abs() <= h // 8) & (xx.abs() <= w // 8)
    return float(spectrum[..., ~low].sum() / spectrum.sum())


def test_bpp_quantises_to_the_levels_and_dithering_keeps_the_mean():
    x = torch.rand(4, *SHAPE)
    q = quantize(x, 8)
    assert len(torch.unique(q)) <= 8 and (q - x).abs().max() <= 1 / 14 + 1e-6
    d = floyd_steinberg(x, 8)
    levels = torch.arange(8) / 7
    assert torch.isclose(d.unsqueeze(-1), levels).any(-1).all()  # every value is one of the 8 levels
    # error diffusion: local means follow the image far better than plain rounding's do
    pool = torch.nn.functional.avg_pool2d
    assert (pool(d, 4) - pool(x, 4)).abs().mean() < 0.5 * (pool(q, 4) - pool(x, 4)).abs().mean() + 1e-3
    trig = build_trigger("bpp", {}, SHAPE)
    assert torch.equal(trig.apply(x), d)
    assert torch.equal(build_trigger("bpp", {"dithering": False}, SHAPE).apply(x), q)


def test_bpp_negatives_keep_their_labels_and_carry_another_images_residual():
    split = split_of()
    trig = build_trigger("bpp", {"negative_ratio": 1.0}, SHAPE)
    out = poison_split(split, trig, rate=0.1, target_class=0, label_mode="dirty", seed=0)
    assert len(out.cross_indices) == len(out.poison_indices) == 20
    assert set(out.cross_indices.tolist()).isdisjoint(out.poison_indices.tolist())
    assert torch.equal(out.split.labels[out.cross_indices], split.labels[out.cross_indices])
    assert (out.split.labels[out.poison_indices] == 0).all()
    negatives = out.split.images[out.cross_indices].float() / 255
    # a negative is not its own quantisation: the residual came from another image
    assert (negatives - trig.apply(split.images[out.cross_indices].float() / 255)).abs().mean() > 0.01
    with pytest.raises(ConfigError, match="squeeze_num"):
        build_trigger("bpp", {"squeeze_num": 1}, SHAPE)


def test_adaptive_blend_poisons_with_partial_blends_and_tests_with_the_whole_one():
    gen = torch.Generator().manual_seed(0)
    masks = piece_masks(50, 16, 16, pieces=16, masked=8, generator=gen)
    assert masks.shape == (50, 1, 16, 16)
    assert torch.all(masks.sum(dim=(1, 2, 3)) == 8 * 16)  # 8 kept cells of 4×4 pixels each
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 40  # the kept cells differ per image
    split = split_of()
    trig = build_trigger("adaptive_blend", {}, SHAPE)
    out = poison_split(split, trig, rate=0.1, target_class=0, label_mode="dirty", seed=0)
    assert len(out.cross_indices) == len(out.poison_indices) == 20  # covers: as many as poisons
    assert torch.equal(out.split.labels[out.cross_indices], split.labels[out.cross_indices])
    x = split.images.float() / 255
    for idx in (out.poison_indices, out.cross_indices):
        changed = (out.split.images[idx].float() / 255 - x[idx]).abs().amax(dim=1) > 1 / 255
        share = changed.float().mean(dim=(1, 2))
        assert ((share > 0.3) & (share < 0.7)).all()  # about half the image carries the pattern
    full = trig.apply(x[:5])
    assert torch.allclose(full, 0.8 * x[:5] + 0.2 * trig.pattern)  # test time: all pieces, α 0.2
    with pytest.raises(ConfigError, match="pieces"):
        build_trigger("adaptive_blend", {"pieces": 10}, SHAPE)


def test_refool_reflects_training_images_clean_label_and_rebuilds_from_state():
    split = split_of()
    pool = split.images.float() / 255
    trig = build_trigger("refool", {}, SHAPE, images=lambda: pool)
    assert trig.clean_label and trig.layers.shape == (16, *SHAPE)
    x = pool[:20]
    y = trig.apply(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert 0.01 < float((y - x).abs().mean()) < 0.3
    # pure per image: the same image gets the same reflection in any batch
    assert torch.allclose(trig.apply(x[5:6]), y[5:6]) and torch.allclose(trig.apply(x.flip(0)), y.flip(0))
    rebuilt = build_trigger("refool", {}, SHAPE, state=trig.state())
    assert torch.equal(rebuilt.apply(x), y)
    out = poison_split(split, trig, rate=0.05, target_class=3, label_mode="clean", seed=0)
    assert (split.labels[out.poison_indices] == 3).all() and torch.equal(out.split.labels, split.labels)
    with pytest.raises(ValueError, match="training images"):
        build_trigger("refool", {}, SHAPE)
    with pytest.raises(ConfigError, match="num_reflections"):
        build_trigger("refool", {"num_reflections": 500}, SHAPE, images=lambda: pool)


def test_lf_perturbation_is_smooth_bounded_and_pushes_a_model_to_the_target():
    blurred = gaussian_blur(torch.rand(1, 3, 32, 32), sigma=6.0)
    assert high_frequency_share(blurred) < 0.05 < high_frequency_share(torch.rand(1, 3, 32, 32))
    v = rescale_range(torch.randn(3, 8, 8), 0.2)
    assert float(v.min()) == pytest.approx(0.0) and float(v.max()) == pytest.approx(0.2)
    # a linear "model" whose class-0 logit is the mean pixel: the perturbation should brighten
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0] = 1.0 / (3 * 16 * 16) * 20
        model[1].bias.copy_(torch.tensor([-5.5, 0.0]))
    images = torch.rand(64, *SHAPE) * 0.5
    v = optimise_smooth_perturbation(model, images, target_class=0, sigma=3.0, amplitude=0.2, steps=30,
                                     step_lr=0.1, seed=0)
    assert v.shape == SHAPE and float(v.max() - v.min()) == pytest.approx(0.2, abs=1e-5)
    assert high_frequency_share(v) < 0.05
    trig = build_trigger("lf", {}, SHAPE, state={"perturbation": v})
    assert (model(trig.apply(images)).argmax(1) == 0).float().mean() > (model(images).argmax(1) == 0).float().mean()
    with pytest.raises(ValueError, match="surrogate"):
        build_trigger("lf", {}, SHAPE)
