"""Fixtures for engine tests: real tiny transformers models (random weights, in-process BPE tokenizer)."""

from __future__ import annotations

import pytest

ARCHS = ["llama", "qwen2", "qwen3", "gpt2", "gemma"]


@pytest.fixture(scope="session")
def host():
    from shl.manager import make_host

    return make_host()


@pytest.fixture(scope="session")
def load(host):
    """``load(arch="llama", dtype="float32", **params)`` -> a fresh LoadedModel (eval mode, CPU)."""

    def _load(arch: str = "llama", dtype: str = "float32", **params):
        return host.registry.build("model", "tiny_random", {"arch": arch, **params}).load("cpu", dtype)

    return _load


@pytest.fixture
def llama(load):
    return load("llama")


@pytest.fixture
def tok(llama):
    return llama.tokenizer
