"""Fixtures for plugin tests."""

from __future__ import annotations

import pytest

from shl import api


@pytest.fixture
def data() -> api.SteeringData:
    return api.SteeringData(
        positive=api.Persona("care", "You are caring."),
        negative=api.Persona("authority", "You are authoritative."),
        neutral_system=None,
        contexts=["c1", "c2"],
        prompts=["p1"],
        eval_prompts=["e1", "e2", "e3", "e4"],
        narration_words=["caring", "Persona"],
    )
