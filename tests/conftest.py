"""Shared pytest setup: quiet TensorFlow, seeded runs and the shared data directory."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOGICAL_CPUS = 2


def _split_cpu_into_logical_devices() -> None:
    """Two logical CPU devices, so `tests/distribute` runs `MirroredStrategy` over two replicas
    as TensorFlow's own tests do. Done here, when pytest imports this file and before any test
    module is imported, because TensorFlow accepts it only before its runtime initialises;
    ops still run on /CPU:0 unless placed elsewhere, so other tests are unaffected."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(LOGICAL_CPUS)]
    )


_split_cpu_into_logical_devices()


def shared_data_dir() -> Path:
    """`$TFMETA_DATA_DIR`, or ../shared/data beside the repo; fails loudly when missing."""
    path = Path(os.environ.get("TFMETA_DATA_DIR", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        raise RuntimeError(
            f"Shared data not found at {path}: set TFMETA_DATA_DIR to the folder holding "
            "omniglot/ and nasbench_macro/."
        )
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (omniglot zips, NAS-Bench-Macro)."""
    return shared_data_dir()


@pytest.fixture
def count_train_step_traces():
    """`count(model) -> list`: wraps `model.train_step`; the list grows by one per trace."""

    def count(model):
        traces = []
        train_step = model.train_step

        def counted(data):
            traces.append(1)  # a Python call of train_step is a trace of the train function
            return train_step(data)

        model.train_step = counted
        return traces

    return count


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(0)
    yield


def make_toy_few_shot_model(seed: int = 1):
    """A tiny nearest-prototype few-shot learner on a fixed random encoder (28x28x1 input).

    Built from `tfmeta.fewshot.FewShotMixin` alone, so export and evaluation are tested
    independently of the real learners. `seed` draws the encoder's weights.
    """
    import keras
    import tensorflow as tf

    from tfmeta.fewshot import FewShotMixin

    class ToyPrototypes(FewShotMixin, keras.Model):
        learner_name = "toy_prototypes"

        def __init__(self):
            super().__init__()
            self.encoder = keras.Sequential(
                [keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(4), keras.layers.Flatten(),
                 keras.layers.Dense(16, kernel_initializer=keras.initializers.GlorotUniform(seed=seed))]
            )

        def call(self, x):
            return self.encoder(x)

        def few_shot_logits(self, support_x, support_y, query_x, ways):
            s, q = self.encoder(support_x), self.encoder(query_x)
            onehot = tf.one_hot(support_y, ways)
            protos = tf.matmul(onehot, s, transpose_a=True) / tf.reduce_sum(onehot, 0)[:, None]
            return -tf.reduce_sum((q[:, None, :] - protos[None]) ** 2, -1)

    model = ToyPrototypes()
    model(tf.zeros((1, 28, 28, 1)))
    return model


@pytest.fixture(scope="session")
def toy_few_shot_model():
    """`make_toy_few_shot_model(seed=1)`, shared by the export and evaluation tests."""
    return make_toy_few_shot_model(seed=1)


@pytest.fixture(scope="session")
def toy_few_shot_model_factory():
    """`make_toy_few_shot_model`, for tests that need toy learners with other encoders."""
    return make_toy_few_shot_model


@pytest.fixture(scope="session")
def exported_toy_model(tmp_path_factory, toy_few_shot_model, data_dir):
    """`(base dir, runs dir)`: the toy learner exported, and 3 Lake-format runs of Korean."""
    from tfmeta.data.oneshot_runs import make_oneshot_runs

    root = tmp_path_factory.mktemp("oneshot")
    runs = make_oneshot_runs(root / "runs", ["Korean"], n_runs=3, data_dir=data_dir)
    base = root / "models" / "toy"
    toy_few_shot_model.export(str(base))
    return str(base), runs

