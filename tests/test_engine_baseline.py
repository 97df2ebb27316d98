"""The session engine changes no number: every strategy, client profile and fleet scenario in
``tests/engine_baseline.py`` gives exactly the counts the engine measured before it was rebuilt (issue 15)."""

from __future__ import annotations

import json

import pytest

import engine_baseline


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(engine_baseline.BASELINE.read_text())


@pytest.mark.parametrize("part", ["strategies", "clients", "fleets"])
def test_the_engine_reproduces_the_recorded_counts(server_kind, recorded, part):
    measured = json.loads(json.dumps(getattr(engine_baseline, part)(server_kind), default=str))
    expected = recorded[server_kind][part]
    assert sorted(measured) == sorted(expected)
    for name in expected:
        assert measured[name] == expected[name], name
