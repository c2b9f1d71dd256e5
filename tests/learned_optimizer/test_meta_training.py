"""Meta-training by truncated back-propagation lowers the meta-loss; checkpoints resume it."""

import numpy as np
import pytest

from tfmeta.learned_optimizer import CoordinatewiseLSTM, LearnedOptimizer, QuadraticFamily, mean_curve, meta_train


def held_out_meta_loss(rule, family, steps=50):
    """The meta-loss (mean sum of losses over `steps` updates) on 6 fixed held-out quadratics."""
    problems = [family.sample(10**6 + i) for i in range(6)]
    return float(np.sum(mean_curve(lambda: LearnedOptimizer(rule), family, problems, steps)[1:]))


def test_meta_training_lowers_the_meta_loss_on_held_out_quadratics(quadratic_rule_and_history):
    rule, before_weights, history = quadratic_rule_and_history
    family = QuadraticFamily()
    untrained = CoordinatewiseLSTM()
    untrained.set_weights(before_weights)
    before, after = held_out_meta_loss(untrained, family), held_out_meta_loss(rule, family)
    # On quadratics never seen in meta-training, the rule's summed loss over the horizon falls
    # at least fivefold, and the training meta-loss fell from its first to its last trajectories.
    assert after < before / 5, (before, after)
    losses = history["meta_loss"]
    assert len(losses) == 100 and np.mean(losses[-20:]) < np.mean(losses[:20])


def test_resume_from_a_checkpoint_continues_the_step_count_and_the_run(tmp_path):
    family = QuadraticFamily(dimension=3)
    settings = dict(unroll=5, horizon=10, learning_rate=1e-2, seed=3, verbose=0)

    def fresh_rule():
        rule = CoordinatewiseLSTM(hidden_units=4)
        rule.set_weights([np.full(w.shape, 0.05, np.float32) for w in rule.get_weights()])
        return rule

    straight = fresh_rule()
    meta_train(straight, family, steps=6, **settings)
    first = meta_train(fresh_rule(), family, steps=4, checkpoint_dir=str(tmp_path), **settings)
    assert first["step"] == 4 and first["resumed_from"] == 0
    resumed_rule = fresh_rule()
    second = meta_train(resumed_rule, family, steps=6, checkpoint_dir=str(tmp_path), **settings)
    # The second call restores the rule, Adam's state and the step count, does only the
    # missing 2 steps (one trajectory), and ends where an uninterrupted run ends.
    assert second["resumed_from"] == 4 and second["step"] == 6 and len(second["meta_loss"]) == 2
    for a, b in zip(resumed_rule.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_meta_train_shows_a_progress_bar(capsys):
    meta_train(CoordinatewiseLSTM(hidden_units=4), QuadraticFamily(dimension=3), steps=2, unroll=2,
               horizon=4, verbose=1)
    out = capsys.readouterr().out
    assert "2/2" in out and "meta_loss" in out


def test_bad_arguments_are_named():
    rule, family = CoordinatewiseLSTM(hidden_units=4), QuadraticFamily(dimension=3)
    with pytest.raises(ValueError, match="horizon"):
        meta_train(rule, family, steps=2, unroll=3, horizon=10, verbose=0)
    with pytest.raises(ValueError, match="steps"):
        meta_train(rule, family, steps=3, unroll=5, horizon=10, verbose=0)
