"""Controller RNN: REINFORCE raises a rewarded architecture's probability; state round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfmeta.nas.controller import ControllerRNN

CHOICES = [3, 3, 3, 3]


def test_sampling_is_seeded_and_valid():
    c = ControllerRNN(CHOICES, units=16, seed=0)
    a = c.sample(seed=[1, 2])
    b = c.sample(seed=[1, 2])
    assert a == b
    idx, log_prob, entropy = a
    assert all(0 <= i < 3 for i in idx)
    np.testing.assert_allclose(log_prob, c.log_probability(idx), rtol=1e-5)
    # Different seeds give different architectures (not shifted copies of one stream).
    samples = {tuple(c.sample(seed=[1, k])[0]) for k in range(30)}
    assert len(samples) > 15
    assert 0 < entropy <= len(CHOICES) * np.log(3) + 1e-5


@pytest.mark.parametrize("attention", [None, {3: 1, 5: 1, 6: 4}], ids=["softmax", "anchor_attention"])
def test_teacher_forced_log_prob_matches_stepwise_policy_and_gradient(attention):
    # The REINFORCE update scores all decisions at once (scan + masked softmax); it must give
    # the sampler's step-by-step numbers, gradients included, also with unequal choice counts
    # and with binary decisions given by anchor-point attention.
    import tensorflow as tf

    c = ControllerRNN([2, 5, 3, 2, 4, 2, 2], units=8, seed=3, tanh_constant=1.5, temperature=2.0,
                      attention=attention)
    idx = tf.constant([[1, 4, 0, 1, 3, 0, 1], [0, 2, 2, 0, 1, 1, 1]], tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        _, lp_steps, ent_steps = c._run(indices=idx, batch=2)
        lp_fast, ent_fast = c._log_prob(idx)
        loss_steps = tf.reduce_sum(lp_steps) + 0.1 * tf.reduce_sum(ent_steps)
        loss_fast = tf.reduce_sum(lp_fast) + 0.1 * tf.reduce_sum(ent_fast)
    np.testing.assert_allclose(lp_fast.numpy(), lp_steps.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ent_fast.numpy(), ent_steps.numpy(), rtol=1e-5)
    for g_steps, g_fast in zip(tape.gradient(loss_steps, c.trainable_variables),
                               tape.gradient(loss_fast, c.trainable_variables)):
        np.testing.assert_allclose(tf.convert_to_tensor(g_fast).numpy(), tf.convert_to_tensor(g_steps).numpy(),
                                   rtol=1e-4, atol=1e-6)


def test_reinforce_raises_probability_of_rewarded_architecture():
    c = ControllerRNN(CHOICES, units=16, seed=0, learning_rate=0.01)
    good, bad = [2, 0, 1, 2], [0, 1, 2, 0]
    p_good, p_bad = c.probability(good), c.probability(bad)
    c.reinforce(bad, 0.5)  # the first reward initialises the baseline
    for _ in range(15):
        c.reinforce(good, 1.0)  # above the baseline: pushed up
        c.reinforce(bad, 0.0)   # below the baseline: pushed down
    assert c.probability(good) > 2 * p_good
    assert c.probability(bad) < p_bad
    baseline = 0.5
    for _ in range(15):
        for reward in (1.0, 0.0):
            baseline = 0.99 * baseline + 0.01 * reward  # the ENAS default decay
    assert c.baseline == pytest.approx(baseline) and c.num_updates == 31


def test_baseline_moving_average_and_logit_clipping():
    c = ControllerRNN([5], units=8, seed=0, baseline_decay=0.9, tanh_constant=1.1)
    c.reinforce([0], 1.0)
    assert c.baseline == pytest.approx(1.0)
    c.reinforce([0], 0.0)
    assert c.baseline == pytest.approx(0.9)
    # Many updates cannot push a probability past the tanh bound: logits in [-1.1, 1.1].
    for _ in range(60):
        c.reinforce([0], 10.0)
        c.reinforce([1], -10.0)
    bound = np.exp(1.1) / (np.exp(1.1) + 4 * np.exp(-1.1))
    assert c.probability([0]) <= bound + 1e-5


def test_state_round_trip_restores_policy_and_optimizer():
    c = ControllerRNN(CHOICES, units=16, seed=3, learning_rate=0.01)
    for k in range(5):
        c.reinforce(c.sample(seed=[0, k])[0], float(k))
    state = json.loads(json.dumps(c.get_state()))
    d = ControllerRNN(CHOICES, units=16, seed=99, learning_rate=0.01)
    d.set_state(state)
    assert d.baseline == c.baseline and d.num_updates == 5
    assert d.sample(seed=[7, 7]) == c.sample(seed=[7, 7])
    # Same Adam slots: the next update is identical.
    c.reinforce([1, 1, 1, 1], 3.0)
    d.reinforce([1, 1, 1, 1], 3.0)
    np.testing.assert_allclose(c.log_probability([1, 1, 1, 1]), d.log_probability([1, 1, 1, 1]), rtol=1e-5)
    with pytest.raises(ValueError, match="decisions"):
        ControllerRNN([2, 2], units=16).set_state(state)


def test_anchor_attention_learns_which_layer_to_read_and_round_trips():
    """Zoph & Le's layer-wise space: the controller gives each connection decision by
    attention to the anchor of the layer it would read, and REINFORCE learns a skip pattern."""
    from tfmeta.nas.space import LayerwiseSpace
    from tfmeta.nas.strategies import ControllerStrategy

    space = LayerwiseSpace(num_layers=3, strides=(1,))
    c = ControllerStrategy(space, seed=0, units=16, learning_rate=0.02).controller
    attention = space.controller_attention()
    names = space.names
    assert {names[t]: names[a] for t, a in attention.items()} == {
        "layer1/input0": "layer0/stride", "layer2/input0": "layer0/stride", "layer2/input1": "layer1/stride"}
    assert {"w_attn_prev", "w_attn_curr", "v_attn"} <= {v.name for v in c.trainable_variables}
    layer2 = [names.index("layer2/input0"), names.index("layer2/input1")]
    # Reward: layer 2 reads layer 0 and not layer 1 (whatever else is chosen).
    rng = np.random.default_rng(0)

    def p_wanted():
        probs = [c.marginals(space.encode(space.sample(rng))) for _ in range(8)]
        return np.mean([p[layer2[0]][1] * p[layer2[1]][0] for p in probs])

    # The attention is shared by every connection, so telling layer 0 from layer 1 rests on
    # their anchor states: slower to learn than a softmax head of its own (about 100 updates
    # here against 20), as the paper's thousands of controller updates allow.
    before = p_wanted()
    for k in range(120):
        idx = c.sample(seed=[1, k])[0]
        c.reinforce(idx, float(idx[layer2[0]] == 1 and idx[layer2[1]] == 0))
    assert before < 0.3 and p_wanted() > 0.7
    state = json.loads(json.dumps(c.get_state()))
    d = ControllerRNN(space.num_choices, units=16, seed=9, attention=attention)
    d.set_state(state)
    assert d.sample(seed=[5, 5]) == c.sample(seed=[5, 5])
    with pytest.raises(ValueError, match="attention steps"):
        ControllerRNN(space.num_choices, units=16).set_state(state)


def test_reset_matches_fresh_controller():
    a = ControllerRNN(CHOICES, units=16, seed=5)
    b = ControllerRNN(CHOICES, units=16, seed=1)
    b.reinforce([0, 0, 0, 0], 1.0)
    b.reset(5)
    assert b.sample(seed=[3, 4]) == a.sample(seed=[3, 4])
    assert b.baseline is None and b.num_updates == 0


def test_errors():
    with pytest.raises(ValueError, match="num_choices"):
        ControllerRNN([])
    with pytest.raises(ValueError, match="temperature"):
        ControllerRNN([2], temperature=0)
    with pytest.raises(ValueError, match="binary decisions; step 1 has 3 choices"):
        ControllerRNN([2, 3], attention={1: 0})
    with pytest.raises(ValueError, match="earlier steps"):
        ControllerRNN([2, 2], attention={0: 1})
    c = ControllerRNN([2, 2], units=8)
    with pytest.raises(ValueError, match="indices"):
        c.reinforce([0, 2], 1.0)
    with pytest.raises(ValueError, match="reward"):
        c.reinforce([0, 1], float("nan"))
