"""Ports and the `ray` command for tests that start their own Ray nodes."""
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli() -> str:
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else shutil.which("ray")


def ensure_auth_token(env) -> None:
    """With token auth asked for (``RAY_AUTH_MODE=token``, as ``.ci/run`` sets) and no token yet, make
    one the way the README says (``ray get-auth-token --generate``): ``ray start`` refuses to start a
    head without it, whereas ``ray.init()`` makes its own -- so on a fresh machine a test that
    starts nodes before any ``ray.init()`` would fail."""
    token_file = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if env.get("RAY_AUTH_MODE") != "token" or env.get("RAY_AUTH_TOKEN") or token_file.exists():
        return
    subprocess.run([ray_cli(), "get-auth-token", "--generate"], env=dict(env), capture_output=True, text=True,
                   check=True, timeout=60)
