"""Learning-rate schedules of the optimizers.

Oracles: the formulas written out by hand (worked values), and scikit-learn's own
optimizers for the schedules that keep MLPClassifier's meaning; for the new
schedules, scikit-learn's optimizers with their rate set by hand at each epoch.
"""

import math
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer as SkAdam
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer as SkSGD

from skconv._optimizers import (
    AdamOptimizer,
    SGDOptimizer,
    scheduled_learning_rate,
    warmup_factor,
)

C1 = (1 + math.cos(math.pi / 4)) / 2  # 0.8535...
C3 = (1 + math.cos(3 * math.pi / 4)) / 2  # 0.1464...


def _rates(schedule, n, **kwargs):
    return [scheduled_learning_rate(schedule, e, 2.0, **kwargs) for e in range(n)]


def test_cosine_decays_from_the_initial_rate_over_max_iter_epochs():
    assert_allclose(_rates("cosine", 4, n_epochs=4), [2.0, 2 * C1, 1.0, 2 * C3], rtol=1e-15)


def test_cosine_warms_up_linearly_then_decays_over_the_remaining_epochs():
    rates = _rates("cosine", 6, n_epochs=6, warmup_epochs=2)
    assert_allclose(rates, [2 / 3, 4 / 3, 2.0, 2 * C1, 1.0, 2 * C3], rtol=1e-15)


def test_cosine_keeps_its_last_rate_after_max_iter_epochs():
    rates = _rates("cosine", 7, n_epochs=4)
    assert rates[4:] == [rates[3]] * 3


def test_step_multiplies_by_gamma_every_step_size_epochs_after_the_warm_up():
    rates = _rates("step", 7, warmup_epochs=1, step_size=2, gamma=0.5)
    assert rates == [1.0, 2.0, 2.0, 1.0, 1.0, 0.5, 0.5]
    assert _rates("step", 3, step_size=1, gamma=0.1) == pytest.approx([2.0, 0.2, 0.02])


