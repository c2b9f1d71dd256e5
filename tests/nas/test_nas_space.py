"""Search spaces: encoding/decoding and JSON round trips, readable strings, mutation, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras_tuner
import numpy as np
import pytest

from tfmeta.nas.space import (
    Architecture,
    Decision,
    DenseSpace,
    MacroSpace,
    MicroCellSpace,
    SearchSpace,
    space_from_config,
)

SPACES = [
    MacroSpace(),
    MicroCellSpace(num_nodes=5),
    MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"), reduction=False),
    DenseSpace(num_layers=3),
    SearchSpace([Decision("units", (32, 64, 128)), Decision("act", ("relu", "gelu")), Decision("bn", (True, False))]),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_round_trips(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        idx = space.encode(arch)
        assert space.decode(idx) == arch
        assert Architecture.from_json(arch.to_json()) == arch
        assert json.loads(json.dumps(arch.get_config())) == arch.get_config()
        assert space.from_dict(arch.as_dict()) == arch
        assert space.from_hp_values(space.hp_values(arch)) == arch
        assert space.from_string(arch.to_json()) == arch
        assert hash(arch) == hash(space.decode(idx))
    rebuilt = space_from_config(json.loads(json.dumps(space.get_config())))
    assert rebuilt.names == space.names and rebuilt.num_choices == space.num_choices


def test_macro_key_and_size():
    space = MacroSpace()
    assert space.size == 3**8
    arch = space.from_key("21222200")
    assert str(arch) == "21222200" == space.key(arch)
    assert space.layer_ops(arch)[:2] == ["mbconv_k5_e6", "mbconv_k3_e3"]
    assert space.from_string("21222200") == arch
    assert len(set(map(str, space.enumerate()))) == 6561
    with pytest.raises(ValueError, match="key"):
        space.from_key("2122")


def test_micro_cell_decisions_and_string():
    space = MicroCellSpace(num_nodes=5)
    # 2 cells x 5 nodes x (in0, in1, op0, op1); node i chooses among i + 2 inputs.
    assert len(space) == 40
    assert space.num_choices[:4] == [2, 2, 5, 5]
    assert space.num_choices[16:20] == [6, 6, 5, 5]
    arch = space.decode([0] * 40)
    assert str(arch).startswith("normal[0:sep3x3+0:sep3x3 ")
    assert "reduce[" in str(arch)
    nodes = space.cell(arch, "reduce")
    assert len(nodes) == 5 and nodes[0] == (0, "sep_conv_3x3", 0, "sep_conv_3x3")


def test_dense_string_and_layers():
    space = DenseSpace(num_layers=2, units=(0, 32), dropout=(0.0, 0.5))
    arch = space.decode([1, 1, 0, 0])
    assert str(arch) == "dense[32(d0.5)-skip]"
    assert space.layers(arch) == [(32, 0.5), (0, 0.0)]


def test_mutation_changes_exactly_one_decision():
    rng = np.random.default_rng(1)
    for space in SPACES:
        for _ in range(20):
            arch = space.sample(rng)
            child = space.mutate(arch, rng)
            diff = np.sum(np.array(space.encode(arch)) != np.array(space.encode(child)))
            assert diff == 1


def test_keras_tuner_bridge():
    space = MacroSpace(num_layers=3)
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    assert [p.name for p in hp.space] == ["layer0", "layer1", "layer2"]
    hp.values = {"layer0": 2, "layer1": 0, "layer2": 1}
    assert str(space.from_hp(hp)) == "201"


def test_errors_name_argument():
    space = MacroSpace(num_layers=2)
    with pytest.raises(ValueError, match="indices"):
        space.decode([0])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        space.decode([0, 3])
    with pytest.raises(ValueError, match="num_layers"):
        MacroSpace(num_layers=0)
    with pytest.raises(ValueError, match="ops"):
        MicroCellSpace(ops=("conv_9x9",))
    with pytest.raises(ValueError, match="does not belong"):
        space.encode(MacroSpace(num_layers=3).from_key("000"))
    with pytest.raises(ValueError, match="unique"):
        SearchSpace([Decision("a", (1, 2)), Decision("a", (1, 2))])
    with pytest.raises(ValueError, match="distinct"):
        Decision("a", (1, 1))


def test_spaces_need_neither_keras_nor_the_builders():
    # Spaces validate op names on their own side: importing and building one loads no model code.
    code = (
        "import sys\n"
        "from tfmeta.nas.space import MicroCellSpace\n"
        "MicroCellSpace(num_nodes=2, ops=('sep_conv_3x3', 'identity'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow') "
        "or m in ('tfmeta.nas.cells', 'tfmeta.nas.operations', 'tfmeta.nas.builders')))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, check=True,
                         env={**os.environ, "PYTHONPATH": str(repo)}, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


def test_space_module_keeps_every_name_it_exported():
    import tfmeta.nas.space as space

    for name in ("Architecture", "Decision", "SearchSpace", "MacroSpace", "MicroCellSpace", "DenseSpace",
                 "space_from_config", "DEFAULT_CELL_OPS", "SHORT_OP_NAMES", "MACRO_BENCH_OPS", "Scalar"):
        assert name in space.__all__ and hasattr(space, name)
    assert space.MicroCellSpace().ops == space.DEFAULT_CELL_OPS
    assert space.MacroSpace().ops == space.MACRO_BENCH_OPS
