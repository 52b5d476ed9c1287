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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls on a shared 2-core box: more threads only contend (torch's count restored after)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
