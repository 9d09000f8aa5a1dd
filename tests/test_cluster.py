"""cluster/: launcher configs through Ray's own validator, KubeRay manifests, the Dockerfile's Ray
pin; the README's Ray-job route for real (`ray start --head`, a second node, `ray job submit` of the
smoke main job, its trials on both nodes); a sweep whose storage is an S3 server on loopback."""
import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.ray_nodes import free_port, ray_cli, stop_process_group

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"


def _pinned_ray() -> str:
    text = (REPO / "pyproject.toml").read_text()
    return re.search(r'"ray\[[^\]]*\]==([0-9.]+)"', text).group(1)




# --- static files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["aws", "gcp"])
def test_launcher_config_passes_rays_own_validation(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / f"{name}.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs before launching anything
    broken = copy.deepcopy(config)
    broken["idle_timeout_minute"] = 5  # a typo must not pass silently
    with pytest.raises(Exception, match="idle_timeout_minute"):
        validate_config(prepare_config(broken))

    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and "GPU" not in head["resources"]
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert len(workers) >= 2 and all(w["min_workers"] == 0 for w in workers.values())  # scale from zero
    assert config["idle_timeout_minutes"] > 0
    docker = config["docker"]
    assert f"rayproject/ray:{_pinned_ray()}" in docker["image"] and "gpu" in docker["image"]
    assert any(opt.startswith("--shm-size") for opt in docker["run_options"])
    assert "--env RAY_AUTH_MODE=token" in docker["run_options"]
    assert any("auth_token" in target for target in config["file_mounts"])
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert any("pip install" in c and "bdray" in c for c in config["setup_commands"])
    text = (CLUSTER / f"{name}.yaml").read_text()
    assert "8265" not in re.sub(r"#.*", "", text)  # no firewall rule or port for the dashboard
    if name == "aws":
        assert all(w["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot" for w in workers.values())
        rules = config["provider"]["security_group"]["IpPermissions"]
        assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    else:
        assert all(w["node_config"]["scheduling"]["provisioningModel"] == "SPOT" for w in workers.values())
        assert all(w["resources"]["GPU"] >= 1 for w in workers.values())


def test_kuberay_manifests_carry_the_required_fields():
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    pvc = yaml.safe_load((CLUSTER / "kuberay" / "shared-pvc.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert "sweeps/" in job["spec"]["entrypoint"] and "--storage-path /mnt/shared" in job["spec"]["entrypoint"]
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["rayVersion"] == _pinned_ray() and spec["enableInTreeAutoscaling"] is True
        assert spec["authOptions"]["mode"] == "token"
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0" and head.get("serviceType", "ClusterIP") == "ClusterIP"
        assert head["template"]["spec"]["containers"][0]["image"].endswith(_pinned_ray())
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] == 0 and group["maxReplicas"] >= 1 and group["groupName"]
            container = group["template"]["spec"]["containers"][0]
            assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
            assert container["image"].endswith(_pinned_ray())
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/mnt/shared", "/dev/shm"} <= mounts
            claims = [v["persistentVolumeClaim"]["claimName"] for v in group["template"]["spec"]["volumes"]
                      if "persistentVolumeClaim" in v]
            assert claims == [pvc["metadata"]["name"]]


def test_dockerfile_uses_the_official_ray_gpu_image_of_the_pinned_version():
    text = (CLUSTER / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert base.startswith(f"rayproject/ray:{_pinned_ray()}-") and base.endswith("-gpu")
    assert "ray-ml" not in text
    assert "pip install" in text and "torchvision" in text and "-e ." in text


def test_runtime_env_is_a_valid_ray_runtime_env():
    from ray.runtime_env import RuntimeEnv

    env = RuntimeEnv(**yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text()))
    assert env["working_dir"] == "." and ".git" in env["excludes"]
    assert env["env_vars"]["RAY_TRAIN_V2_ENABLED"] == "1"


# --- a real two-node cluster on this machine ------------------------------------------------------

def _ray_start(args, temp_dir, env):
    ports = [f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port",
        "node-manager-port", "object-manager-port")]
    proc = subprocess.Popen([ray_cli(), "start", *args, *ports, f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    return proc


@pytest.mark.ray
def test_two_node_cluster_runs_a_submitted_sweep_on_both_nodes(tmp_path):
    import shutil
    import tempfile

    from bdray.sweep import storage as S

    temp_dir = tempfile.mkdtemp(prefix="bdray-2n-", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    if (Path.home() / ".ray" / "auth_token").exists():  # the head then uses token auth: nodes and client too
        env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "token")
    gcs, dashboard = free_port(), free_port()
    started = []
    try:
        started.append(_ray_start(["--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
                                   f"--ray-client-server-port={free_port()}", "--num-cpus=1"], temp_dir, env))
        # its own temp dir: with a shared one, node b's runtime-env agent deletes the job's working
        # dir (its cwd on the head) when its own trial's reference to the package goes away
        started.append(_ray_start([f"--address=127.0.0.1:{gcs}", "--num-cpus=1", '--resources={"node_b": 1}'],
                                  temp_dir + "-b", env))
        storage = tmp_path / "shared"
        # the README's command, smoke-sized: every trial a Ray Train run (the default executor)
        command = [ray_cli(), "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
                   "--working-dir", str(REPO), "--", sys.executable, "sweeps/dhbe_lr.py", "--smoke-test",
                   "--storage-path", str(storage), "--name", "two_nodes"]
        for _ in range(12):  # a fresh head's job agent can take a while to come up
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if "No available agent to submit job" not in proc.stdout + proc.stderr:
                break
            time.sleep(5)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert "succeeded" in proc.stdout + proc.stderr
        # the console (the job's logs, streamed: the driver's and every worker's lines): Tune's progress
        # table, the settings first, a summary naming the best configuration and the page; none of
        # Ray Train's per-report lines
        console = proc.stdout + proc.stderr
        assert "Reporting training result" not in console and "Checkpoint successfully created" not in console
        assert "Trial name" in console and "TERMINATED" in console  # Tune's progress table
        assert console.index("[bdray] sweep two_nodes") < console.index("Trial name")
        assert "best configurations (val_acc max, val_asr min; chosen on the validation split)" in console \
            or "best configuration (val_acc max, val_asr min; chosen on the validation split)" in console
        assert "report page: " in console and (storage / "two_nodes" / "report" / "index.html").exists()
        trials = S.read_parquet(str(storage / "two_nodes" / "trials.parquet"))
        assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
        assert (storage / "two_nodes" / "report" / "tradeoff.png").exists()
        # one CPU per node and one CPU per Train worker: the two trials ran on the two different nodes
        assert trials["node_id"].str.len().gt(0).all() and trials["node_id"].nunique() == 2
        # the attack artifact was trained once before the trials and reused by both, across nodes
        assert (trials["artifacts_reused"] == 1).all() and (trials["artifacts_trained"] == 0).all()
        assert len(list((storage / "artifacts").glob("*"))) >= 1
    finally:
        for proc in reversed(started):
            stop_process_group(proc.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(temp_dir + "-b", ignore_errors=True)


# --- S3 storage against a server on loopback -------------------------------------------------------

BUCKET = f"bdray-results-{os.getpid()}"  # fresh per run: no local artifact cache matches it


@pytest.fixture
def s3_server(monkeypatch):
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        for _ in range(100):
            try:
                boto3.client("s3").create_bucket(Bucket=BUCKET)
                break
            except Exception:  # not listening yet
                time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.ray
def test_sweep_writes_parquet_checkpoints_and_artifacts_to_s3(s3_server, tmp_path):
    import boto3

    from analysis.__main__ import main as analysis_main
    from analysis.load import load_epochs, load_trials

    root = f"s3://{BUCKET}/bdray"
    env = {**os.environ, **s3_server, "RAY_ADDRESS": "local"}  # its own local Ray, not the session's
    proc = subprocess.run([sys.executable, "sweeps/dhbe_lr.py", "--smoke-test", "--executor", "tune",
                           "--storage-path", root, "--name", "s3_smoke"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    keys = [o["Key"] for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])]
    assert "bdray/s3_smoke/trials.parquet" in keys and "bdray/s3_smoke/epochs.parquet" in keys
    assert any(k.startswith("bdray/artifacts/") for k in keys)
    assert any("/checkpoint_" in k for k in keys)
    assert "bdray/s3_smoke/report/trials.md" in keys
    # analysis reads it all back from the URL
    trials = load_trials(f"{root}/s3_smoke")
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    assert len(load_epochs(f"{root}/s3_smoke")) >= 2
    analysis_main([f"{root}/s3_smoke", "--out", str(tmp_path / "report")])
    assert (tmp_path / "report" / "trials.md").exists() and (tmp_path / "report" / "tradeoff.png").exists()
    assert not Path("s3:").exists()  # nothing written to a local folder named after the URL
