"""Run a claims check: every run of ``runs.plan`` in-process or as Ray tasks, each result kept as
JSON with the digest of its config (a rerun with the same output folder skips what is already there
and reruns what the defaults have changed since), then the claims table.

Attack artifacts are shared through one store, so the backdoored model of each seed is trained once.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bdray.claims.checks import judge
from bdray.claims.runs import plan, summary_of

KEEP = ("acc", "asr", "asr_x4", "asr_x9", "collapsed", "pred_majority_share", "isolation_precision",
        "isolation_recall", "base_isolation_precision", "mean_weight_poisoned", "mean_weight_clean", "fb_asr", "eacc", "opp", "odds",
        # detectors
        "undefended_asr", "detection_tpr", "detection_fpr", "detection_precision", "detection_auroc", "epsilon_used",
        "strip_test_tpr", "strip_test_fpr", "strip_test_auroc",
        # CLP
        "pruned_channels", "pruned_fraction",
        # ANP, RNP
        "pruned_neurons", "masks_below_half", "unlearned_acc", "unlearned_asr")


def _execute(label: str, method: str, cfg, artifact_root: str, threads: int) -> Dict[str, Any]:
    import torch

    from bdray.runtime import run_local

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    result = run_local(method, cfg, device="cpu" if not torch.cuda.is_available() else None,
                       artifact_root=artifact_root, verbose=False)
    out = {k: float(result.metrics[k]) for k in KEEP if k in result.metrics}
    out["wall_time_s"] = time.time() - t0
    return out


def run_claims(backdoor, seeds: List[int], budget: str, out_dir: str, methods: Optional[List[str]] = None,
               executor: str = "local", clean_cost: bool = True, artifact_root: Optional[str] = None,
               threads: int = 0, attributes: Optional[Dict[str, Any]] = None, log=print) -> Dict[str, Any]:
    """Run (or reuse) every run of the plan, judge the claims, write ``claims.md`` and ``claims.json``
    under ``out_dir``; returns the JSON document."""
    out = Path(os.path.expanduser(out_dir))
    (out / "runs").mkdir(parents=True, exist_ok=True)
    artifact_root = artifact_root or str(out / "artifacts")
    todo = plan(backdoor, seeds, budget, methods, clean_cost, attributes)
    by_seed: Dict[int, Dict[str, Dict[str, float]]] = {s: {} for s in seeds}
    pending, stale = [], 0
    for seed, (label, method, cfg) in todo:
        path = out / "runs" / f"seed{seed}_{label.replace('@', '_at_')}.json"
        kept = json.loads(path.read_text()) if path.exists() else None
        digest = cfg.digest()
        if kept is not None and kept.get("config_digest") == digest:
            by_seed[seed][label] = kept
        else:
            stale += kept is not None
            pending.append((seed, label, method, cfg, path, digest))
    log(f"claims: {len(todo)} runs ({len(todo) - len(pending)} already done"
        + (f", {stale} rerun because their config changed" if stale else "")
        + f") on {backdoor.dataset}, seeds {seeds}, budget {budget}, executor {executor}")
    # seed by seed, the backdoored model first (every defense of the seed reuses it) and the clean
    # model last, so that an interrupted long run has whole seeds done (and reuses them when rerun)
    pending.sort(key=lambda p: (p[0], p[1] != "backdoor", p[1] == "clean"))
    t0 = time.time()
    if executor == "ray":
        import ray

        if not ray.is_initialized():
            ray.init()
        remote = ray.remote(num_cpus=1)(_execute)
        first = [p for p in pending if p[1] in ("clean", "backdoor")]
        rest = [p for p in pending if p[1] not in ("clean", "backdoor")]
        for batch in (first, rest):
            refs = {remote.remote(lab, meth, cfg, artifact_root, threads): (seed, lab, path, digest)
                    for seed, lab, meth, cfg, path, digest in batch}
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                seed, lab, path, digest = refs.pop(done[0])
                _keep(by_seed, seed, lab, path, {**ray.get(done[0]), "config_digest": digest}, log, t0)
    else:
        for seed, lab, meth, cfg, path, digest in pending:
            metrics = _execute(lab, meth, cfg, artifact_root, threads)
            _keep(by_seed, seed, lab, path, {**metrics, "config_digest": digest}, log, t0)
    rows = judge(by_seed)
    settings = {"budget": budget, "seeds": seeds, "executor": executor, **summary_of(backdoor),
                "data_root": backdoor.data_root}
    if any(label == "dba" for _, (label, _, _) in todo):
        attributes = attributes or {}
        settings["attribute_data"] = attributes.get("data_root") or attributes.get("dataset", "digits_biased")
    doc = {"settings": settings, "claims": rows, "runs": by_seed}
    (out / "claims.json").write_text(json.dumps(doc, indent=1, default=_jsonable))
    (out / "claims.md").write_text(markdown(rows, settings))
    return doc


def _keep(by_seed, seed, label, path: Path, metrics, log, t0) -> None:
    by_seed[seed][label] = metrics
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics))
    tmp.replace(path)
    log(f"  [{time.time() - t0:6.0f} s] seed {seed} {label:<22} acc {metrics.get('acc', math.nan):.3f} "
        f"asr {metrics.get('asr', math.nan):.3f} x9 {metrics.get('asr_x9', math.nan):.3f}"
        + (" COLLAPSED" if metrics.get("collapsed") == 1.0 else ""))


def _jsonable(value):
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _fmt(stat: Dict[str, Any]) -> str:
    mean, sd = stat["mean"], stat["sd"]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.3f} ± {sd:.3f}" if len(stat["values"]) > 1 else f"{mean:.3f}"


def markdown(rows: List[Dict[str, Any]], settings: Dict[str, Any]) -> str:
    head = ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)
    lines = [f"Claims ({head}); mean ± sd over seeds", "",
             "| claim | verdict | seeds | measured |", "|---|---|---|---|"]
    for row in rows:
        measured = "; ".join(f"{k} {_fmt(v)}" for k, v in row["measured"].items())
        lines.append(f"| {row['text']} | **{row['verdict']}** | {row['seeds_held']} | {measured} |")
    return "\n".join(lines) + "\n"
