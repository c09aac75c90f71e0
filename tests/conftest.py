"""Test-wide settings: quiet TensorFlow, CPU only; how pytest-xdist shares out the tests."""

import gc
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Every test imports TensorFlow, Keras and TFP: import them once here and move their millions of
# long-lived objects out of the cyclic garbage collector's reach (gc.freeze), so that each full
# collection scans only what the tests made. Full collections took 0.4-1.5 s each, 30 or more per
# worker in a suite run.
import keras  # noqa: E402, F401
import tensorflow  # noqa: E402, F401
import tensorflow_probability  # noqa: E402, F401

gc.collect()
gc.freeze()

# Modules whose tests must stay on one xdist worker: their module fixture is expensive and would
# run once per worker otherwise. test_export and test_serve share the exported smoke models
# (tests.smoke), so the other worker never waits on the export lock. (pytest-xdist's
# ``--dist loadgroup`` would do this with markers, but it does not group under pytest 9.)
GROUPS = {
    "tests/test_evaluation.py": "evaluation",
    "tests/test_export.py": "smoke_models",
    "tests/test_serve.py": "smoke_models",
    "tests/test_mask_tools.py": "mask_sweep",
    "tests/test_explore.py": "explore",
    "tests/test_tensorboard.py": "tensorboard",
}
# Modules of long tests, longest first. Work is handed out groups first (most tests first),
# then in collection order, so the long tests start early and both workers finish together on
# the short ones.
HEAVY_FIRST = (
    "test_training.py",
    "test_distribute.py",
    "test_nevae.py",
    "test_benchmark.py",
    "test_mask_tools.py",
    "test_mask_aae.py",
    "test_objectives.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return HEAVY_FIRST.index(name) if name in HEAVY_FIRST else len(HEAVY_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n`` and the default ``--dist load``: one work unit per test, except GROUPS."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return GROUPS.get(nodeid.split("::", 1)[0], nodeid)

    return GroupScheduling(config, log)
