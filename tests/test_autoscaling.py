"""A local autoscaling cluster shaped like cluster/aws.yaml (a head that runs nothing, one worker type
scaling from 0; tests/autoscaling.py), results on an S3 server on loopback:

1. the README's `ray job submit` of the smoke main job: the autoscaler launches worker nodes for the
   sweep's resource requests, the trials run on them (not on the head), everything lands in S3 and
   analysis reads it back from there, and the idle workers are removed after the idle timeout;
2. spot preemption: a worker node killed whole (every process at once, not an exception) while it
   builds the attack artifact, then another while it trains the trial: the autoscaler replaces them,
   the build is retried and lands once, whole; the trial resumes from its last checkpoint in S3 and
   the sweep ends with every trial and epoch exactly once.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.autoscaling import HEAD_NODE_ID, LocalAutoscalingCluster
from tests.ray_nodes import free_port, ray_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
BUCKET = f"bdray-autoscaling-{os.getpid()}"  # fresh per run: no local artifact cache matches it
# CI runs a reduced version; benchmarks/autoscaling.py sets BDRAY_AUTOSCALING_FULL=1: the main job's
# trials as Ray Train runs (the README's default executor) and a longer preempted trial
FULL = os.environ.get("BDRAY_AUTOSCALING_FULL") == "1"
IDLE_TIMEOUT_MINUTES = 0.1  # aws.yaml has 10: an idle worker goes after 6 s here
# the GCS declares a silent node dead after period × threshold (Ray's defaults: 3 s × 5, plus the
# 10 s timeout of each check); shortened here, the real values are in cluster/README.md
FAST_HEALTH_CHECKS = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3,
                      "health_check_timeout_ms": 1000}


@pytest.fixture(scope="module")
def s3_env():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    client = _s3_client(env)
    try:
        for _ in range(100):
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # not listening yet
                time.sleep(0.2)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _s3_client(env):
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def _keys(env, prefix=""):
    paginator = _s3_client(env).get_paginator("list_objects_v2")
    return [o["Key"] for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix) for o in page.get("Contents", [])]


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="bdray-as-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # one CPU per worker node: each Train worker (or artifact build) needs a node of its own
    local = LocalAutoscalingCluster(REPO / "cluster" / "aws.yaml", temp_dir, "worker.gpu1", {"CPU": 1},
                                    max_workers=2, idle_timeout_minutes=IDLE_TIMEOUT_MINUTES,
                                    system_config=FAST_HEALTH_CHECKS, env=env)
    local.start()
    try:
        yield local
    finally:
        local.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait(condition, timeout, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


def _client_env(cluster, s3_env):
    return {**cluster.env, **s3_env, "PYTHONPATH": str(REPO)}


def test_submitted_sweep_scales_workers_from_zero_and_back(cluster, s3_env, tmp_path, monkeypatch):
    from analysis.__main__ import main as analysis_main
    from analysis.load import load_epochs, load_trials

    assert _wait(lambda: not cluster.worker_nodes(), 60), "workers left from before"
    root = f"s3://{BUCKET}/bdray"
    # the README's command, smoke-sized; the S3
    # endpoint and credentials travel in the job's runtime env, as cluster/README.md tells users.
    # The code is the checkout every node has (aws.yaml's file_mounts + pip install -e), not a
    # --working-dir upload: the nodes here share one temp dir, and a node the autoscaler removes
    # takes the job's unpacked working dir (the other nodes' cwd) with it
    runtime_env = {"env_vars": {**s3_env, "RAY_TRAIN_V2_ENABLED": "1"}}
    # reduced: --executor tune, each trial holds its worker's CPU itself (no Ray Train start-up per
    # trial; the Train executor on autoscaled nodes is the preemption test's)
    executor = "train" if FULL else "tune"
    entrypoint = (f"cd {REPO} && {sys.executable} sweeps/dhbe_lr.py --smoke-test --executor {executor} "
                  f"--storage-path {root} --name autoscaled")
    command = [ray_cli(), "job", "submit", "--address", cluster.dashboard_url, "--runtime-env-json",
               json.dumps(runtime_env), "--", "bash", "-c", entrypoint]
    log = tmp_path / "job.log"
    timeline = []  # (seconds since submit, worker nodes alive)
    for _ in range(12):  # a fresh head's job agent can take a while to come up
        t0 = time.time()
        with open(log, "w") as out:
            proc = subprocess.Popen(command, env=cluster.env, stdout=out, stderr=subprocess.STDOUT, text=True)
            while proc.poll() is None:
                timeline.append((time.time() - t0, set(cluster.worker_nodes())))
                time.sleep(0.5)
        console = log.read_text()
        if "No available agent to submit job" not in console:
            break
        timeline.clear()
        time.sleep(5)
    assert proc.returncode == 0 and "succeeded" in console, console[-4000:]
    ended = time.time()

    # scaled from zero because the sweep asked: no worker before the job, then the autoscaler's own
    # "Launching" records, one per node that came up
    launched = set().union(*(nodes for _, nodes in timeline))
    assert not timeline[0][1] and launched, timeline[:3]
    first_up = next(t for t, nodes in timeline if nodes)
    launches = [e for e in cluster.autoscaler_events() if e[1] == "launch"]
    assert len(launches) >= len(launched) and all("worker.gpu1" in line for _, _, line in launches)

    # the trials ran on those workers, never on the head (it advertises no CPU, like aws.yaml's)
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    trials = load_trials(f"{root}/autoscaled")
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    assert set(trials["node_id"]) <= launched and HEAD_NODE_ID not in set(trials["node_id"])
    # the attack artifact was trained once, on a worker, before the trials, and reused by both
    assert (trials["artifacts_reused"] == 1).all() and (trials["artifacts_trained"] == 0).all()

    # the console (the job's logs: the driver's and every worker's lines): Tune's progress table, the
    # settings first, a summary naming the best configuration and the page; none of Ray Train's
    # per-report lines
    assert "Reporting training result" not in console and "Checkpoint successfully created" not in console
    assert "Trial name" in console and "TERMINATED" in console
    assert console.index("[bdray] sweep autoscaled") < console.index("Trial name")
    assert re.search(r"best configurations? \(val_acc max, val_asr min; chosen on the validation split\)", console)
    assert "report page: " in console

    # everything is in the bucket, and analysis reads it back from the URL
    keys = _keys(s3_env, "bdray/")
    for name in ("trials.parquet", "epochs.parquet", "report/trials.md", "report/index.html", "report/tradeoff.png"):
        assert f"bdray/autoscaled/{name}" in keys, name
    assert any(k.startswith("bdray/artifacts/") for k in keys) and any("/checkpoint_" in k for k in keys)
    assert len(load_epochs(f"{root}/autoscaled")) >= 2
    analysis_main([f"{root}/autoscaled", "--out", str(tmp_path / "report")])
    assert (tmp_path / "report" / "trials.md").exists() and (tmp_path / "report" / "tradeoff.png").exists()
    assert not Path("s3:").exists()  # nothing written to a local folder named after the URL

    # idle workers are removed after the idle timeout, by the autoscaler ("(idle)" in its log)
    assert _wait(lambda: not cluster.worker_nodes(), 60 + 60 * IDLE_TIMEOUT_MINUTES), cluster.worker_nodes()
    removed = time.time() - ended
    idle = [line for _, kind, line in cluster.autoscaler_events() if kind == "terminate" and "(idle)" in line]
    assert {node for node in launched if any(node in line for line in idle)} == launched
    # one line benchmarks/autoscaling.py reads
    print(f"\nAUTOSCALING nodes_launched={len(launched)} nodes_removed={len(launched)} "
          f"peak_workers={max(len(n) for _, n in timeline)} submit_to_first_worker_s={first_up:.1f} "
          f"job_end_to_all_removed_s={removed:.1f} idle_timeout_s={60 * IDLE_TIMEOUT_MINUTES:.0f} "
          f"trials={len(trials)} trials_lost={2 - int((trials['status'] == 'TERMINATED').sum())}")


PREEMPTED_DRIVER = '''
import sys
import ray
from ray import tune
from bdray.methods.attack.backdoor import BackdoorConfig
from bdray.methods.erasing.finetune import FinetuneConfig
from bdray.sweep import Sweep, run_sweep

root, attack_epochs, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ray.init(runtime_env={"env_vars": {k: v for k, v in __import__("os").environ.items() if k.startswith("AWS_")}})
sweep = Sweep(name="preempted", method="finetune",
              base_config=FinetuneConfig(backdoor=BackdoorConfig(epochs=attack_epochs), epochs=epochs, clean_fraction=1.0),
              search_space={"lr": tune.grid_search([0.01])}, search="grid", num_samples=1, max_concurrent=1,
              storage_path=root, executor="train", trial_retries=2, verbose=True)
result = run_sweep(sweep)
print("TRIALS", len(result.trials), flush=True)
'''
ATTACK_EPOCHS, EPOCHS = 20, (16 if FULL else 12)


def _resumed_report(text):
    """``(resumed_from, first epoch reported after it)`` once the restarted worker has reported."""
    match = re.search(r"resuming from epoch (\d+)[\s\S]*?\[bdray\] epoch (\d+): ", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _reported_epochs(text):
    """Epoch numbers of the trial's per-report lines (``[bdray] epoch N: acc=...``)."""
    return [int(m) for m in re.findall(r"\[bdray\] epoch (\d+): ", text)]


