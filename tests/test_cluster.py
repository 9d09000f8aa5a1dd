"""cluster/: launcher configs through Ray's own validator, KubeRay manifests, the Dockerfile's Ray
pin, the runtime env. The README's Ray-job route runs for real in tests/test_autoscaling.py (a local
autoscaling cluster shaped like aws.yaml, `ray job submit` of the smoke main job, results in S3 on
loopback, worker nodes killed mid-build and mid-trial)."""
import copy
import re
from pathlib import Path

import pytest
import yaml

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
