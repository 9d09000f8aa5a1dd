"""Content-addressed attack artifacts: the backdoored model for a given ``backdoor`` config is
trained once, stored under ``<root>/backdoor/<digest>/`` and reused by every defense trial.

- The key is the sha256 of the config's canonical JSON plus the artifact format version.
- A file lock (``<digest>.lock``) makes concurrent trials on one file system wait for the first
  one to finish instead of training the same model twice.
- The directory is written under a temporary name and renamed into place, and ``meta.json``
  carries the sha256 of ``model.pt``; an artifact whose checksum does not match is retrained.
- ``root`` may be a local path or a URI (``s3://``, ``gs://``): then the files live there and
  are cached locally; the lock is per node, so sweeps build the artifact before trials start.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from bdray.runtime.context import LocalContext, RunContext, load_state

# Part of every artifact key: bump it whenever model architectures or the backdoor training code
# change in a way that makes earlier artifacts wrong, so they are retrained rather than reused.
ARTIFACT_FORMAT = 4
MODEL_FILE = "model.pt"
META_FILE = "meta.json"


def artifact_key(cfg) -> str:
    text = json.dumps({"format": ARTIFACT_FORMAT, "method": "backdoor", "config": cfg.to_dict()},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_uri(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class ArtifactStore:
    def __init__(self, root: str | os.PathLike):
        root = str(root)
        self.uri = root if _is_uri(root) else None
        if self.uri:
            self.local = Path.home() / ".cache" / "bdray" / "artifact-cache" / hashlib.sha1(root.encode()).hexdigest()[:12]
        else:
            self.local = Path(root.removeprefix("file://")).expanduser()

    def path(self, key: str) -> Path:
        return self.local / "backdoor" / key

    # -- validity ------------------------------------------------------------------------
    def is_valid(self, key: str) -> bool:
        folder = self.path(key)
        try:
            meta = json.loads((folder / META_FILE).read_text())
            return meta.get("sha256") == _sha256(folder / MODEL_FILE)
        except (OSError, ValueError):
            return False

    def load(self, key: str, device="cpu") -> Tuple[Dict[str, Any], Dict[str, Any]]:
        folder = self.path(key)
        meta = json.loads((folder / META_FILE).read_text())
        return load_state(folder / MODEL_FILE, device), meta

    # -- writing -------------------------------------------------------------------------
    def save(self, key: str, state: Dict[str, Any], meta: Dict[str, Any]) -> None:
        final = self.path(key)
        tmp = final.with_name(f"{key}.tmp-{os.getpid()}-{time.time_ns()}")
        tmp.mkdir(parents=True)
        torch.save(state, tmp / MODEL_FILE)
        meta = {**meta, "sha256": _sha256(tmp / MODEL_FILE), "key": key, "format": ARTIFACT_FORMAT}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if final.exists():
            shutil.rmtree(final)  # a corrupt copy; the valid one replaces it
        os.replace(tmp, final)
        if self.uri:
            self._upload(key)

    # -- remote storage ------------------------------------------------------------------
    def _remote(self):
        import pyarrow.fs as pafs
        fs, base = pafs.FileSystem.from_uri(self.uri)
        return fs, base.rstrip("/")

    def _upload(self, key: str) -> None:
        fs, base = self._remote()
        fs.create_dir(f"{base}/backdoor/{key}", recursive=True)
        for name in (MODEL_FILE, META_FILE):
            with fs.open_output_stream(f"{base}/backdoor/{key}/{name}") as out:
                out.write((self.path(key) / name).read_bytes())

    def _remote_has(self, key: str) -> bool:
        import pyarrow.fs as pafs
        fs, base = self._remote()
        return fs.get_file_info(f"{base}/backdoor/{key}/{META_FILE}").type != pafs.FileType.NotFound

    def _download(self, key: str) -> bool:
        if not self._remote_has(key):
            return False
        fs, base = self._remote()
        tmp = self.path(key).with_name(f"{key}.dl-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, META_FILE):
            with fs.open_input_stream(f"{base}/backdoor/{key}/{name}") as src:
                (tmp / name).write_bytes(src.read())
        if self.path(key).exists():
            shutil.rmtree(self.path(key))
        os.replace(tmp, self.path(key))
        return self.is_valid(key)

    # -- the one entry point ------------------------------------------------------------
    def get_or_train(self, cfg, device, verbose: bool = True) -> Tuple[Dict[str, Any], Dict[str, Any], bool]:
        """(state, meta, trained_now).  Trains at most once per key across concurrent callers."""
        key = artifact_key(cfg)
        if self.is_valid(key):
            if self.uri and not self._remote_has(key):
                self._upload(key)  # cached here from an earlier run; the shared store must have it too
            state, meta = self.load(key, device)
            return state, meta, False
        if self.uri and self._download(key):
            state, meta = self.load(key, device)
            return state, meta, False
        with _file_lock(self.local / "backdoor" / f"{key}.lock"):
            if self.is_valid(key):
                state, meta = self.load(key, device)
                return state, meta, False
            from bdray.methods.backdoor import train_backdoor

            if verbose:
                print(f"[bdray] training attack artifact {key} ({cfg.attack} on {cfg.dataset}/{cfg.model}, "
                      f"poison_rate={cfg.poison_rate})", flush=True)
            t0 = time.time()
            ctx = LocalContext(device=device, checkpoint_dir=self.local / "backdoor" / f"{key}.partial",
                               artifact_root=self.uri or self.local, verbose=verbose)
            result = train_backdoor(cfg, ctx)
            metrics = {k: v for k, v in result.items() if isinstance(v, (int, float))}
            state = {"model": result["model"].state_dict(), "poison_indices": result["poison_indices"].cpu(),
                     "trigger_state": {k: v.cpu() for k, v in result["trigger_state"].items()}}
            meta = {"config": cfg.to_dict(), "metrics": metrics, "train_time_s": time.time() - t0,
                    "history": ctx.history}
            self.save(key, state, meta)
            shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)
            state, meta = self.load(key, device)
            return state, meta, True


def backdoored_model(cfg, ctx: RunContext, with_trigger_state: bool = False):
    """The backdoored ``ImageClassifier`` for ``cfg`` (trained now or loaded) and its metrics (and,
    with ``with_trigger_state``, the tensors that rebuild its exact trigger)."""
    from bdray.data import KNOWN_SHAPES, load_dataset
    from bdray.models import create_model

    store = ArtifactStore(ctx.artifact_root)
    state, meta, trained = store.get_or_train(cfg, ctx.device, verbose=ctx.verbose and ctx.is_main)
    if trained:
        ctx.artifacts_trained += 1
    else:
        ctx.artifacts_reused += 1
    if cfg.dataset in KNOWN_SHAPES:
        shape, num_classes = KNOWN_SHAPES[cfg.dataset]
        mean = state["model"]["mean"].flatten().tolist()
        std = state["model"]["std"].flatten().tolist()
    else:
        data = load_dataset(cfg.dataset, cfg.data_root, cfg.download)
        shape, num_classes, mean, std = data.image_shape, data.num_classes, data.mean, data.std
    model = create_model(cfg.model, shape, num_classes, mean, std)
    model.load_state_dict(state["model"])
    ctx.log(f"attack artifact {artifact_key(cfg)} {'trained' if trained else 'reused'}: "
            f"acc={meta['metrics']['acc']:.4f} asr={meta['metrics']['asr']:.4f}")
    if with_trigger_state:
        return model.to(ctx.device), meta["metrics"], state.get("trigger_state", {})
    return model.to(ctx.device), meta["metrics"]
