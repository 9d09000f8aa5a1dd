"""The package's import graph: no module imports (directly or through a chain) one that imports
it back, and no layer imports a higher one (data/models/attacks < train/artifacts < methods <
runtime/presets < sweep/claims).  Read from the source with ``ast``; lazy imports inside functions
count too."""
import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "bdray"
LAYERS = [("bdray.config", 0), ("bdray.registry", 0), ("bdray.data", 0), ("bdray.models", 0),
          ("bdray.attacks", 0), ("bdray.metrics", 0), ("bdray.fairness", 0), ("bdray.train", 1),
          ("bdray.artifacts", 1), ("bdray.methods", 2), ("bdray.runtime", 3), ("bdray.presets", 3),
          ("bdray.claims", 4), ("bdray.sweep", 4)]


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _graph():
    mods = _modules()
    edges = defaultdict(set)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bdray"):
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                # a package's own modules may import it (its __init__ runs first in any case)
                if target in mods and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return mods, edges


def _layer(module):
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def test_no_module_imports_a_higher_layer():
    _, edges = _graph()
    upward = [(a, b) for a, targets in edges.items() for b in targets
              if None not in (_layer(a), _layer(b)) and _layer(b) > _layer(a)]
    assert upward == []


def test_no_import_cycles():
    mods, edges = _graph()
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for module in sorted(mods):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_the_graph_is_read():
    _, edges = _graph()  # the checks above would pass on an empty graph
    assert "bdray.train" in edges["bdray.methods.erasing.dhbe"]
    assert "bdray.methods.attack.backdoor" in edges["bdray.methods.attack.threat"]
