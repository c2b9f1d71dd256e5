"""Installs tfmeta: AutoML and meta-learning for Keras 3 / TensorFlow."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "tfmeta" / "version.py").read_text()
).group(1)

# What only the recipes, the benchmarks or the tests import; the library never does.
EXTRAS = {
    # the recipes' plots
    "recipes": ["matplotlib>=3.7,<3.12"],
    # benchmarks/automodel_vs_autokeras.py and the rank statistics of
    # benchmarks/enas_rank_correlation.py
    "bench": ["autokeras>=2.0,<3.1", "scipy>=1.10,<2"],
    # the test suite, whose recipe smoke tests draw the recipes' plots
    "test": ["pytest>=7,<10", "matplotlib>=3.7,<3.12"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="tfmeta",
    version=VERSION,
    description="Meta-learning, neural architecture search and AutoML for Keras 3 / TensorFlow.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tfmeta", "tfmeta.*"]),
    # Exactly what `tfmeta/` imports at run time.
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.3,<3.16",
        "keras-tuner>=1.4.7,<1.5",
        # KerasTuner's Tuner.run_trial imports tensorboard on the TensorFlow backend, and
        # TensorFlow 2.21 no longer installs it: without it every trial fails.
        "tensorboard>=2.16,<2.22",
        # Omniglot through tensorflow-datasets (`load_omniglot(source="tfds")`, and the
        # fallback when the zips are missing).
        "tensorflow-datasets>=4.9,<4.10",
        # tensorflow-datasets 4.9.10 builds its dataset builders with etils, which imports
        # importlib_resources without declaring it: without it tfds.builder() fails.
        "importlib_resources>=5,<8",
        "scikit-learn>=1.3,<1.10",
        # AutoModel reads tables from pandas DataFrames and CSV files (streamed in chunks).
        "pandas>=2.0,<3.1",
        "pillow>=10,<14",
        "numpy>=1.26,<2.5",
        # `tfmeta serve`: uvicorn is the HTTP server, on httptools' parser (its protocol is
        # extended with a header timeout); Starlette routes the REST API.
        "uvicorn>=0.30,<0.60",
        "httptools>=0.6,<0.10",
        "starlette>=0.37,<1.20",
        # uvicorn runs its event loop on uvloop when installed: the loop moves every request's
        # bytes, and uvloop's (libuv) does so with much less Python per request.
        "uvloop>=0.19,<1; sys_platform != 'win32'",
        # `tfmeta serve --grpc-port`: TF Serving's gRPC services, and the TF Serving protos
        # (model config files, PredictRequest, warm-up PredictionLog) with their stubs.
        "grpcio>=1.60,<2",
        "tensorflow-serving-api>=2.16,<2.22",
        "protobuf>=4.25,<8",
        # `tfmeta serve`'s /monitoring/prometheus/metrics endpoint.
        "prometheus_client>=0.20,<0.30",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["tfmeta = tfmeta.cli:main"]},
)
