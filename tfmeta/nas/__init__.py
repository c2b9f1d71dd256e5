"""Neural architecture search: spaces, cell builders, controller RNN, evolution, random search.

Pieces (one idea per module, imported lazily so `import tfmeta.nas` stays light):

- `space` (a package): `Decision` and the JSON-serialisable `Architecture`
  (`space.architecture`), `SearchSpace` (your own spaces; `space.search_space`), the built-in
  `MacroSpace` (one op per layer, NAS-Bench-Macro), `MicroCellSpace` (NASNet/ENAS cells),
  `DenseSpace` (dense blocks for tables) and `LayerwiseSpace` (Zoph & Le's layers with
  skips), the operation names spaces accept (`space.op_names`) and `space_from_config`.
- `operations`: the cell operations as Keras layers (`OPS`: name -> layer factory; adding one
  registers its name with the spaces), `op_key` (the weight-sharing key of an op).
- `cells`: `Cell` (supernet-ready: `Cell(None, ...)` owns every candidate op) and
  `build_cell_model` (stack N normal cells with reduction cells between stages).
- `builders`: `build_macro_model`, `build_dense_model`, and `build_model` for any built-in space.
- `layerwise_builder`: `build_layerwise_model`, the network of Zoph & Le's `LayerwiseSpace`.
- `darts`: DARTS: `DartsNetwork` (mixed operations, alternating weight and architecture
  steps, first or second order), derivation of the discrete cell, `paired_batches`.
- `transfer`: `transfer(arch, data, cells=, filters=)`: a searched cell stacked deeper
  and wider, trained on another data set.
- `digits_search`: `run_digits_search(space, strategy, budget)`: a strategy over any built-in
  space, children trained on digits (behind `tfmeta search --space layerwise`).
- `controller`: `ControllerRNN` (LSTM policy, REINFORCE with baseline, entropy bonus,
  temperature, tanh logit clipping; ENAS defaults).
- `strategies`: `ControllerStrategy`, `EvolutionStrategy` (regularized evolution),
  `RandomStrategy` behind one ask/tell interface.
- `predictor`: `ArchitecturePredictor`, an MLP-ensemble surrogate (architecture -> score).
- `guided`: `PredictorStrategy` (the predictor proposes the next architectures); `pnas`:
  `PNASStrategy` (progressive growth, the predictor ranks the expansions); `tpe`: `TPEStrategy`.
- `cost`: MnasNet's cost-aware rewards (`CostAwareReward`, `CostAwareMetric`, `count_flops`).
- `hp_training`: `HyperparameterTrainer`, applying the training hyperparameters of a
  `SpaceWithHyperparameters` in each trial's compile and fit.
- `oracles`: the strategies as KerasTuner oracles (`ControllerOracle`, `EvolutionOracle`,
  `RandomArchitectureOracle`, `PredictorOracle`, `PNASOracle`, `TPEOracle`): resumable,
  distributable with KerasTuner's chief/workers.
- `search`: `ArchitectureSearch`, the facade (train children with `build_model` or score
  them with any `evaluate` function).
- `supernet`: the ENAS supernet: `SharedCell`, `SharedCellNetwork` (one network, the child
  chosen by a variable, no retracing).
- `checkpoint`: a model's and its optimizer's variables in one atomically written `.npz`.
- `enas`: ENAS weight-sharing search: `WeightSharingSearch` (trials train the shared weights;
  resumable like every search) and `UniformPathSampler` (single-path one-shot training).
- `benchmarks`: NAS-Bench-Macro tabular objective and `run_tabular_search` (`tfmeta search`).
- `digits`: deprecated; the digits search is `tfmeta.AutoModel` on `tfmeta.data.digits` (see
  `benchmarks/nas_digits.py`).

Example:

>>> from tfmeta import nas
>>> space = nas.MicroCellSpace(num_nodes=3)
>>> search = nas.ArchitectureSearch(
...     space, build_model=lambda a: nas.build_cell_model(space, a, (8, 8, 1), 10),
...     strategy="controller", max_trials=10, directory="runs", project_name="cells", seed=0)
>>> search.search(x, y, validation_data=(xv, yv), epochs=2)    # doctest: +SKIP
>>> print(search.best_architecture())                           # doctest: +SKIP
normal[1:sep3x3+0:id ...] reduce[...]
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Decision": "space",
    "SearchSpace": "space",
    "MicroCellSpace": "space",
    "MacroSpace": "space",
    "DenseSpace": "space",
    "LayerwiseSpace": "space",
    "SpaceWithHyperparameters": "space",
    "Architecture": "space",
    "space_from_config": "space",
    "OPS": "operations",
    "Cell": "cells",
    "build_cell_model": "cells",
    "build_macro_model": "builders",
    "build_dense_model": "builders",
    "build_model": "builders",
    "build_layerwise_model": "layerwise_builder",
    "DartsNetwork": "darts",
    "ControllerRNN": "controller",
    "Strategy": "strategies",
    "ControllerStrategy": "strategies",
    "EvolutionStrategy": "strategies",
    "RandomStrategy": "strategies",
    "make_strategy": "strategies",
    "PredictorStrategy": "guided",
    "PNASStrategy": "pnas",
    "TPEStrategy": "tpe",
    "ArchitecturePredictor": "predictor",
    "CostAwareReward": "cost",
    "CostAwareMetric": "cost",
    "HyperparameterTrainer": "hp_training",
    "PredictorOracle": "oracles",
    "PNASOracle": "oracles",
    "TPEOracle": "oracles",
    "ArchitectureOracle": "oracles",
    "ControllerOracle": "oracles",
    "EvolutionOracle": "oracles",
    "RandomArchitectureOracle": "oracles",
    "ArchitectureSearch": "search",
    "SharedCell": "supernet",
    "SharedCellNetwork": "supernet",
    "WeightSharingSearch": "enas",
    "UniformPathSampler": "enas",
    "NASBenchMacro": "benchmarks",
    "run_tabular_search": "benchmarks",
}
_SUBMODULES = {
    "space", "operations", "cells", "builders", "controller", "strategies", "oracles", "search",
    "supernet", "checkpoint", "enas", "benchmarks", "digits", "darts", "layerwise_builder",
    "transfer", "predictor", "guided", "pnas", "tpe", "cost", "hp_training", "distribution",
    "digits_search",
}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"tfmeta.nas.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"tfmeta.nas.{name}")
    raise AttributeError(f"module 'tfmeta.nas' has no attribute {name!r}")
