"""Starting and stopping real Ray nodes (`ray start`) from tests."""
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli() -> str:
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
