"""Fixtures for the NAS tests: the NAS-Bench-Macro table (required) and small spaces."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def macro_json(data_dir) -> str:
    path = data_dir / "nasbench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        raise RuntimeError(f"NAS-Bench-Macro table missing at {path}; set TFMETA_DATA_DIR.")
    return str(path)


@pytest.fixture(scope="session")
def bench(macro_json):
    from tfmeta.nas.benchmarks import load_benchmark

    return load_benchmark("nasbench-macro", macro_json)
