"""What every benchmark script shares: the machine it ran on, a printed table, a JSON record."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> Dict[str, Any]:
    """CPU, cores, memory, GPU (if any) and library versions."""
    import torch

    info: Dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "python": platform.python_version(), "torch": torch.__version__}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
    else:
        info["gpu"] = None
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        pass
    return info


def print_table(rows: Sequence[Dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    if not rows:
        print("(no rows)")
        return
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write_result(name: str, rows: List[Dict[str, Any]], summary: Dict[str, Any], out: str | None = None) -> Path:
    """``results/<name>.json`` (or ``out``): machine, date, the exact command, rows and summary."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
              "machine": machine(), "summary": summary, "rows": rows}
    path.write_text(json.dumps(record, indent=2, default=str))
    print(f"\nwritten: {path}")
    return path


def verdict(name: str, value: float, target: float, higher_is_better: bool = True) -> Dict[str, Any]:
    met = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    print(f"{name}: {value:.3f} (target {sign} {target}) -> {'MET' if met else 'NOT MET'}")
    return {"name": name, "value": value, "target": target, "met": bool(met)}
