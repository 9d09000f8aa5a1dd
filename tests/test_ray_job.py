"""The README's Ray-job route for real: `ray start --head`, then `ray job submit` of the smoke sweep."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bdray.sweep import storage as S

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else shutil.which("ray")


@pytest.fixture
def head_node():
    temp_dir = tempfile.mkdtemp(prefix="bdray-ray-", dir="/tmp")  # short: Ray puts sockets in it
    dashboard = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([_ray_cli(), "start", "--head", f"--port={_free_port()}", f"--dashboard-port={dashboard}",
                    "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                   check=True, env=env, timeout=180, capture_output=True)
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        # stop only this cluster: every one of its processes carries its temp dir on the command line
        subprocess.run(["pkill", "-f", temp_dir], check=False)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_smoke_sweep_leaves_parquet(head_node, tmp_path):
    storage = tmp_path / "results"
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    if not (Path.home() / ".ray" / "auth_token").exists():
        env.pop("RAY_AUTH_MODE")  # a cluster without a token does not use token auth
    proc = subprocess.run(
        [_ray_cli(), "job", "submit", "--address", head_node, "--working-dir", str(REPO), "--",
         sys.executable, "sweeps/dhbe_lr.py", "--smoke-test", "--storage-path", str(storage), "--name", "job_smoke"],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "succeeded" in proc.stdout + proc.stderr
    trials = S.read_parquet(str(storage / "job_smoke" / "trials.parquet"))
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    assert (storage / "job_smoke" / "report" / "tradeoff.png").exists()
