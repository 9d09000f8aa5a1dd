"""A defense knows what a defender knows: never the recorded poison indices, never the poisoning rate.

Every method that is handed the poisoned training set (the detectors and the training-time
defenses) is run twice on the same attack: once as it is, once with the *recorded* poison indices
swapped for as many clean ones.  What the defense does -- its flagged set, its model, its acc and
asr -- must not change; only the scores it is judged by afterwards (TPR, precision) may.  The
post-training defenses are never handed the poisoned set at all: their modules do not import it.
"""
import dataclasses
import pathlib

import pytest
import torch

import bdray.methods.attack.threat as threat_module
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.presets import SMOKE_SETTINGS
from bdray.runtime import run_local

METHODS_ROOT = pathlib.Path(threat_module.__file__).resolve().parents[1]
# what a run did (not how it was judged): equal with true and decoy indices
DEFENDED = ("acc", "asr", "flagged_samples", "undefended_acc", "undefended_asr", "epsilon_used")
JUDGED = ("detection_tpr", "isolation_precision", "isolation_recall", "mean_weight_poisoned")


@dataclasses.dataclass
class DecoyPoisonedData(threat_module.PoisonedData):
    """The same poisoned split and trigger, but ``poison_indices`` names clean samples instead."""

    def __post_init__(self) -> None:
        n, k = len(self.train), len(self.poison_indices)
        clean = torch.ones(n, dtype=torch.bool)
        clean[self.poison_indices] = False
        candidates = torch.nonzero(clean).flatten()
        pick = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(1))[:k]
        self.poison_indices = candidates[pick].sort().values


def _run(method, artifact_root, config):
    result = run_local(method, config, artifact_root=artifact_root, verbose=False)
    return result.metrics, result.model


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spectral_signatures", "activation_clustering", "strip", "abl", "pt", "cbd"])
def test_a_defense_does_the_same_whatever_the_recorded_poison_indices_say(artifact_root, monkeypatch, method):
    config = {"backdoor": BackdoorConfig(poison_rate=0.05, epochs=8).to_dict(), **SMOKE_SETTINGS.get(method, {})}
    true_metrics, true_model = _run(method, artifact_root, config)
    monkeypatch.setattr(threat_module, "PoisonedData", DecoyPoisonedData)
    decoy_metrics, decoy_model = _run(method, artifact_root, config)
    judged = [k for k in JUDGED if k in true_metrics]
    assert judged, "the run reports no score against the recorded indices"
    # the decoy took effect: the scores against the recorded indices changed ...
    assert any(true_metrics[k] != decoy_metrics[k] for k in judged), {k: true_metrics[k] for k in judged}
    # ... and what the defense did did not
    for key in DEFENDED:
        if key in true_metrics:
            assert decoy_metrics[key] == true_metrics[key], (key, true_metrics[key], decoy_metrics[key])
    for (name, a), (_, b) in zip(true_model.state_dict().items(), decoy_model.state_dict().items()):
        assert torch.equal(a, b), f"{method}: {name} differs when the recorded poison indices change"


def _defense_modules():
    for folder in ("erasing", "training_time", "detection"):
        for path in sorted((METHODS_ROOT / folder).glob("*.py")):
            yield path


def test_no_defense_reads_the_poisoning_rate():
    readers = [p.name for p in _defense_modules() if "poison_rate" in p.read_text()]
    assert not readers, f"defense modules reading the attack's poisoning rate: {readers}"


def test_post_training_defenses_are_never_handed_the_poisoned_set():
    leaks = [p.name for p in (METHODS_ROOT / "erasing").glob("*.py")
             if any(word in p.read_text() for word in ("poisoned_set", "PoisonedData", "poison_indices", "is_poisoned"))]
    assert not leaks, f"post-training defenses with access to the recorded poison set: {leaks}"


@pytest.mark.slow
def test_spectral_signatures_at_defaults_flags_at_most_a_fifth_of_the_clean_images(artifact_root):
    """BadNets at 10 % (about half of the target class): ε is the defender's bound, not the attack's."""
    m, _ = _run("spectral_signatures", artifact_root, {"backdoor": BackdoorConfig(poison_rate=0.1).to_dict()})
    assert m["epsilon_used"] == 0.1
    assert m["detection_fpr"] <= 0.2, m["detection_fpr"]
