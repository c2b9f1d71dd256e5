"""`FunctionalModel`, the networks tfmeta builds: a functional Keras model that saves, reloads
and exports like `keras.Model(inputs, outputs)`. (Training under `MultiWorkerMirroredStrategy`
is tested with two worker processes in tests/distribute/test_multi_worker.py.)"""

import keras
import numpy as np
import tensorflow as tf

from tfmeta.automodel.preprocessing import Preprocessing
from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.nas.builders import build_model
from tfmeta.nas.space import DenseSpace


def automodel_network():
    """AutoModel's network for arrays (raw int64 inputs, normalisation, a NAS child inside)."""
    x = np.random.default_rng(0).integers(0, 16, size=(16, 5)).astype("int64")
    space = DenseSpace(num_layers=2, units=(8,), dropout=(0.0,))
    arch = space.sample(np.random.default_rng(0))
    return Preprocessing(x, "table").wrap(lambda shape: build_model(space, arch, shape, 3)), x[:4]


def test_builders_return_functional_models_that_reload_from_keras_files(tmp_path):
    keras.utils.set_random_seed(0)
    model, x = automodel_network()
    assert isinstance(model, FunctionalModel) and isinstance(model.layers[-1], FunctionalModel)
    assert model.output_shape == (None, 3) and [i.dtype for i in model.inputs] == ["int64"]
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # weights away from their initialisation

    model.save(tmp_path / "net.keras")
    reloaded = keras.models.load_model(tmp_path / "net.keras")  # no custom_objects: registered
    assert type(reloaded) is FunctionalModel and type(reloaded.layers[-1]) is FunctionalModel
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_saved_model_export_reloads_with_tensorflow_alone(tmp_path):
    keras.utils.set_random_seed(0)
    model, x = automodel_network()
    model.export(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    (probabilities,) = served(tf.constant(x)).values()
    np.testing.assert_allclose(probabilities.numpy(), model.predict(x, verbose=0), rtol=1e-6)
