"""The README's Ray-job route for real: `ray start --head`, then `ray job submit` of the smoke sweep."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


def stop_process_group(pid: int) -> None:
    """Stop a `ray start` and every service it launched (they share its process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):  # Ray's services ignore SIGTERM
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        time.sleep(2)


@pytest.fixture
def head_node():
    temp_dir = tempfile.mkdtemp(prefix="bdray-ray-", dir="/tmp")  # short: Ray puts sockets in it
    dashboard = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # its own session: every service `ray start` launches (and their workers) share its process
    # group, so teardown can stop this cluster alone -- `ray stop` would stop every Ray on the machine
    # Every service on its own free port: the session's Ray instance may already hold the defaults
    # (the dashboard agent's 52365, the client server's 10001, ...), and then no job agent comes up.
    ports = [f"--{name}={_free_port()}" for name in (
        "port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
        "runtime-env-agent-port", "node-manager-port", "object-manager-port", "ray-client-server-port")]
    start = subprocess.Popen([_ray_cli(), "start", "--head", *ports, f"--dashboard-port={dashboard}",
                              "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats"], env=env,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert start.wait(timeout=180) == 0
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        stop_process_group(start.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_smoke_sweep_leaves_parquet(head_node, tmp_path):
    storage = tmp_path / "results"
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    if not (Path.home() / ".ray" / "auth_token").exists():
        env.pop("RAY_AUTH_MODE")  # a cluster without a token does not use token auth
    command = [_ray_cli(), "job", "submit", "--address", head_node, "--working-dir", str(REPO), "--",
               sys.executable, "sweeps/dhbe_lr.py", "--smoke-test", "--storage-path", str(storage), "--name",
               "job_smoke"]
    for _ in range(12):  # a fresh head's job agent can take a while to come up on a busy machine
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if "No available agent to submit job" not in proc.stdout + proc.stderr:
            break
        time.sleep(5)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "succeeded" in proc.stdout + proc.stderr
    trials = S.read_parquet(str(storage / "job_smoke" / "trials.parquet"))
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    assert (storage / "job_smoke" / "report" / "tradeoff.png").exists()
