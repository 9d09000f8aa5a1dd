"""The threat model every method starts from, built in one module: the attack's trigger (with the
clean surrogate model an optimising attack needs), the poisoned training set, and the backdoored
model -- a content-addressed artifact (``bdray.artifacts``) trained once per ``backdoor`` config
and reused by every defense."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Optional, Tuple

import torch

from bdray.artifacts import ArtifactStore, artifact_key
from bdray.attacks import build_trigger, poison_split
from bdray.attacks.specs import Trigger
from bdray.data import KNOWN_SHAPES, Dataset, Split, load_dataset, to_float
from bdray.methods.attack.backdoor import BackdoorConfig, resolved_label_mode, surrogate_config, train_on_poisoned
from bdray.methods.common import seed_everything
from bdray.models import ImageClassifier, create_model
from bdray.train.context import LocalContext, RunContext

ARTIFACT_KIND = "backdoor"
# Part of every backdoored model's key: bump it whenever model architectures or the backdoor
# training change in a way that makes earlier artifacts wrong, so they are retrained, not reused.
ARTIFACT_FORMAT = 4


# -- the trigger ---------------------------------------------------------------------------------
def attack_trigger(cfg: BackdoorConfig, image_shape, ctx: Optional[RunContext] = None, data: Optional[Dataset] = None,
                   state: Optional[Dict[str, torch.Tensor]] = None) -> Trigger:
    """The attack's trigger: rebuilt from ``state`` (stored with an artifact) when given; attacks
    that need a surrogate get the clean surrogate model (itself an artifact) and ``data``'s training
    images (only with ``ctx``)."""
    def load_surrogate():
        model, _ = backdoored_model(surrogate_config(cfg), ctx)
        return model.eval(), to_float(data.train.images)

    return build_trigger(cfg.attack, cfg.attack_params, image_shape, cfg.seed,
                         surrogate=load_surrogate if ctx is not None else None, state=state,
                         images=(lambda: to_float(data.train.images)) if data is not None else None)


# -- the poisoned training set -------------------------------------------------------------------
@dataclasses.dataclass
class PoisonedData:
    data: Dataset                 # clean splits; metrics on the test split (and val_* on the validation split)
    train: Split                  # the poisoned training split
    poison_indices: torch.Tensor  # which training samples carry the trigger (CPU; for judging only)
    trigger: Trigger              # the attack's test-time trigger (for evaluation only)
    target_class: int

    @property
    def is_poisoned(self) -> torch.Tensor:
        mask = torch.zeros(len(self.train), dtype=torch.bool)
        mask[self.poison_indices] = True
        return mask


def poisoned_set(cfg: BackdoorConfig, ctx: RunContext, trigger_state: Optional[Dict] = None) -> PoisonedData:
    """The poisoned training split of ``cfg`` on the context's device -- the same samples, indices
    and trigger for the attack's training and for every training-time defense; ``trigger_state``
    (from the attack artifact) rebuilds an optimised trigger exactly."""
    data = load_dataset(cfg.dataset, cfg.data_root, cfg.download, cfg.val_fraction, cfg.image_size).to(ctx.device)
    trigger = attack_trigger(cfg, data.image_shape, ctx=ctx, data=data, state=trigger_state or None)
    poisoned = poison_split(data.train, trigger, rate=cfg.poison_rate, target_class=cfg.target_class,
                            label_mode=resolved_label_mode(cfg, trigger), seed=cfg.seed)
    return PoisonedData(data, poisoned.split, poisoned.poison_indices.cpu(), trigger, cfg.target_class)


def poisoned_training(cfg: BackdoorConfig, ctx: RunContext) -> Tuple[PoisonedData, ImageClassifier]:
    """Seed, build the poisoned set and create the (seeded) model the attack trains."""
    seed_everything(cfg.seed)
    poisoned = poisoned_set(cfg, ctx)
    data = poisoned.data
    return poisoned, create_model(cfg.model, data.image_shape, data.num_classes, data.mean, data.std)


def train_backdoor(cfg: BackdoorConfig, ctx: RunContext) -> Dict[str, Any]:
    """The ``backdoor`` method: train on the poisoned set; the final metrics plus the model, the
    poisoned indices and the tensors that rebuild the trigger."""
    poisoned, model = poisoned_training(cfg, ctx)
    result = train_on_poisoned(cfg, ctx, poisoned.data, poisoned.train, poisoned.trigger, model)
    return {**result, "poison_indices": poisoned.poison_indices, "trigger_state": poisoned.trigger.state()}


# -- the backdoored model (an artifact) ----------------------------------------------------------
def backdoor_artifact(cfg: BackdoorConfig, root, device, verbose: bool = True):
    """``(state, meta, trained_now)`` of the backdoored model of ``cfg`` in the store at ``root``."""
    store = ArtifactStore(root)

    def build(workdir) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        if verbose:
            print(f"[bdray] training attack artifact {artifact_key(ARTIFACT_KIND, ARTIFACT_FORMAT, cfg.identity())} "
                  f"({cfg.attack} on {cfg.dataset}/{cfg.model}, poison_rate={cfg.poison_rate})", flush=True)
        t0 = time.time()
        label = f"attack {cfg.attack} {cfg.attack_params.get('trigger_size', '')}".rstrip()
        ctx = LocalContext(device=device, checkpoint_dir=workdir, artifact_root=store.uri or store.local, verbose=verbose,
                           progress=label)
        result = train_backdoor(cfg, ctx)
        state = {"model": result["model"].state_dict(), "poison_indices": result["poison_indices"].cpu(),
                 "trigger_state": {k: v.cpu() for k, v in result["trigger_state"].items()}}
        metrics = {k: v for k, v in result.items() if isinstance(v, (int, float))}
        return state, {"metrics": metrics, "train_time_s": time.time() - t0, "history": ctx.history}

    return store.get_or_build(ARTIFACT_KIND, ARTIFACT_FORMAT, cfg.identity(), build, device)


def backdoored_model(cfg: BackdoorConfig, ctx: RunContext, with_trigger_state: bool = False):
    """The backdoored ``ImageClassifier`` for ``cfg`` (trained now or loaded) on the context's
    device and its metrics (and, with ``with_trigger_state``, the tensors that rebuild its exact
    trigger)."""
    state, meta, trained = backdoor_artifact(cfg, ctx.artifact_root, ctx.device, verbose=ctx.verbose and ctx.is_main)
    if trained:
        ctx.artifacts_trained += 1
    else:
        ctx.artifacts_reused += 1
    if cfg.dataset in KNOWN_SHAPES:
        shape, num_classes = KNOWN_SHAPES[cfg.dataset]
        mean = state["model"]["mean"].flatten().tolist()
        std = state["model"]["std"].flatten().tolist()
    else:
        data = load_dataset(cfg.dataset, cfg.data_root, cfg.download, image_size=cfg.image_size)
        shape, num_classes, mean, std = data.image_shape, data.num_classes, data.mean, data.std
    model = create_model(cfg.model, shape, num_classes, mean, std)
    model.load_state_dict(state["model"])
    ctx.log(f"attack artifact {meta['key']} {'trained' if trained else 'reused'}: "
            f"acc={meta['metrics']['acc']:.4f} asr={meta['metrics']['asr']:.4f}")
    if with_trigger_state:
        return model.to(ctx.device), meta["metrics"], state.get("trigger_state", {})
    return model.to(ctx.device), meta["metrics"]


# -- what a post-training defense receives -------------------------------------------------------
@dataclasses.dataclass
class Threat:
    model: ImageClassifier          # the backdoored model, on the context's device
    metrics: Dict[str, Any]         # its metrics when it was trained
    data: Dataset                   # clean train/test splits (the defender never sees poisoned data)
    trigger: Trigger                # the attack's test-time trigger, for evaluation only
    target_class: int


def load_threat(cfg: BackdoorConfig, ctx: RunContext) -> Threat:
    model, metrics, trigger_state = backdoored_model(cfg, ctx, with_trigger_state=True)
    data = load_dataset(cfg.dataset, cfg.data_root, cfg.download, cfg.val_fraction, cfg.image_size).to(ctx.device)
    trigger = attack_trigger(cfg, data.image_shape, state=trigger_state)
    return Threat(model, metrics, data, trigger, cfg.target_class)
