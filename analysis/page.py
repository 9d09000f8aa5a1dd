"""``report/index.html``: one self-contained page of a sweep -- what ran (methods, swept and fixed
settings, seeds, the split that chose, compute used), the best configurations, then every figure
(PNG embedded as data URIs: the page is one file that can be mailed or attached) and every table
of the report folder (its Markdown files rendered as HTML)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Dict, List, Sequence

import pandas as pd

from analysis.summary import best_configurations, format_value
from analysis.tables import markdown_table

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 7px; text-align: right; } th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; } code { background: #f5f5f5; padding: 0 3px; }
nav a { margin-right: 1em; } .note { color: #555; } .wide { overflow-x: auto; }
"""

# what each figure of the report folder shows, in the order the page lists them
FIGURES = {
    "tradeoff": "ACC–ASR trade-off per curve (error bars: 95 % CI over seeds)",
    "pareto": "Non-dominated configurations",
    "lr_sensitivity": "DHBE sensitivity to the student learning rate",
    "lambda_sensitivity": "DHBE sensitivity to λ",
    "robustness": "ASR and accuracy per poisoning rate (CBD Fig./Table 2)",
    "isolation": "Isolation precision and recall per isolation ratio",
}


def inline(text: str) -> str:
    """Escape ``text`` and render the Markdown the reports use inline: ``code`` and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def markdown_to_html(text: str, level_shift: int = 1) -> str:
    """The Markdown subset the report files are written in: headings, pipe tables, ``-`` lists and
    paragraphs (headings moved down ``level_shift`` levels, below the page's own)."""
    out: List[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + level_shift)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            out.append(_table(rows))
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _cells(row: str) -> List[str]:
    cells = re.split(r"(?<!\\)\|", row.strip()[1:-1])
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(rows: Sequence[str]) -> str:
    header, body = _cells(rows[0]), [_cells(r) for r in rows[2:]]
    head = "".join(f"<th>{inline(c)}</th>" for c in header)
    cells = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table></div>"


def _embedded(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'


def _frame_html(df: pd.DataFrame) -> str:
    return markdown_to_html(markdown_table(df))


def _overview(trials: pd.DataFrame) -> str:
    """What ran: counts, methods, seeds, the split that chose, compute."""
    done = trials[trials["status"] == "TERMINATED"] if "status" in trials else trials
    facts = [("trials", f"{len(trials)} ({len(done)} finished)"),
             ("methods", ", ".join(map(str, trials["method"].dropna().unique())) if "method" in trials else "")]
    if "seed_index" in trials:
        facts.append(("seeds per configuration", str(int(trials["seed_index"].max()) + 1)))
    if "config_id" in trials:
        facts.append(("configurations", str(trials["config_id"].nunique())))
    if "objectives" in trials:
        facts.append(("search objectives", ", ".join(map(str, trials["objectives"].dropna().unique()))))
    if "selected_on" in trials:
        facts.append(("chosen on", ", ".join(map(str, trials["selected_on"].dropna().unique())) + " split"))
    if "backdoor_val_fraction" in trials:
        facts.append(("validation split", f"{float(trials['backdoor_val_fraction'].iloc[0]):.0%} of the training data"))
    for col, label in (("cpu_hours", "CPU-hours"), ("gpu_hours", "GPU-hours"), ("wall_time_s", "trial wall time (s)")):
        if col in trials:
            facts.append((label, f"{trials[col].sum():.4g}"))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table>"


def _config_columns(method: str) -> set:
    """The trials-table columns that are config fields of ``method`` (not metrics)."""
    try:
        from bdray.methods import get_method

        return set(get_method(method).make_config(None).columns())
    except Exception:  # a method of another bdray version: show nothing rather than guess
        return set()


def _configuration(trials: pd.DataFrame) -> str:
    """Per method, the config fields that varied across trials (with their values) and those every
    trial shared."""
    parts = []
    for method, part in trials.groupby("method", sort=False):
        fixed, swept = [], []
        config = _config_columns(str(method))
        for col in [c for c in part.columns if c in config]:
            values = part[col].dropna().unique()
            if len(values) == 1:
                fixed.append((col, format_value(values[0])))
            elif len(values) > 1:
                shown = sorted(values) if len(values) <= 8 else [min(values), max(values)]
                swept.append((col, (", " if len(values) <= 8 else " … ").join(format_value(v) for v in shown)))
        parts.append(f"<h3>{html.escape(str(method))}</h3>")
        if swept:
            parts.append(_frame_html(pd.DataFrame(swept, columns=["varied", "values"])))
        parts.append(f"<details><summary>fixed settings ({len(fixed)})</summary>"
                     + _frame_html(pd.DataFrame(fixed, columns=["setting", "value"])) + "</details>")
    return "\n".join(parts)


def _best(trials: pd.DataFrame) -> str:
    if "objectives" not in trials or trials["objectives"].isna().all():
        return "<p class='note'>No search objectives recorded.</p>"
    from bdray.sweep.cli import objectives as parse

    objectives = parse(str(trials["objectives"].dropna().iloc[0]).split())
    best = best_configurations(trials, objectives)
    if not len(best):
        return "<p class='note'>No finished trial has the objectives.</p>"
    config = set().union(*(_config_columns(str(m)) for m in trials["method"].dropna().unique()))
    varied = [c for c in trials if c in config and c in best and trials[c].nunique(dropna=True) > 1
              and not c.endswith("seed")]
    metrics = [c for c in (*[m for m, _ in objectives], "acc", "asr", "der", "seeds") if c in best]
    return _frame_html(best[list(dict.fromkeys(["method", *varied, *metrics]))])


def write_index(out: Path, trials: pd.DataFrame, sweep: str, files: Sequence[str]) -> Path:
    """Write ``out/index.html`` from ``trials`` and the report's ``files`` (the PNG and Markdown
    files this report wrote: a stale file of an earlier report is not shown)."""
    files = [Path(f) for f in files]
    figures = sorted((p for p in files if p.suffix == ".png"),
                     key=lambda p: (list(FIGURES).index(p.stem) if p.stem in FIGURES else 99, p.name))
    tables = sorted((p for p in files if p.suffix == ".md"), key=lambda p: (p.stem != "trials", p.name))
    sections = [("overview", "What ran", _overview(trials)),
                ("best", "Best configurations (on what the search optimised)", _best(trials)),
                ("figures", "Figures", "\n".join(
                    f"<figure>{_embedded(p)}<figcaption>{html.escape(FIGURES.get(p.stem, p.stem))} "
                    f"(<code>{html.escape(p.name)}</code>)</figcaption></figure>" for p in figures)
                 or "<p class='note'>No figures.</p>"),
                ("tables", "Tables", "\n".join(
                    f"<section id='{html.escape(p.stem)}'><p class='note'><code>{html.escape(p.name)}</code></p>"
                    f"{markdown_to_html(p.read_text(), level_shift=2)}</section>" for p in tables)),
                ("configuration", "Configuration", _configuration(trials) if "method" in trials else "")]
    nav = "".join(f"<a href='#{key}'>{html.escape(title.split(' (')[0])}</a>" for key, title, _ in sections)
    body = "\n".join(f"<h2 id='{key}'>{html.escape(title)}</h2>\n{content}" for key, title, content in sections)
    page = (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>bdray sweep {html.escape(sweep)}"
            f"</title><style>{STYLE}</style></head><body>\n<h1>bdray sweep <code>{html.escape(sweep)}</code></h1>\n"
            f"<nav>{nav}</nav>\n{body}\n<p class='note'>Written by <code>python -m analysis</code> from "
            "<code>trials.parquet</code>; the Parquet tables hold every number shown here.</p></body></html>\n")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
