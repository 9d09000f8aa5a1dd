"""A content-addressed artifact store: something expensive to build (the backdoored model of a
``backdoor`` config) is built once, stored under ``<root>/<kind>/<key>/`` and reused.

- The key is the sha256 of ``{"format": version, "method": kind, "config": config}`` as canonical
  JSON: equal configs share an artifact; bumping the kind's version retires every earlier one.
- A file lock (``<key>.lock``) makes concurrent builders on one file system wait for the first
  one to finish instead of building the same artifact twice.
- The directory is written under a temporary name and renamed into place, and ``meta.json``
  carries the sha256 of ``model.pt``; an artifact whose checksum does not match is rebuilt.
- ``root`` may be a local path or a URI (``s3://``, ``gs://``): then the files live there and
  are cached locally; the lock is per node, so sweeps build their artifacts before trials start.

The store knows nothing of what it holds: ``get_or_build(kind, version, config, build)`` calls
``build(workdir)`` (a folder for the builder's own checkpoints) for ``(state, meta)``.
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
from typing import Any, Callable, Dict, Tuple

import torch

from bdray.train.context import load_state

MODEL_FILE = "model.pt"
META_FILE = "meta.json"

Build = Callable[[Path], Tuple[Dict[str, Any], Dict[str, Any]]]


def artifact_key(kind: str, version: int, config: Dict[str, Any]) -> str:
    text = json.dumps({"format": version, "method": kind, "config": config},
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

    def path(self, kind: str, key: str) -> Path:
        return self.local / kind / key

    # -- validity ------------------------------------------------------------------------
    def is_valid(self, kind: str, key: str) -> bool:
        folder = self.path(kind, key)
        try:
            meta = json.loads((folder / META_FILE).read_text())
            return meta.get("sha256") == _sha256(folder / MODEL_FILE)
        except (OSError, ValueError):
            return False

    def load(self, kind: str, key: str, device="cpu") -> Tuple[Dict[str, Any], Dict[str, Any]]:
        folder = self.path(kind, key)
        meta = json.loads((folder / META_FILE).read_text())
        return load_state(folder / MODEL_FILE, device), meta

    # -- writing -------------------------------------------------------------------------
    def save(self, kind: str, key: str, state: Dict[str, Any], meta: Dict[str, Any]) -> None:
        final = self.path(kind, key)
        tmp = final.with_name(f"{key}.tmp-{os.getpid()}-{time.time_ns()}")
        tmp.mkdir(parents=True)
        torch.save(state, tmp / MODEL_FILE)
        meta = {**meta, "sha256": _sha256(tmp / MODEL_FILE), "key": key}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if final.exists():
            shutil.rmtree(final)  # a corrupt copy; the valid one replaces it
        os.replace(tmp, final)
        if self.uri:
            self._upload(kind, key)

    # -- remote storage ------------------------------------------------------------------
    def _remote(self):
        import pyarrow.fs as pafs
        fs, base = pafs.FileSystem.from_uri(self.uri)
        return fs, base.rstrip("/")

    def _upload(self, kind: str, key: str) -> None:
        fs, base = self._remote()
        fs.create_dir(f"{base}/{kind}/{key}", recursive=True)
        for name in (MODEL_FILE, META_FILE):
            with fs.open_output_stream(f"{base}/{kind}/{key}/{name}") as out:
                out.write((self.path(kind, key) / name).read_bytes())

    def _remote_has(self, kind: str, key: str) -> bool:
        import pyarrow.fs as pafs
        fs, base = self._remote()
        return fs.get_file_info(f"{base}/{kind}/{key}/{META_FILE}").type != pafs.FileType.NotFound

    def _download(self, kind: str, key: str) -> bool:
        if not self._remote_has(kind, key):
            return False
        fs, base = self._remote()
        final = self.path(kind, key)
        tmp = final.with_name(f"{key}.dl-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, META_FILE):
            with fs.open_input_stream(f"{base}/{kind}/{key}/{name}") as src:
                (tmp / name).write_bytes(src.read())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return self.is_valid(kind, key)

    # -- the one entry point ------------------------------------------------------------
    def get_or_build(self, kind: str, version: int, config: Dict[str, Any], build: Build,
                     device="cpu") -> Tuple[Dict[str, Any], Dict[str, Any], bool]:
        """``(state, meta, built_now)`` of the artifact ``(kind, version, config)``: loaded when the
        store (or its remote) has it whole, else built by ``build(workdir)`` -- at most once per key
        across concurrent callers -- saved with ``config`` in its meta, and loaded back."""
        key = artifact_key(kind, version, config)
        if self.is_valid(kind, key):
            if self.uri and not self._remote_has(kind, key):
                self._upload(kind, key)  # cached here from an earlier run; the shared store must have it too
            return (*self.load(kind, key, device), False)
        if self.uri and self._download(kind, key):
            return (*self.load(kind, key, device), False)
        with _file_lock(self.local / kind / f"{key}.lock"):
            if self.is_valid(kind, key):
                return (*self.load(kind, key, device), False)
            workdir = self.local / kind / f"{key}.partial"
            t0 = time.time()
            state, meta = build(workdir)
            self.save(kind, key, state, {"config": config, "format": version, "build_time_s": time.time() - t0, **meta})
            shutil.rmtree(workdir, ignore_errors=True)
            return (*self.load(kind, key, device), True)
