"""The bundled demo models, built once per test module (each module mutates nothing it shares)."""
from __future__ import annotations

import pytest

from plugin_fixtures import demo_module


@pytest.fixture(scope="module")
def cnn():
    return demo_module("cnn")


@pytest.fixture(scope="module")
def transformer():
    return demo_module("transformer")