def test_warmup_factor_rises_to_one():
    assert [warmup_factor(e, 3) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def _run_epochs(ours, theirs, n_epochs, set_rate=None, steps_per_epoch=3, seed=0):
    """Feed both optimizers the same gradients; ``set_rate(theirs, rate)`` imposes
    our schedule's rate on scikit-learn's at the start of each epoch."""
    rng = np.random.RandomState(seed)
    shapes = [(3, 4), (4,)]
    params = [rng.standard_normal(s) for s in shapes]
    flat = np.concatenate([p.ravel() for p in params])
    ours = ours(flat)
    theirs = theirs(params)
    for epoch in range(n_epochs):
        if set_rate is not None:
            set_rate(theirs, ours.scheduled_rate)
        for _ in range(steps_per_epoch):
            grads = [rng.standard_normal(s) for s in shapes]
            ours.update_params(flat, np.concatenate([g.ravel() for g in grads]))
            theirs.update_params(params, grads)
        ours.iteration_ends(10 * (epoch + 1))
        theirs.iteration_ends(10 * (epoch + 1))
    assert_allclose(flat, np.concatenate([p.ravel() for p in params]), rtol=1e-12)
    return ours, theirs


@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_fixed_schedules_are_unchanged_from_scikit_learn(schedule, nesterov):
    kwargs = dict(momentum=0.8, nesterov=nesterov, power_t=0.4)
    ours, theirs = _run_epochs(lambda p: SGDOptimizer(p, 0.1, schedule, **kwargs),
                               lambda p: SkSGD(p, 0.1, schedule, **kwargs), 5)
    assert ours.learning_rate == theirs.learning_rate
    if schedule == "invscaling":
        assert ours.learning_rates == [0.1] + [0.1 / (10 * e + 1) ** 0.4 for e in range(1, 5)]
    else:
        assert ours.learning_rates == [0.1] * 5


def test_sgd_adaptive_divides_by_five_like_scikit_learn_and_records_each_epoch():
    ours = SGDOptimizer(np.zeros(3), 1e-5, "adaptive")
    theirs = SkSGD([np.zeros(3)], 1e-5, "adaptive")
    decisions = []
    for epoch in range(4):
        ours.iteration_ends(epoch)
        theirs.iteration_ends(epoch)
        decisions.append((ours.trigger_stopping("x", False), theirs.trigger_stopping("x", False)))
        assert ours.learning_rate == theirs.learning_rate
    assert decisions == [(False, False), (False, False), (True, True), (True, True)]
    assert ours.learning_rates == pytest.approx([1e-5, 2e-6, 4e-7, 4e-7])


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_adam_keeps_a_constant_rate_for_mlp_schedules_like_scikit_learn(schedule):
    kwargs = dict(beta_1=0.8, beta_2=0.95, epsilon=1e-6)
    ours, theirs = _run_epochs(lambda p: AdamOptimizer(p, 0.01, lr_schedule=schedule, **kwargs),
                               lambda p: SkAdam(p, 0.01, **kwargs), 4)
    assert ours.learning_rate == theirs.learning_rate
    assert ours.learning_rates == [0.01] * 4
    assert ours.trigger_stopping("x", False)


def _set_sgd_rate(theirs, rate):
    theirs.learning_rate = rate


def _set_adam_rate(theirs, rate):
    theirs.learning_rate_init = rate  # scikit-learn's Adam derives each step's rate from it


@pytest.mark.parametrize("schedule, kwargs, expected", [
    ("cosine", dict(n_epochs=4), [0.1, 0.1 * C1, 0.05, 0.1 * C3]),
    ("cosine", dict(n_epochs=5, warmup_epochs=1), [0.05, 0.1, 0.1 * C1, 0.05, 0.1 * C3]),
    ("step", dict(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
    ("step", dict(warmup_epochs=3, step_size=1, gamma=0.5), [0.025, 0.05, 0.075, 0.1, 0.05]),
])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_new_schedules_drive_both_solvers_at_the_recorded_rate(solver, schedule, kwargs,
                                                              expected):
    n = len(expected)
    if solver == "sgd":
        ours, _ = _run_epochs(lambda p: SGDOptimizer(p, 0.1, schedule, momentum=0.7, **kwargs),
                              lambda p: SkSGD(p, 0.1, "constant", momentum=0.7), n,
                              set_rate=_set_sgd_rate)
    else:
        ours, _ = _run_epochs(lambda p: AdamOptimizer(p, 0.1, lr_schedule=schedule, **kwargs),
                              lambda p: SkAdam(p, 0.1), n, set_rate=_set_adam_rate)
    assert_allclose(ours.learning_rates, expected, rtol=1e-14)
    assert ours.epoch == n


@pytest.mark.parametrize("make", [
    lambda lr, **kw: SGDOptimizer(np.zeros(2), lr, "plateau", **kw),
    lambda lr, **kw: AdamOptimizer(np.zeros(2), lr, lr_schedule="plateau", **kw),
])
def test_plateau_multiplies_by_gamma_on_each_stall_and_stops_below_1e_6(make, capsys):
    opt = make(1e-4, gamma=0.1)
    opt.iteration_ends(1)
    assert not opt.trigger_stopping("Stalled.", verbose=True)
    assert "Setting learning rate to 0.000010" in capsys.readouterr().out
    opt.iteration_ends(2)
    assert not opt.trigger_stopping("Stalled.", verbose=False)
    assert opt.scheduled_rate == pytest.approx(1e-6)
    opt.iteration_ends(3)
    assert opt.trigger_stopping("Stalled.", verbose=False)
    assert opt.learning_rates == pytest.approx([1e-4, 1e-5, 1e-6])


@pytest.mark.parametrize("make", [
    lambda lr, **kw: SGDOptimizer(np.zeros(2), lr, "plateau", **kw),
    lambda lr, **kw: AdamOptimizer(np.zeros(2), lr, lr_schedule="plateau", **kw),
])
def test_plateau_from_the_defaults_stops_at_1e_6_despite_the_rounding_of_its_product(make):
    # 1e-3 * 0.1 * 0.1 * 0.1 is 1.0000000000000002e-06 in float64: a stall at that
    # rate stops training, as one at 1e-6 does, not after a reduction to 1e-7
    opt = make(1e-3, gamma=0.1)
    decisions = [opt.trigger_stopping("x", False) for _ in range(4)]
    assert decisions == [False, False, False, True]
    assert opt.scheduled_rate == pytest.approx(1e-6)


def test_plateau_reductions_during_the_warm_up_scale_its_target():
    opt = SGDOptimizer(np.zeros(2), 0.3, "plateau", warmup_epochs=2, gamma=0.5)
    assert opt.scheduled_rate == pytest.approx(0.1)
    assert not opt.trigger_stopping("x", False)  # target 0.15, warm-up 1/3
    assert opt.scheduled_rate == pytest.approx(0.05)
    for epoch in range(3):
        opt.iteration_ends(epoch)
    assert opt.learning_rates == pytest.approx([0.05, 0.1, 0.15])
    assert opt.scheduled_rate == pytest.approx(0.15)


def test_cosine_and_step_stop_on_a_stall_like_constant():
    assert SGDOptimizer(np.zeros(2), 0.1, "cosine", n_epochs=5).trigger_stopping("x", False)
    assert AdamOptimizer(np.zeros(2), lr_schedule="step").trigger_stopping("x", False)


def test_cosine_needs_more_epochs_than_its_warm_up():
    with pytest.raises(ValueError, match=r"lr_warmup_epochs=5 must be < max_iter=5"):
        SGDOptimizer(np.zeros(2), 0.1, "cosine", n_epochs=5, warmup_epochs=5)
    with pytest.raises(ValueError, match=r"max_iter=None"):
        AdamOptimizer(np.zeros(2), lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"learning_rate='cosin'"):
        AdamOptimizer(np.zeros(2), lr_schedule="cosin")


def test_a_pickled_schedule_resumes_where_it_stopped():
    opt = AdamOptimizer(np.zeros(4), 0.1, lr_schedule="cosine", n_epochs=6, warmup_epochs=1)
    for epoch in range(3):
        opt.update_params(np.zeros(4), np.ones(4))
        opt.iteration_ends(epoch)
    clone = pickle.loads(pickle.dumps(opt))
    assert clone.learning_rates == opt.learning_rates
    for o in (opt, clone):
        o.iteration_ends(3)
    assert clone.learning_rates == opt.learning_rates
    assert clone.scheduled_rate == opt.scheduled_rate


@pytest.mark.parametrize("make, rate", [
    (lambda: SGDOptimizer(np.zeros(3), 0.1, "adaptive"), 0.02),
    (lambda: AdamOptimizer(np.zeros(3), 0.01), 0.01),
])
def test_an_optimizer_pickled_before_schedules_loads_with_a_fixed_schedule(make, rate):
    opt = make()
    opt.trigger_stopping("x", False)
    state = opt.__getstate__()
    for name in ("n_epochs", "warmup_epochs", "step_size", "gamma", "epoch", "learning_rates",
                 "plateau_rate", "scheduled_rate"):
        del state[name]
    if isinstance(opt, AdamOptimizer):
        del state["lr_schedule"]
    old = type(opt).__new__(type(opt))
    old.__setstate__(state)
    assert old.scheduled_rate == pytest.approx(rate)
    old.iteration_ends(1)
    assert old.learning_rates == [pytest.approx(rate)]
