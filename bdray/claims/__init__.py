"""The paper-claims harness: ``python -m bdray.claims`` trains the attack once per seed, runs every
method, judges each paper's claim (holds / weak / fails over seeds) and writes Markdown + JSON."""
from bdray.claims.checks import CLAIMS, judge, verdict
from bdray.claims.harness import run_claims
from bdray.claims.runs import BUDGETS, DEFENSES, plan

__all__ = ["BUDGETS", "CLAIMS", "DEFENSES", "judge", "plan", "run_claims", "verdict"]
