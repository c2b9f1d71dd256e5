"""Strategies: evolution's ageing, tournament and mutation; no repeated queries; resumable state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfmeta.nas.space import MacroSpace, SearchSpace, Decision
from tfmeta.nas.strategies import EvolutionStrategy, RandomStrategy, make_strategy

SPACE = MacroSpace(num_layers=6)


def score(space, arch):
    return float(int(str(arch), 3))  # distinct scores; more "2"s in front is better; best = 222222


def test_evolution_ageing_removes_the_oldest_even_if_best():
    evo = EvolutionStrategy(SPACE, population_size=4, sample_size=2, seed=0)
    archs = [evo.propose() for _ in range(4)]
    rewards = [100.0, 1.0, 2.0, 3.0]  # the oldest is by far the best
    for a, r in zip(archs, rewards):
        evo.observe(a, r)
    assert [m[1] for m in evo.population] == rewards
    child = evo.propose()
    evo.observe(child, 0.0)
    assert len(evo.population) == 4
    assert [m[1] for m in evo.population] == [1.0, 2.0, 3.0, 0.0]  # the best (oldest) died


def test_evolution_tournament_and_mutation():
    evo = EvolutionStrategy(SPACE, population_size=5, sample_size=5, seed=1)
    for _ in range(5):  # random initial population
        a = evo.propose()
        evo.observe(a, score(SPACE, a))
    best = max(evo.population, key=lambda m: m[1])[0]
    child = evo.propose()
    # Tournament over the whole population -> the parent is the best; the child is a one-decision mutation.
    assert int(np.sum(np.array(SPACE.encode(child)) != np.array(best))) == 1


def test_evolution_climbs_and_never_repeats():
    evo = EvolutionStrategy(SPACE, population_size=10, sample_size=3, seed=2)
    seen = set()
    for _ in range(150):
        a = evo.propose()
        assert str(a) not in seen
        seen.add(str(a))
        evo.observe(a, score(SPACE, a))
    _, best = evo.best()
    assert best == 3.0**6 - 1  # found 222222


@pytest.mark.parametrize("name", ["random", "evolution", "controller"])
def test_no_repeats_and_exhaustion(name):
    space = SearchSpace([Decision("a", (0, 1, 2)), Decision("b", (0, 1))])
    kwargs = {"population_size": 3, "sample_size": 2} if name == "evolution" else {}
    if name == "controller":
        kwargs = {"units": 8}
    s = make_strategy(name, space, seed=0, **kwargs)
    got = []
    while (a := s.propose()) is not None:
        got.append(str(a))
        s.observe(a, float(len(got)))
    assert sorted(got) == sorted(str(a) for a in space.enumerate())


@pytest.mark.parametrize("name", ["random", "evolution", "controller"])
def test_state_round_trip_continues_identically(name):
    kwargs = {"units": 16, "learning_rate": 0.01} if name == "controller" else {}
    a = make_strategy(name, SPACE, seed=3, **kwargs)
    for _ in range(25):
        arch = a.propose()
        a.observe(arch, score(SPACE, arch))
    state = json.loads(json.dumps(a.get_state()))
    b = make_strategy(name, SPACE, seed=3, **kwargs)
    b.set_state(state)
    for _ in range(10):
        x, y = a.propose(), b.propose()
        assert x == y
        a.observe(x, score(SPACE, x))
        b.observe(y, score(SPACE, y))
    assert a.best() == b.best()


def test_errors():
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("bayes", SPACE)
    with pytest.raises(ValueError, match="population_size"):
        EvolutionStrategy(SPACE, population_size=1)
    with pytest.raises(ValueError, match="sample_size"):
        EvolutionStrategy(SPACE, population_size=3, sample_size=5)
    with pytest.raises(ValueError, match="space"):
        RandomStrategy("macro")
