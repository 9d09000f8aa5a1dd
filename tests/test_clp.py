"""CLP (channel Lipschitzness-based pruning): the convolution → BatchNorm pairs it traces, the
bound it computes, the channels it prunes, and -- on a BadNets model of the embedded digits --
that pruning without any data removes the backdoor at a small accuracy cost."""
import pytest
import torch
from torch import nn

from bdray.config import ConfigError
from bdray.methods import get_method
from bdray.methods.erasing.clp import channel_lipschitz_bounds, clp_prune, conv_bn_pairs
from bdray.models import create_model


@pytest.mark.parametrize("model, pairs", [("small_cnn", 4), ("resnet18", 20), ("preact_resnet18", 9)])
def test_pairs_are_traced_from_the_forward_pass(model, pairs):
    net = create_model(model, (3, 32, 32), 10, [0.5] * 3, [0.25] * 3)
    found = conv_bn_pairs(net, (3, 32, 32))
    assert len(found) == pairs  # ResNet-18: 17 convs + 3 shortcut convs; pre-activation: each block's bn2 and the first block's bn1
    assert all(bn.num_features == conv.out_channels for conv, bn in found)


def test_bound_is_the_spectral_norm_scaled_by_batchnorm():
    conv, bn = nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    bounds = channel_lipschitz_bounds(conv, bn)
    for k in range(3):
        sigma = torch.linalg.svdvals(conv.weight[k].reshape(2, 9))[0]
        scale = abs(float(bn.weight.detach()[k])) / (float(bn.running_var[k]) + bn.eps) ** 0.5
        assert float(bounds[k]) == pytest.approx(float(sigma) * scale, rel=1e-5)


def test_only_the_outlying_channel_is_pruned():
    torch.manual_seed(0)
    net = create_model("small_cnn", (1, 16, 16), 10, [0.5], [0.25])
    conv, bn = conv_bn_pairs(net, (1, 16, 16))[2]
    with torch.no_grad():
        conv.weight[7] *= 40  # one channel far more sensitive to its input than the others
    counts = clp_prune(net, (1, 16, 16), u=3.0)
    assert float(bn.weight[7]) == 0 and float(bn.bias[7]) == 0
    assert counts["pruned_channels"] >= 1 and counts["clp_layers"] == 4
    untouched = create_model("small_cnn", (1, 16, 16), 10, [0.5], [0.25])
    assert clp_prune(untouched, (1, 16, 16), u=100.0)["pruned_channels"] == 0
    with pytest.raises(ConfigError, match="invalid u="):
        get_method("clp").make_config({"u": -1})


@pytest.mark.slow
def test_clp_on_a_digits_backdoor_prunes_more_as_u_falls_and_removes_the_trigger(artifact_root):
    """On bdray's small_cnn (16-64 channels a layer) no channel's bound is 3 std above its layer's
    (largest z ≈ 2.8): the paper's u = 3 prunes nothing there and the backdoor stays (docs/methods.md,
    benchmarks/RESULTS.md).  Lower u prunes the outlying channels first, and the trigger goes."""
    from bdray.runtime import run_local

    runs = {u: run_local("clp", {"u": u}, device="cpu", artifact_root=artifact_root, verbose=False)
            for u in (100.0, 2.0, 0.5)}
    m = {u: r.metrics for u, r in runs.items()}
    assert m[100.0]["pruned_channels"] == 0 and m[100.0]["asr"] == m[100.0]["teacher_asr"] >= 0.95
    assert m[100.0]["acc"] == m[100.0]["teacher_acc"]  # nothing pruned: the backdoored model itself
    assert 0 < m[2.0]["pruned_channels"] < m[0.5]["pruned_channels"]
    assert m[0.5]["asr"] <= 0.10  # the high-bound channels carry the trigger
    zeroed = sum(int((bn.weight == 0).sum()) for _, bn in conv_bn_pairs(runs[0.5].model, (1, 16, 16)))
    assert zeroed == m[0.5]["pruned_channels"]
