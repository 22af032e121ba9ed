"""The churn training pipeline (KFP v2): the DAG over ``churnops.training.components``.

ingest + validate + split (opening the MLflow run) → train candidates in parallel
(ParallelFor + Collected) → evaluate + select → register + gate → canary deploy (only
when the gate promotes), all inside an ExitHandler whose exit task records the final
state on the MLflow run and removes half-registered versions.

``build(cluster=True)`` is the spec compiled for Kubeflow (MLflow endpoint and
credentials from the ``churnops-mlflow`` ConfigMap and ``churnops-mlflow-auth`` Secret
via kfp-kubernetes). ``build(cluster=False)`` is the same DAG for ``kfp.local``, which
cannot run exit handlers yet: there ``churnops pipeline run --local`` calls the same
finalize step itself when the run ends. Parameter defaults are the frozen config
dataclasses' (``TrainConfig``, ``GateConfig``, ``AnalysisConfig``).
"""

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input, Model

from churnops.model.config import TrainConfig
from churnops.registry import GateConfig
from churnops.rollout.analysis import AnalysisConfig
from churnops.training import components as c

_TRAIN, _GATE, _CANARY = TrainConfig(), GateConfig(), AnalysisConfig()

PIPELINE_NAME = "churn-training"
CONFIG_MAP = "churnops-mlflow"
SECRET = "churnops-mlflow-auth"
# The chart's MLflow NetworkPolicy admits pipeline pods by these labels
# (``pipelines.stepPodLabels`` in charts/churnops/values.yaml must equal them).
STEP_POD_LABELS = {"app.kubernetes.io/part-of": "churnops"}