def test_preempted_worker_nodes_are_replaced_and_nothing_is_lost(cluster, s3_env, tmp_path, monkeypatch):
    from bdray.sweep import storage as S

    assert _wait(lambda: not cluster.worker_nodes(), 90), "workers left from the previous test"
    root = f"s3://{BUCKET}/preempt"
    script = tmp_path / "driver.py"
    script.write_text(PREEMPTED_DRIVER)
    env = {**_client_env(cluster, s3_env), "RAY_ADDRESS": cluster.address}
    log = tmp_path / "driver.log"
    out = open(log, "w")
    t0 = time.time()
    driver = subprocess.Popen([sys.executable, str(script), root, str(ATTACK_EPOCHS), str(EPOCHS)], cwd=REPO,
                              env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        # 1. a reclaim while the attack artifact builds (before any trial starts)
        builder = _wait(lambda: cluster.node_running("ray::build") or driver.poll() is not None, 180, 0.2)
        assert isinstance(builder, str), log.read_text()[-3000:]
        request_to_build = time.time() - t0
        time.sleep(2.0)  # mid-build
        assert not any("/artifacts/" in k for k in _keys(s3_env, "preempt/")), "the build finished before the kill"
        assert cluster.kill_node(builder) > 0
        killed = {builder}

        # 2. a reclaim while the trial trains, once it has checkpointed a few epochs
        trainer = _wait(lambda: (max(_reported_epochs(log.read_text()), default=0) >= 3
                                 and cluster.node_running("ray::RayTrainWorker")) or driver.poll() is not None, 300,
                        0.2)
        assert isinstance(trainer, str), log.read_text()[-3000:]
        before_kill = max(_reported_epochs(log.read_text()))
        assert before_kill < EPOCHS, "the trial finished before the kill"
        assert trainer not in killed and cluster.kill_node(trainer) > 0
        killed.add(trainer)
        t_kill = time.time()
        size_at_kill = len(log.read_text())
        resumed = _wait(lambda: _resumed_report(log.read_text()[size_at_kill:]) or driver.poll() is not None,
                        300, 0.2)
        kill_to_report = time.time() - t_kill
        assert driver.wait(timeout=300) == 0, log.read_text()[-4000:]
    finally:
        if driver.poll() is None:
            driver.kill()
        out.close()
    text = log.read_text()
    assert isinstance(resumed, tuple), text[-3000:]
    # the console of a Train-executor sweep: bdray's one line per report, none of Ray Train's
    assert "Reporting training result" not in text and "Checkpoint successfully created" not in text


    # every trial exactly once, finished, resumed from a checkpoint (not from scratch) on a node
    # that was not killed, one row per epoch
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    (trial,) = S.read_parquet(f"{root}/preempted/trials.parquet").to_dict("records")
    assert trial["status"] == "TERMINATED" and trial["epoch"] == EPOCHS
    assert 0 < trial["resumed_from_epoch"] == resumed[0] <= before_kill
    assert trial["node_id"] not in killed and trial["node_id"] != HEAD_NODE_ID
    epochs = S.read_parquet(f"{root}/preempted/epochs.parquet")
    assert sorted(epochs["epoch"]) == list(range(1, EPOCHS + 1))
    # the artifact: built once, whole (one folder, model and checksummed meta), reused by the trial
    files = [k.removeprefix("preempt/artifacts/") for k in _keys(s3_env, "preempt/artifacts/")]
    files = [f for f in files if f and not f.endswith("/")]  # not the folder markers
    assert sorted(f.split("/", 2)[-1] for f in files) == ["meta.json", "model.pt"], files
    assert len(re.findall(r"attack artifact badnets \S* ?trained: acc=", text)) == 1
    assert trial["artifacts_reused"] == 1 and trial["artifacts_trained"] == 0
    # the autoscaler replaced both killed nodes
    launches = [e for e in cluster.autoscaler_events() if e[1] == "launch" and e[0] >= t0]
    assert len(launches) >= 3, launches
    print(f"\nPREEMPTION sweep_start_to_build_running_s={request_to_build:.1f} nodes_killed={len(killed)} "
          f"nodes_launched={len(launches)} killed_after_epoch={before_kill} resumed_from_epoch={resumed[0]} "
          f"kill_to_next_report_s={kill_to_report:.1f} trials=1 trials_lost=0 epochs_rows={len(epochs)} "
          f"artifact_builds_landed=1")