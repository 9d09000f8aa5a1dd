"""A local autoscaling Ray cluster shaped like a launcher YAML (``cluster/aws.yaml``): the head and
every worker node are processes on this machine, and the real autoscaler (the head's monitor, as
``ray up`` starts it) launches and removes the workers through Ray's fake multi-node provider.

This is what ``ray.cluster_utils.AutoscalingCluster`` does, started differently: its ``start()``
first runs ``ray stop --force`` (it would kill every other Ray on the machine, the test session's
included) and reads a template the Ray wheel no longer ships. Here the config is built from the
launcher YAML itself, the head gets free ports and its own temp dir, and every process of the
cluster carries a marker in its environment, so a node can be killed as a whole (a spot reclaim) and
the cluster stopped without touching any other Ray.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from tests.ray_nodes import ensure_auth_token, free_port, ray_cli

MARKER = "BDRAY_LOCAL_CLUSTER"
NODE_ID_VARIABLE = "RAY_OVERRIDE_NODE_ID_FOR_TESTING"  # how the fake provider names its nodes
HEAD_NODE_ID = "f" * 51 + "00000"  # ray.autoscaler._private.fake_multi_node.node_provider.FAKE_HEAD_NODE_ID
HEAD_TYPE = "ray.head.default"  # the fake provider tags its head with this type name, whatever the YAML calls it


def local_config(launcher: dict, gcs_address: str, worker_type: str, worker_resources: Dict[str, float],
                 max_workers: int, idle_timeout_minutes: float) -> dict:
    """The launcher config with the cloud parts replaced: the fake multi-node provider, one worker
    type (its name, ``min_workers`` and the head's resources kept) with explicit resources, no
    setup or start commands (the nodes are processes here, not machines to SSH into). The head type
    is renamed to the one the fake provider gives its head."""
    head_type = launcher["head_node_type"]
    worker = launcher["available_node_types"][worker_type]
    return {
        "cluster_name": launcher["cluster_name"],
        "max_workers": max_workers,
        "upscaling_speed": launcher.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {},
        "docker": {},
        "available_node_types": {
            HEAD_TYPE: {"resources": dict(launcher["available_node_types"][head_type]["resources"]),
                        "node_config": {}, "max_workers": 0},
            worker_type: {"resources": dict(worker_resources), "node_config": {},
                          "min_workers": worker["min_workers"], "max_workers": max_workers},
        },
        "head_node_type": HEAD_TYPE,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def _environ(pid: int) -> Dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state, past the process name


def _descendants(pids: List[int]) -> List[int]:
    """``pids`` and every process below them.  Ray starts a node's agents with a bare environment
    (no marker, no node id), so only their parent says which node they belong to."""
    children: Dict[int, List[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(_parent(int(entry.name)), []).append(int(entry.name))
    found, todo = set(pids), list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def _opens_under(pid: int, folder: str) -> bool:
    try:
        return any(os.readlink(fd).startswith(folder) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


class LocalAutoscalingCluster:
    def __init__(self, launcher_yaml: Path, temp_dir: str, worker_type: str, worker_resources: Dict[str, float],
                 max_workers: int, idle_timeout_minutes: float, system_config: Optional[dict] = None,
                 env: Optional[Dict[str, str]] = None):
        self.launcher = yaml.safe_load(Path(launcher_yaml).read_text())
        self.temp_dir = temp_dir
        self.worker_type = worker_type
        self.marker = uuid.uuid4().hex
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.config = local_config(self.launcher, self.address, worker_type, worker_resources, max_workers,
                                   idle_timeout_minutes)
        self.system_config = system_config
        self.env = {**(env or os.environ), MARKER: self.marker, "RAY_FAKE_CLUSTER": "1",
                    "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        if (Path.home() / ".ray" / "auth_token").exists():  # the head then uses token auth: nodes and clients too
            self.env["RAY_AUTH_MODE"] = self.env.get("RAY_AUTH_MODE", "token")

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        ensure_auth_token(self.env)
        Path(self.temp_dir).mkdir(parents=True, exist_ok=True)
        config_path = Path(self.temp_dir) / "autoscaling_config.yaml"
        config_path.write_text(json.dumps(self.config))
        head = self.config["available_node_types"][self.config["head_node_type"]]["resources"]
        ports = [f"--{name}={free_port()}" for name in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
            "runtime-env-agent-port", "node-manager-port", "object-manager-port", "ray-client-server-port")]
        command = [ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
                   f"--dashboard-port={self.dashboard_port}", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
                   f"--num-cpus={int(head.get('CPU', 0))}", f"--autoscaling-config={config_path}",
                   f"--temp-dir={self.temp_dir}", "--disable-usage-stats", *ports]
        if self.system_config:
            command.append("--system-config=" + json.dumps(self.system_config, separators=(",", ":")))
        proc = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180,
                              start_new_session=True)
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start --head failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

    def stop(self) -> None:
        """Kill every process of this cluster (head and workers), nothing else.  A node the
        autoscaler was starting as the head went down can spawn its agents after a pass, so SIGKILL
        passes repeat until no process of the cluster has been seen for 2 s (orphaned agents left by
        that race kept using CPU for the rest of the test session)."""
        self._signal_all(signal.SIGTERM, wait_s=5)
        quiet_since, give_up = time.time(), time.time() + 30
        while time.time() < give_up and time.time() - quiet_since < 2.0:
            if self._signal_all(signal.SIGKILL, wait_s=1):
                quiet_since = time.time()
            else:
                time.sleep(0.2)

    def _signal_all(self, sig: int, wait_s: float) -> int:
        """Send ``sig`` to every process of the cluster, orphaned agents included; wait up to
        ``wait_s`` for them to go.  How many were signalled."""
        pids = self._pids() + self._orphans()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait_s
        while pids and (self._pids() or self._orphans()) and time.time() < deadline:
            time.sleep(0.2)
        return len(pids)

    # -- what runs where -----------------------------------------------------------------
    def _pids(self) -> List[int]:
        own = os.getpid()
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != own
                and _environ(int(p.name)).get(MARKER) == self.marker]

    def _orphans(self) -> List[int]:
        """Agents whose raylet is gone (reparented, a bare environment): they still hold the
        cluster's log files.  Only ``stop`` looks for them (reading every process's open files)."""
        own = os.getpid()
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != own
                and _environ(int(p.name)).get(MARKER) != self.marker and _opens_under(int(p.name), self.temp_dir)]

    def worker_nodes(self) -> Dict[str, List[int]]:
        """Worker node id -> its live processes (raylet, agents, Ray workers)."""
        nodes: Dict[str, List[int]] = {}
        for pid in self._pids():
            node = _environ(pid).get(NODE_ID_VARIABLE)
            if node and node != HEAD_NODE_ID:
                nodes.setdefault(node, []).append(pid)
        return {node: pids for node, pids in nodes.items() if any("raylet" in _cmdline(p) for p in pids)}

    def node_running(self, title: str) -> Optional[str]:
        """The worker node whose Ray worker's process title starts with ``title`` (``ray::build``)."""
        for node, pids in self.worker_nodes().items():
            if any(_cmdline(pid).startswith(title) for pid in pids):
                return node
        return None

    def kill_node(self, node: str) -> int:
        """SIGKILL every process of one worker node at once (its agents too), as a spot reclaim
        ends a machine."""
        pids = _descendants(self.worker_nodes().get(node, []))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    # -- the autoscaler's own record -----------------------------------------------------
    def autoscaler_log(self) -> str:
        logs = Path(self.temp_dir) / "session_latest" / "logs"
        return "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("monitor*")) if p.is_file())

    def autoscaler_events(self) -> List[tuple]:
        """``(time, "launch" | "terminate", line)`` for each node the autoscaler launched or removed."""
        events = []
        for line in self.autoscaler_log().splitlines():
            stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", line)
            if not stamp:
                continue
            when = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if re.search(r"Launching \d+ nodes", line):
                events.append((when, "launch", line))
            elif "Terminating" in line or "terminating" in line:
                events.append((when, "terminate", line))
        return events
