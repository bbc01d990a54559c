"""Every module of the fastnn package says what it exports: ``__all__`` lists names that
exist, and none of them is a module it merely imported (``np``, ``os``, ``gzip``, ...)."""

import importlib
import pkgutil
import types

import pytest

import fastnn

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(fastnn.__path__, "fastnn.")
                 if not name.startswith("fastnn.kernels"))


@pytest.mark.parametrize("name", MODULES)
def test_module_defines_all_of_its_own_names(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"
    foreign = [n for n in module.__all__ if isinstance(getattr(module, n), types.ModuleType)
               and not getattr(module, n).__name__.startswith("fastnn")]
    assert not foreign, f"{name}.__all__ exports imported modules: {foreign}"
    assert len(set(module.__all__)) == len(module.__all__)
