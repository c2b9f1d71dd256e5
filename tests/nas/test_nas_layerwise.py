"""Zoph & Le's layer-wise space: decisions, encoding, skip connections and the built network."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfmeta.nas.builders import build_model
from tfmeta.nas.layerwise_builder import build_layerwise_model
from tfmeta.nas.space import Architecture, LayerwiseSpace, space_from_config


def test_decisions_round_trip_through_indices_json_and_config():
    space = LayerwiseSpace(num_layers=4)
    assert len(space) == 4 * 4 + (0 + 1 + 2 + 3)  # four choices per layer, one per earlier layer
    assert space.names[4:9] == ("layer1/height", "layer1/width", "layer1/filters", "layer1/stride", "layer1/input0")
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.decode(space.encode(arch)) == arch
        assert Architecture.from_json(arch.to_json()) == arch
    rebuilt = space_from_config(space.get_config())
    assert isinstance(rebuilt, LayerwiseSpace) and rebuilt.names == space.names
    with pytest.raises(ValueError, match="filter_counts"):
        LayerwiseSpace(filter_counts=(0, 8))


def _arch(space, kernels, filters, strides, inputs):
    values = {}
    for i in range(space.num_layers):
        values.update({f"layer{i}/height": kernels[i][0], f"layer{i}/width": kernels[i][1],
                       f"layer{i}/filters": filters[i], f"layer{i}/stride": strides[i]})
        values.update({f"layer{i}/input{j}": int(j in inputs[i]) for j in range(i)})
    return space.from_dict(values)


def test_skip_pattern_gives_the_expected_connections_and_shapes():
    space = LayerwiseSpace(num_layers=4)
    # 0 <- image; 1 <- 0 (stride 2: 4x4); 2 <- image (no input); 3 <- 0 and 1 (8x8 and 4x4 padded).
    arch = _arch(space, [(3, 3), (1, 5), (7, 1), (3, 3)], [24, 36, 48, 64], [1, 2, 1, 1], [[], [0], [], [0, 1]])
    assert space.inputs(arch) == [[], [0], [], [0, 1]]
    assert space.loose_ends(arch) == [2, 3]
    assert str(arch) == "3x3x24/s1<[] 1x5x36/s2<[0] 7x1x48/s1<[] 3x3x64/s1<[0,1]"
    model = build_layerwise_model(space, arch, (8, 8, 1), 10)
    assert model.output_shape == (None, 10)
    conv = {i: model.get_layer(f"layer{i}_conv") for i in range(4)}
    assert conv[1].kernel.shape == (1, 5, 24, 36)
    assert conv[2].kernel.shape == (7, 1, 1, 48)        # layer 2 reads the image
    assert conv[3].kernel.shape == (3, 3, 24 + 36, 64)  # layer 3 reads 0 and 1 concatenated
    assert model.get_layer("layer3_inputs").output.shape == (None, 8, 8, 60)
    assert model.get_layer("loose_ends").output.shape == (None, 8, 8, 48 + 64)
    # The padded part of layer 1's map is zero: layer 3's input channels 24: are zero outside 4x4.
    probe = keras.Model(model.input, model.get_layer("layer3_inputs").output)
    out = probe.predict(np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32), verbose=0)
    assert np.all(out[:, 4:, :, 24:] == 0) and np.all(out[:, :, 4:, 24:] == 0)
    assert np.any(out[:, :4, :4, 24:] != 0)


def test_build_model_dispatches_and_the_network_learns(digits):
    space = LayerwiseSpace(num_layers=3, filter_counts=(32,), strides=(1,))
    arch = _arch(space, [(3, 3), (3, 3), (3, 3)], [32] * 3, [1] * 3, [[], [0], [0, 1]])
    model = build_model(space, arch, (8, 8, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    x, y = digits["train"]
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.6  # chance: 0.1


def test_cli_searches_the_layerwise_space_on_digits(capsys):
    import json

    from tfmeta.cli import main

    assert main(["search", "--space", "layerwise", "--layers", "2", "--epochs", "2", "--strategy", "random",
                 "--budget", "2", "--seed", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    arch = LayerwiseSpace(num_layers=2).validate(Architecture.from_json(result["best_arch_json"]))
    assert result["best_arch"] == str(arch) and result["trials"] == 2
    assert len(result["trajectory"]) == 2 and result["trajectory"][1] >= result["trajectory"][0]
    assert result["best_val_accuracy"] == result["trajectory"][-1] > 0.3  # chance: 0.1
    assert result["test_accuracy"] > 0.3
    with pytest.raises(SystemExit, match="--data"):
        main(["search", "--space", "macro"])
