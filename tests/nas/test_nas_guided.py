"""The predictor, the predictor-guided strategy, PNAS's progressive expansion and TPE."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from tfmeta.nas.pnas import PNASStrategy, progressive_blocks
from tfmeta.nas.predictor import ArchitecturePredictor
from tfmeta.nas.search import ArchitectureSearch
from tfmeta.nas.space import MacroSpace, MicroCellSpace
from tfmeta.nas.strategies import make_strategy


def test_predictor_ranks_held_out_architectures(bench):
    keys = list(bench.table)
    order = np.random.default_rng(0).permutation(len(keys))
    train = [bench.space.from_key(keys[i]) for i in order[:60]]
    held_out = [bench.space.from_key(keys[i]) for i in order[60:560]]
    predictor = ArchitecturePredictor(bench.space, seed=0).fit(train, [bench.accuracy(a) for a in train])
    mean, std = predictor.predict(held_out)
    truth = [bench.accuracy(a) for a in held_out]
    # Chance is 0; a predictor trained on 60 architectures ranks the other 500 well.
    assert kendalltau(mean, truth)[0] > 0.5 and spearmanr(mean, truth)[0] > 0.7
    assert std.shape == mean.shape and np.all(std >= 0) and std.mean() > 0


def test_pnas_grows_one_layer_per_level_with_a_beam_of_k(bench):
    strategy = PNASStrategy(bench.space, beam_size=4, seed=0)
    levels = []
    for _ in range(3 + 4 * 7):
        arch = strategy.propose()
        strategy.observe(arch, bench.accuracy(arch))
        levels.append(strategy.level)
    keys = [bench.space.decode(h["indices"]) for h in strategy.history]
    keys = [bench.space.key(a) for a in keys]
    # Level 1: the first layer's 3 choices, the rest identity; then K = 4 per level.
    assert keys[:3] == ["00000000", "10000000", "20000000"]
    assert [s["evaluated"] for s in strategy.levels] == [3] + [4] * 7
    assert [s["blocks_decided"] for s in strategy.levels] == list(range(1, 9))
    for level in range(2, 9):
        evaluated = keys[3 + 4 * (level - 2): 3 + 4 * (level - 1)]
        assert all(k[level:] == "0" * (8 - level) for k in evaluated), (level, evaluated)
        # Each is an expansion (one more layer) of an architecture of the previous level's beam.
        previous = keys[:3] if level == 2 else keys[3 + 4 * (level - 3): 3 + 4 * (level - 2)]
        assert all(k[: level - 1] + "0" * (9 - level) in previous for k in evaluated)
    # The predictor picks better than random expansions: the last level's mean rank is low.
    ranks = [bench.rank(bench.table[k]["mean_acc"]) for k in keys[-4:]]
    assert np.median(ranks) < 400, ranks  # a random architecture's median rank is ~3280


def test_pnas_micro_cells_grow_one_node_at_a_time():
    space = MicroCellSpace(num_nodes=3, ops=("sep_conv_3x3", "identity"))
    blocks, fill = progressive_blocks(space)
    assert len(blocks) == 3 and all(len(b) == 8 for b in blocks)
    strategy = PNASStrategy(space, beam_size=3, max_initial=6, seed=0)
    first = [strategy.propose() for _ in range(6)]
    for arch in first:  # node 0 decided; nodes 1, 2 pass the previous node through identity
        cells = [space.cell(arch, c) for c in ("normal", "reduce")]
        assert all(cell[1] == (2, "identity", 2, "identity") and cell[2] == (3, "identity", 3, "identity")
                   for cell in cells)
        strategy.observe(arch, float(len(str(arch))))
    second = [strategy.propose() for _ in range(3)]
    assert strategy.levels[-1]["blocks_decided"] == 2 and len(second) == 3
    assert all(space.cell(a)[2] == (3, "identity", 3, "identity") for a in second)


def make_search(bench, tmp_path, strategy, max_trials, calls):
    def evaluate(arch):
        calls.append(str(arch))
        return bench.accuracy(arch)

    return ArchitectureSearch(bench.space, evaluate=evaluate, strategy=strategy, objective="accuracy",
                              max_trials=max_trials, directory=str(tmp_path), project_name=strategy, seed=0,
                              strategy_kwargs={"beam_size": 3} if strategy == "pnas" else {"num_initial": 4})


@pytest.mark.parametrize("strategy", ["pnas", "predictor"])
def test_interrupted_search_resumes_exactly(bench, tmp_path, strategy):
    uninterrupted = []
    make_search(bench, tmp_path / "a", strategy, 12, uninterrupted).search(verbose=0)
    first, second = [], []
    make_search(bench, tmp_path / "b", strategy, 7, first).search(verbose=0)
    resumed = make_search(bench, tmp_path / "b", strategy, 12, second)  # reloads oracle.json
    if strategy == "pnas":
        assert resumed.oracle.strategy.level == 3 and resumed.oracle.strategy.levels[-1]["evaluated"] == 3
    resumed.search(verbose=0)
    assert len(second) == 5 and not set(first) & set(second)
    assert first + second == uninterrupted  # the same proposals as without the interruption


def test_tpe_concentrates_on_the_good_choices():
    space = MacroSpace(num_layers=6)
    tpe, rnd = make_strategy("tpe", space, seed=0), make_strategy("random", space, seed=0)
    for strategy in (tpe, rnd):
        for _ in range(60):
            arch = strategy.propose()
            strategy.observe(arch, float(sum(space.encode(arch))))  # best: every layer choice 2
    late = lambda s: np.mean([h["reward"] for h in s.history[-20:]])  # noqa: E731
    assert late(tpe) > late(rnd) + 2.0
    restored = make_strategy("tpe", space, seed=5)
    restored.set_state(tpe.get_state())
    assert restored.propose() == tpe.propose()


def test_predictor_strategy_beats_random_on_the_table(bench):
    ranks = {}
    for name in ("predictor", "random"):
        strategy = make_strategy(name, bench.space, seed=1, **({"num_initial": 10} if name == "predictor" else {}))
        best = -1.0
        for _ in range(40):
            arch = strategy.propose()
            best = max(best, bench.accuracy(arch))
            strategy.observe(arch, bench.accuracy(arch))
        ranks[name] = bench.rank(best)
    assert ranks["predictor"] <= 50 and 3 * ranks["predictor"] < ranks["random"], ranks


def test_hyperparameters_are_searched_with_the_architecture_and_used_by_fit(digits, tmp_path):
    import keras
    import keras_tuner

    from tfmeta.nas.hp_training import HyperparameterTrainer
    from tfmeta.nas.space import Decision, SearchSpace, SpaceWithHyperparameters

    hp = keras_tuner.HyperParameters()
    hp.Choice("batch_size", [16, 64])
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log", step=10)
    space = SpaceWithHyperparameters(SearchSpace([Decision("units", (4, 16))], name="mlp"), hp)
    assert space.hyperparameters["learning_rate"] == pytest.approx((1e-3, 1e-2, 1e-1))
    blocks, fill = progressive_blocks(space)
    assert blocks[-1] == [1, 2, 3] and fill([1, 2, 1, 1], 1) == [1, 0, 0, 0]

    seen = []

    def build(arch, values):
        seen.append(values)
        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(arch.as_dict()["units"], activation="relu"),
                                 keras.layers.Dense(10, activation="softmax")])

    trainer = HyperparameterTrainer(space, build)

    class Record(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            steps.append((float(self.model.optimizer.learning_rate), float(self.model.optimizer.weight_decay),
                          self.params["steps"]))

    steps = []
    search = ArchitectureSearch(space, build_model=trainer.build_model, fit_model=trainer.fit_model, strategy="tpe",
                                max_trials=3, directory=str(tmp_path), project_name="hp", seed=0)
    x, y = digits["train"]
    search.search(x[:256], y[:256], validation_data=digits["validation"], epochs=1, verbose=0,
                  callbacks=[Record()])
    assert len(steps) == 3
    for values, (lr, wd, n_steps) in zip(seen, steps):
        assert lr == pytest.approx(values["learning_rate"]) and wd == pytest.approx(values["weight_decay"])
        assert n_steps == 256 // values["batch_size"]
    results = [r["architecture"] for r in search.results()]
    assert all("hp/batch_size" in r["values"] for r in results)


@pytest.mark.parametrize("strategy", ["pnas", "tpe"])
def test_cli_search_runs_the_new_strategies(macro_json, capsys, strategy):
    import json

    from tfmeta.cli import main

    assert main(["search", "--data", macro_json, "--strategy", strategy, "--budget", "20", "--seed", "0",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["strategy"] == strategy and result["queries"] == 20 and len(set(result["queried_archs"])) == 20


@pytest.mark.slow
def test_pnas_resumes_after_a_killed_process(bench, macro_json, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("nas_search_script.py")
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env["PYTHONPATH"] = str(repo)

    def run(*extra):
        return subprocess.run([sys.executable, str(script), macro_json, str(tmp_path), "pnas", "pnas", "10", *extra],
                              capture_output=True, text=True, timeout=240, cwd=repo, env=env)

    killed = run("--kill-after", "4")
    assert killed.returncode == 17, killed.stderr[-2000:]
    first = [line.split()[1] for line in killed.stdout.splitlines() if line.startswith("RAN ")]
    resumed = run()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    second = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("RAN ")]
    # The same 10 architectures, in the same order, as a search that was never interrupted.
    uninterrupted = []
    search = ArchitectureSearch(bench.space, evaluate=lambda a: uninterrupted.append(str(a)) or bench.accuracy(a),
                                strategy="pnas", objective="accuracy", max_trials=10,
                                directory=str(tmp_path / "ref"), project_name="pnas", seed=0)
    search.search(verbose=0)
    assert len(first) == 4 and first + second == uninterrupted


@pytest.mark.slow
def test_pnas_chief_and_two_workers(bench, macro_json, tmp_path):
    import json

    from chief_and_workers import ran as worker_ran
    from chief_and_workers import run_chief_and_two_workers

    outputs = run_chief_and_two_workers(macro_json, tmp_path, "dist", "pnas", 12)
    ran = [arch for t in ("tuner0", "tuner1") for arch in worker_ran(outputs[t])]
    assert len(ran) == 12 == len(set(ran))
    state = json.loads((tmp_path / "dist" / "oracle.json").read_text())["strategy"]
    # The chief's PNAS saw every worker's result and grew past the first layer.
    assert sorted(str(bench.space.decode(h["indices"])) for h in state["history"]) == sorted(ran)
    assert state["levels"][0]["evaluated"] == 3 and state["level"] >= 2
