"""Every flag of the churnops commands says what it does and, when it has one, its default."""

from __future__ import annotations

import argparse

import pytest

from churnops.cli import _load_extensions, build_parser

# Commands whose flags this test holds to the rule (the others follow as they are reworked).
CHECKED = ("data", "train", "registry", "demo", "pipeline")


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))
    yield path, parser


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    _load_extensions()
    return build_parser()


def test_every_flag_has_help_and_shows_its_default(parser):
    missing = []
    for path, sub in _parsers(parser):
        if not path or path[0] not in CHECKED:
            continue
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            flag = f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(f"{flag}: no help")
            elif (
                action.default not in (None, False, "")
                and action.option_strings
                and "default" not in action.help
            ):
                missing.append(f"{flag}: default {action.default!r} not shown")
    assert not missing, "\n".join(missing)


def test_pipeline_defaults_are_the_config_dataclasses(parser):
    from churnops.model.train import TrainConfig
    from churnops.registry import GateConfig

    args = parser.parse_args(["train", "--data", "x.csv"])
    train, gate = TrainConfig(), GateConfig()
    assert args.candidates == ",".join(train.candidates)
    assert (args.seed, args.search_rows) == (train.seed, train.search_rows)
    assert (args.tolerance, args.min_roc_auc, args.min_f1) == (
        gate.tolerance,
        gate.min_roc_auc,
        gate.min_f1,
    )
