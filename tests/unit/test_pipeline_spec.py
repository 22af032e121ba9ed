"""The compiled pipeline spec: current, loadable by kfp, and wired as designed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kfp import components

from churnops.training.runner import HEADER, compile_spec, packaged_spec, retarget

MLFLOW_STEPS = ("ingest-validate", "register-gate", "deploy-canary")


@pytest.fixture(scope="module")
def committed() -> Path:
    return packaged_spec()


@pytest.fixture(scope="module")
def docs(committed: Path) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all(committed.read_text())
    return spec, platform


def test_compiled_spec_is_current(committed, tmp_path):
    fresh = compile_spec(tmp_path / "spec.yaml")
    assert committed.read_text().startswith(HEADER)
    assert fresh.read_text() == committed.read_text(), "stale: run `make pipelines` and commit"


def test_pipelines_folder_links_the_packaged_spec(committed):
    link = Path(__file__).resolve().parents[2] / "pipelines" / "churn_training.yaml"
    assert link.is_symlink() and link.resolve() == committed.resolve()


def test_steps_do_not_pip_install_at_run_time(docs):
    spec, _ = docs
    for name, executor in spec["deploymentSpec"]["executors"].items():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command, name
        assert "kfp.dsl.executor_main" in command, name


def test_images_follow_the_package_version_and_can_be_retargeted(docs, committed, tmp_path):
    from churnops import __version__

    spec, _ = docs
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"churnops/components:{__version__}"}
    moved = retarget(committed.read_text(), "registry.example.com:5000/team")
    spec2, _ = yaml.safe_load_all(moved)
    images2 = {e["container"]["image"] for e in spec2["deploymentSpec"]["executors"].values()}
    assert images2 == {f"registry.example.com:5000/team/churnops/components:{__version__}"}
    # A prefix already there is replaced, not stacked.
    assert retarget(moved, "ghcr.io/acme") == retarget(committed.read_text(), "ghcr.io/acme")
    compiled = compile_spec(tmp_path / "r.yaml", image_registry="ghcr.io/acme")
    assert compiled.read_text() == retarget(committed.read_text(), "ghcr.io/acme")


def test_kfp_loads_the_spec(committed):
    pipeline = components.load_component_from_file(str(committed))
    assert pipeline.name == "churn-training"
    assert {
        "data_uri",
        "tracking_uri",
        "model_name",
        "candidates",
        "min_roc_auc",
        "canary_steps",
    } <= set(pipeline.component_spec.inputs)


def _dag(spec: dict, component: str) -> dict:
    return spec["components"][component]["dag"]["tasks"]


def test_dag_has_the_steps_the_exit_handler_and_the_gate(docs):
    spec, _ = docs
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "finalize-run"}
    assert root["finalize-run"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert "status" in root["finalize-run"]["inputs"]["parameters"]
    inner = _dag(spec, root["exit-handler-1"]["componentRef"]["name"])
    steps = {
        "ingest-validate",
        "train-candidates",
        "evaluate-select",
        "register-gate",
    }
    assert steps <= set(inner)
    [condition] = [t for t in inner.values() if "triggerPolicy" in t]
    assert "register-gate-promoted" in condition["triggerPolicy"]["condition"]
    deploy = _dag(spec, condition["componentRef"]["name"])
    assert set(deploy) == {"deploy-canary"}


def test_candidates_train_in_parallel_and_are_collected(docs):
    spec, _ = docs
    loop = _dag(spec, "comp-train-candidates")
    [(name, task)] = loop.items()
    assert task["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--candidates"
    outputs = spec["components"]["comp-train-candidates"]["dag"]["outputs"]["artifacts"]
    assert outputs["Output"]["artifactSelectors"][0]["producerSubtask"] == name
    assert spec["components"]["comp-evaluate-select"]["inputDefinitions"]["artifacts"]["models"][
        "isArtifactList"
    ]


def test_retries_caching_and_resources(docs):
    spec, _ = docs
    tasks = {}
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    for step in MLFLOW_STEPS:
        assert tasks[step]["retryPolicy"]["maxRetryCount"] == 3, step
        assert tasks[step]["cachingOptions"] == {}, f"{step} must not be cached"
    for step in ("train-candidate", "evaluate-select"):
        assert tasks[step]["cachingOptions"] == {"enableCache": True}, step
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        resources = executor["container"]["resources"]
        assert resources["cpuRequest"] > 0 and resources["memoryRequest"] > 0, name
        assert executor["container"]["image"].startswith("churnops/components:"), name


def test_mlflow_endpoint_and_credentials_come_from_the_cluster(docs):
    _, platform = docs
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in (*MLFLOW_STEPS, "finalize-run"):
        config = configs[f"exec-{step}"]
        [cm] = config["configMapAsEnv"]
        assert cm["configMapName"] == "churnops-mlflow"
        assert cm["keyToEnv"] == [
            {"configMapKey": "MLFLOW_TRACKING_URI", "envVar": "MLFLOW_TRACKING_URI"}
        ]
        [secret] = config["secretAsEnv"]
        assert secret["secretName"] == "churnops-mlflow-auth" and secret["optional"] is True


def test_steps_that_call_mlflow_carry_the_labels_its_network_policy_admits(docs):
    """The chart admits pipeline pods to MLflow by ``pipelines.stepPodLabels``: a step
    without them would time out on its first MLflow call in a cluster."""
    _, platform = docs
    chart = Path(__file__).resolve().parents[2] / "charts" / "churnops" / "values.yaml"
    admitted = yaml.safe_load(chart.read_text())["pipelines"]["stepPodLabels"]
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in (*MLFLOW_STEPS, "finalize-run"):
        labels = configs[f"exec-{step}"]["podMetadata"]["labels"]
        assert admitted.items() <= labels.items(), step


def test_image_tag_package_version_and_chart_app_version_agree():
    from churnops import __version__

    root = Path(__file__).resolve().parents[2]
    chart = yaml.safe_load((root / "charts" / "churnops" / "Chart.yaml").read_text())
    from importlib.metadata import version

    assert chart["appVersion"] == __version__ == version("churnops")


def test_pipeline_parameter_defaults_are_the_config_dataclasses(committed):
    from churnops.model.train import TrainConfig
    from churnops.registry import GateConfig
    from churnops.rollout.analysis import AnalysisConfig

    inputs = components.load_component_from_file(str(committed)).component_spec.inputs
    default = {name: spec.default for name, spec in inputs.items()}
    train, gate, canary = TrainConfig(), GateConfig(), AnalysisConfig()
    assert default["candidates"] == list(train.candidates)
    assert (default["seed"], default["test_size"], default["search_rows"]) == (
        train.seed,
        train.test_size,
        train.search_rows,
    )
    assert (default["min_roc_auc"], default["min_f1"], default["tolerance"]) == (
        gate.min_roc_auc,
        gate.min_f1,
        gate.tolerance,
    )
    assert default["canary_steps"] == list(canary.steps)
    assert default["canary_percent"] == canary.steps[0]
    assert default["canary_interval_seconds"] == canary.interval_seconds


def test_the_local_deploy_loop_takes_no_task_outputs(tmp_path):
    """kfp.local hands a loop task the loop item in place of every upstream task output it
    takes: the local deploy step once received version "deploy" and failed. Its loop may
    only take pipeline parameters (the step reads the version from the MLflow run)."""
    from kfp import compiler

    from churnops.training.pipeline import build

    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(build(cluster=False), str(path))
    spec = yaml.safe_load(path.read_text())
    loops = {
        name: task
        for name, task in spec["root"]["dag"]["tasks"].items()
        if "parameterIterator" in task
    }
    assert loops, "the local build's root loop is what selects kfp.local's control-flow runner"
    for name, task in loops.items():
        sources = {
            key: next(iter(value))
            for key, value in task.get("inputs", {}).get("parameters", {}).items()
        }
        assert "taskOutputParameter" not in sources.values(), (name, sources)
