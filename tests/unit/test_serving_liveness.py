"""Liveness reflects whether the model can come back: a model that is loading or retrying
keeps the pod alive; one that is stopped, or gone from the registry, makes
``/v2/health/live`` fail so Kubernetes restarts the pod."""

from __future__ import annotations

import asyncio

import pytest
from kserve.errors import ServerNotLive
from kserve.model_repository import ModelRepository

from churnops.serving.model import ChurnModel, ServeConfig
from churnops.serving.server import _dataplane_class


def _plane(model: ChurnModel):
    registry = ModelRepository(models_dir="/nonexistent")
    registry.update(model)
    plane = _dataplane_class()(model_registry=registry)
    plane.churn_model = model
    return plane, registry


def test_a_model_retrying_its_load_is_alive_until_stopped(tmp_path) -> None:
    model = ChurnModel(ServeConfig(model_uri=str(tmp_path / "missing"), reload_interval=3600))
    assert not model.load()  # nothing there: unready, but the poller will retry
    plane, _ = _plane(model)
    model.start_polling()
    assert asyncio.run(plane.live()) == {"status": "alive"}
    assert not asyncio.run(plane.ready())
    model.stop()
    with pytest.raises(ServerNotLive, match="cannot come back"):
        asyncio.run(plane.live())


def test_a_model_removed_from_the_registry_is_not_alive(tmp_path) -> None:
    model = ChurnModel(ServeConfig(model_uri=str(tmp_path / "missing"), reload_interval=3600))
    model.start_polling()
    plane, registry = _plane(model)
    registry.unload(model.name)
    with pytest.raises(ServerNotLive):
        asyncio.run(plane.live())
    model.stop()
