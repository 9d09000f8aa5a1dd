"""Paths under a sweep's storage location, local or ``s3://``/``gs://``, and atomic writes."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Tuple

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def is_uri(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def join(base: str, *parts: str) -> str:
    base = str(base)
    if is_uri(base):
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base.removeprefix("file://")).expanduser().joinpath(*parts))


def filesystem(path: str) -> Tuple[pafs.FileSystem, str]:
    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def write_parquet_atomic(df: pd.DataFrame, path: str) -> None:
    """Write ``df`` to a temporary name beside ``path`` and rename it into place, so readers see
    either the old file or the new one, never half of one."""
    fs, p = filesystem(path)
    parent = p.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{p}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    table = pa.Table.from_pandas(df, preserve_index=False)
    try:
        with fs.open_output_stream(tmp) as out:
            pq.write_table(table, out)
        fs.move(tmp, p)  # an atomic rename on local and POSIX shared file systems
    finally:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)


def write_text_atomic(path: str, text: str) -> None:
    fs, p = filesystem(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    tmp = f"{p}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(tmp) as out:
        out.write(text.encode())
    fs.move(tmp, p)


def read_text(path: str) -> str:
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def list_files(folder: str, suffix: str = "") -> list:
    """Paths (in ``folder``'s form: local or URI) of the files directly in ``folder``; [] if none."""
    fs, p = filesystem(folder)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p, recursive=False))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix))
    return [join(folder, name) for name in names]


def read_parquet(path: str) -> pd.DataFrame:
    fs, p = filesystem(path)
    with fs.open_input_file(p) as f:
        return pq.read_table(f).to_pandas()


def append_rows(path: str, rows: pd.DataFrame, key=("sweep", "trial_id")) -> pd.DataFrame:
    """Merge ``rows`` into the table at ``path`` (rows with the same key are replaced)."""
    if exists(path):
        old = read_parquet(path)
        if len(rows):
            keys = set(map(tuple, rows[list(key)].astype(str).itertuples(index=False, name=None)))
            stale = old[list(key)].astype(str).apply(tuple, axis=1).isin(keys)
            old = old[~stale]
        merged = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    else:
        merged = rows
    write_parquet_atomic(merged, path)
    return merged


def upload_folder(local_dir: str, target: str) -> None:
    """Copy the files of a local folder to ``target`` (local path or ``s3://``/``gs://`` URI)."""
    fs, p = filesystem(target)
    fs.create_dir(p, recursive=True)
    pafs.copy_files(str(Path(local_dir).resolve()), p, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
