"""The kfp.local limits behind the pipeline's ``*-local`` variants, rechecked with every
step in the components image (DockerRunner). They sit in kfp.local's orchestrator, which
runs on this machine whatever the runner, so DockerRunner removes none of them. When one
of these tests fails after a kfp upgrade, the variant it names can go
(src/churnops/training/pipeline.py).

- ``train_candidates_local`` + ``evaluate_select_local``: a list of artifacts
  (``dsl.Collected`` of a loop's ``Model`` outputs) cannot be passed to a task;
- the ``deploy-local`` one-item root loop: kfp.local picks its control-flow orchestrator
  only for a loop or condition at the root; the plain one fails at a nested loop;
- the deploy task skips itself unless promoted: a ``dsl.If`` on a task output is skipped.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations as types.
import pytest
from kfp import dsl, local
from kfp.dsl import Input, Model, Output

from churnops.training.components import IMAGE
from churnops.training.runner import docker_runner

pytestmark = [pytest.mark.containers, pytest.mark.slow]

component = dsl.component(base_image=IMAGE, install_kfp_package=False)


@component
def make_model(name: str, model: Output[Model]) -> str:
    with open(model.path, "w") as f:
        f.write(name)
    return name


@component
def read_models(models: Input[list[Model]]) -> str:
    return ",".join(open(m.path).read() for m in models)


@component
def always_true() -> bool:
    return True


@component
def echo(text: str) -> str:
    return text


@dsl.pipeline
def loop(names: list) -> list[Model]:
    with dsl.ParallelFor(names) as name:
        made = make_model(name=name)
    return dsl.Collected(made.outputs["model"])


@dsl.pipeline
def nested_loop_only(names: list = ["a", "b"]) -> None:  # noqa: B006 - a KFP default
    loop(names=names)


@dsl.pipeline
def artifact_list(names: list = ["a", "b"]) -> str:  # noqa: B006 - a KFP default
    models = loop(names=names)
    with dsl.ParallelFor(["root"]):  # the control-flow orchestrator, as pipeline.py does
        echo(text="root loop")
    return read_models(models=models.output).output


@dsl.pipeline
def condition_on_output() -> None:
    flag = always_true()
    with dsl.If(flag.output == True):  # noqa: E712 - KFP expression
        echo(text="branch")


@pytest.fixture
def in_containers(images, tmp_path):
    root = tmp_path / "kfp"
    root.mkdir()
    data = tmp_path / "unused.csv"
    data.write_text("")
    runner, _ = docker_runner(
        pipeline_root=root, data_uri=str(data), tracking_uri="http://127.0.0.1:9"
    )
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    return root


def test_a_nested_loop_needs_control_flow_at_the_root(in_containers):
    with pytest.raises(ValueError, match="Unknown value type"):
        nested_loop_only()
    # It fails on the loop's items, before any iteration runs.
    assert not list(in_containers.glob("nested-loop-only-*/**/make-model"))


def test_a_list_of_artifacts_cannot_reach_a_task(in_containers):
    with pytest.raises(ValueError, match="Value must be one of the following types"):
        artifact_list()
    # The loop ran in its containers; the task the list goes to never starts.
    assert len(list(in_containers.glob("artifact-list-*/loop/*/make-model/model"))) == 2
    assert not list(in_containers.glob("artifact-list-*/read-models"))


def test_a_condition_on_a_task_output_is_skipped(in_containers):
    condition_on_output()
    assert list(in_containers.glob("condition-on-output-*/always-true/executor_output.json"))
    assert not list(in_containers.glob("condition-on-output-*/**/echo"))
