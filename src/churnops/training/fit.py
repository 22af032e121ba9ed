"""Stage 3: train the candidate families (all in-process, or one per pipeline task)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from churnops.model import serialize
from churnops.model.train import Candidate, TrainConfig, train_candidate
from churnops.progress import Progress


def train_candidates(train: pd.DataFrame, *, config: TrainConfig) -> list[Candidate]:
    """Every family of ``config.candidates`` on the training split, one after the other."""
    progress = Progress("train", len(config.candidates), unit="candidates", every=0)
    out = []
    for name in config.candidates:
        out.append(train_candidate(name, train, config=config))
        progress.update(1)
    return out


def train_to_file(
    *, train_path: str, candidate: str, model_path: str, config: TrainConfig
) -> dict[str, Any]:
    """Pipeline step: train one candidate; save it with skops; return its metadata.

    The fits run in threads (the estimators' heavy parts release the GIL): a task starts
    no worker processes (about a second each, paid by every task), and with ``n_jobs``
    at every core a task still running when its siblings are done takes the cores they
    left. BLAS runs single-threaded meanwhile, as loky limits its own workers: kfp.local
    runs two train tasks at once, and their OpenBLAS threads spinning on the same cores
    cost a third of the CPU (one pipeline run at 7,043 rows: 43.0 s without the limit,
    32.7 s with it).
    """
    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    with parallel_config(backend="threading"), threadpool_limits(1, user_api="blas"):
        trained = train_candidate(candidate, pd.read_parquet(train_path), config=config)
    serialize.dump(trained.model, model_path)
    meta = asdict(trained)
    meta.pop("model")
    return meta


def load_candidate(model_path: str, meta: dict[str, Any]) -> Candidate:
    """A candidate saved by ``train_to_file``, back from its file and metadata."""
    fields = {
        k: meta[k] for k in ("name", "params", "threshold", "cv_roc_auc", "cv_f1", "fit_seconds")
    }
    return Candidate(
        model=serialize.load(model_path),
        search_rows=int(meta["search_rows"]),
        cv_scores=dict(meta.get("cv_scores") or {}),
        **fields,
    )