def _mlflow_env(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """MLflow endpoint and (optional) credentials from the cluster, never from parameters,
    and the pod labels that let the step through MLflow's NetworkPolicy."""
    for key, value in STEP_POD_LABELS.items():
        kubernetes.add_pod_label(task, key, value)
    kubernetes.use_config_map_as_env(
        task, CONFIG_MAP, {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI"}
    )
    kubernetes.use_secret_as_env(
        task,
        SECRET,
        {
            "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
        },
        optional=True,
    )
    return task


def _resources(
    task: dsl.PipelineTask, cpu: str, memory: str, cpu_limit: str, memory_limit: str
) -> dsl.PipelineTask:
    return (
        task.set_cpu_request(cpu)
        .set_memory_request(memory)
        .set_cpu_limit(cpu_limit)
        .set_memory_limit(memory_limit)
    )


def _registry_step(task: dsl.PipelineTask, cluster: bool) -> dsl.PipelineTask:
    """Steps that talk to MLflow: never cached, retried with exponential backoff."""
    task.set_caching_options(False)
    task.set_retry(
        num_retries=3, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="300s"
    )
    return _mlflow_env(task) if cluster else task


def _train(
    train: Input[Dataset], candidates: list, seed: int, search_rows: int, n_jobs: int
) -> dsl.PipelineTask:
    with dsl.ParallelFor(candidates) as candidate:
        trained = c.train_candidate(
            train=train, candidate=candidate, seed=seed, search_rows=search_rows, n_jobs=n_jobs
        )
        trained.set_display_name("train candidate").set_caching_options(True)
        _resources(trained, "1", "2Gi", "2", "6Gi")
    return trained


# The loop sits in a nested pipeline: kfp.local runs loops only after every plain task
# of a DAG, so the plain tasks downstream of it (evaluate + select) must see it as one
# plain task. On a cluster the models come back as a list of artifacts; kfp.local cannot
# pass artifact lists, so there they come back as the JSON each train task returns.
@dsl.pipeline(name="train-candidates", description="Train every candidate family in parallel.")
def train_candidates(
    train: Input[Dataset], candidates: list, seed: int, search_rows: int, n_jobs: int
) -> list[Model]:
    return dsl.Collected(_train(train, candidates, seed, search_rows, n_jobs).outputs["model"])


@dsl.pipeline(
    name="train-candidates-local", description="Train every candidate family (kfp.local)."
)
def train_candidates_local(
    train: Input[Dataset], candidates: list, seed: int, search_rows: int, n_jobs: int
) -> list[str]:
    return dsl.Collected(_train(train, candidates, seed, search_rows, n_jobs).outputs["Output"])


def build(*, cluster: bool = True):  # type: ignore[no-untyped-def]
    """The pipeline function, for a cluster (exit handler, kfp-kubernetes wiring) or kfp.local."""

    def body(
        data_uri: str,
        tracking_uri: str,
        model_name: str,
        experiment: str,
        candidates: list,
        seed: int,
        test_size: float,
        search_rows: int,
        n_jobs: int,
        min_roc_auc: float,
        min_f1: float,
        tolerance: float,
        deploy_target: str,
        namespace: str,
        inference_service: str,
        canary_percent: int,
        canary_steps: list,
        canary_interval_seconds: int,
        prometheus_url: str,
        local_port: int,
        run_key: str,
    ) -> None:
        ingested = _registry_step(
            c.ingest_validate(
                data_uri=data_uri,
                tracking_uri=tracking_uri,
                experiment=experiment,
                model_name=model_name,
                run_key=run_key,
                job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                candidates=candidates,
                test_size=test_size,
                seed=seed,
            ).set_display_name("ingest + validate + split"),
            cluster,
        )
        _resources(ingested, "500m", "1Gi", "2", "4Gi")
        run_id = ingested.outputs["run_id"]

        train_all = train_candidates if cluster else train_candidates_local
        trained = train_all(
            train=ingested.outputs["train"],
            candidates=candidates,
            seed=seed,
            search_rows=search_rows,
            n_jobs=n_jobs,
        ).set_display_name("train candidates")

        select = c.evaluate_select if cluster else c.evaluate_select_local
        selected = (
            select(
                models=trained.output,
                test=ingested.outputs["test"],
            )
            .set_display_name("evaluate + select")
            .set_caching_options(True)
        )
        _resources(selected, "500m", "1Gi", "2", "4Gi")

        registered = _registry_step(
            c.register_gate(
                winner=selected.outputs["winner"],
                train=ingested.outputs["train"],
                test=ingested.outputs["test"],
                selection=selected.outputs["Output"],
                tracking_uri=tracking_uri,
                run_id=run_id,
                model_name=model_name,
                data_uri=data_uri,
                digest=ingested.outputs["digest"],
                label_rate=ingested.outputs["label_rate"],
                min_roc_auc=min_roc_auc,
                min_f1=min_f1,
                tolerance=tolerance,
            ).set_display_name("register + gate"),
            cluster,
        )
        _resources(registered, "500m", "1Gi", "2", "4Gi")

        # What both deploy tasks take from the pipeline's parameters.
        rollout = {
            "model_name": model_name,
            "tracking_uri": tracking_uri,
            "target": deploy_target,
            "namespace": namespace,
            "inference_service": inference_service,
            "canary_percent": canary_percent,
            "steps_percent": canary_steps,
            "interval_seconds": canary_interval_seconds,
            "prometheus_url": prometheus_url,
            "local_port": local_port,
        }

        def deploy() -> None:
            deployed = _registry_step(
                c.deploy_canary(
                    version=registered.outputs["version"],
                    promoted=registered.outputs["promoted"],
                    **rollout,
                ).set_display_name("canary rollout"),
                cluster,
            )
            _resources(deployed, "100m", "256Mi", "500m", "1Gi")
            if cluster:
                kubernetes.set_image_pull_policy(deployed, "IfNotPresent")

        def deploy_local() -> None:
            # After every plain task (kfp.local runs loops last), reading the version and
            # the gate's decision from the MLflow run: see c.deploy_canary_local.
            deployed = c.deploy_canary_local(run_key=run_key, **rollout).set_display_name(
                "canary rollout"
            )
            deployed.set_caching_options(False)

        if cluster:
            with dsl.If(registered.outputs["promoted"] == True, name="gate-promoted"):  # noqa: E712 - KFP expression
                deploy()
        else:
            # kfp.local cannot resolve a dsl.If on a task output (the branch is skipped
            # silently): locally the deploy task runs and skips itself unless promoted.
            # The one-item loop is what makes kfp.local use its control-flow orchestrator:
            # it looks for conditions and loops at the root only, and its plain one cannot
            # run the nested ParallelFor (an "Unknown value type" error on the loop item).
            # Not a dsl.If on deploy_target: kfp.local mangles conditions on parameters
            # into invalid Python and skips the branch. deploy_target "none" deploys nothing.
            with dsl.ParallelFor(["deploy"], name="deploy-local"):
                deploy_local()

    def pipeline(
        data_uri: str,
        tracking_uri: str = "",
        model_name: str = "churn",
        experiment: str = "",
        candidates: list = list(_TRAIN.candidates),  # noqa: B006 - a KFP default, never mutated
        seed: int = _TRAIN.seed,
        test_size: float = _TRAIN.test_size,
        search_rows: int = _TRAIN.search_rows,
        n_jobs: int = _TRAIN.n_jobs,
        min_roc_auc: float = _GATE.min_roc_auc,
        min_f1: float = _GATE.min_f1,
        tolerance: float = _GATE.tolerance,
        deploy_target: str = "kserve",
        namespace: str = "churnops",
        inference_service: str = "churn",
        canary_percent: int = _CANARY.steps[0],
        canary_steps: list = list(_CANARY.steps),  # noqa: B006 - a KFP default, never mutated
        canary_interval_seconds: int = int(_CANARY.interval_seconds),
        prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090",
        local_port: int = 0,
        run_key: str = "",
    ) -> None:
        args = {k: v for k, v in locals().items() if k not in ("body", "cluster")}
        if cluster:
            final = c.finalize_run(
                tracking_uri=tracking_uri,
                run_key=run_key,
                job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                model_name=model_name,
            )
            final.set_display_name("record final status").set_caching_options(False)
            _resources(_mlflow_env(final), "100m", "256Mi", "500m", "512Mi")
            with dsl.ExitHandler(final, name="churn-training"):
                body(**args)
        else:
            body(**args)

    pipeline.__doc__ = (
        "Train churn models (logistic regression, random forest, XGBoost), log them to MLflow, "
        "register the winner as challenger, promote it to champion if it passes the gate, "
        "and roll it out to the KServe InferenceService as a metric-gated canary."
    )
    return dsl.pipeline(name=PIPELINE_NAME, description=pipeline.__doc__)(pipeline)
