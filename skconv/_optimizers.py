"""Stochastic optimizers over one flat parameter array, and their learning-rate schedules.

The split follows ``sklearn.neural_network._stochastic_optimizers``:
``update_params(params, grads)`` after each batch, ``iteration_ends(t)``
after each epoch, ``trigger_stopping(msg, verbose)`` when the loss stalls.
Unlike scikit-learn's, ``params`` and ``grads`` are single arrays (the
network's flat views), updated in place without per-layer Python loops and
without temporaries: the optimizers keep one scratch array.

Schedules. ``'constant'``, ``'invscaling'`` and ``'adaptive'`` keep their
``MLPClassifier`` meaning (SGD only; Adam runs them at a constant rate, as
scikit-learn's does). Three more work with both solvers, per epoch:

- ``'cosine'``: ``lr0 * (1 + cos(pi * (e - W) / (T - W))) / 2`` in epoch ``e``
  (from 0) after ``W`` warm-up epochs, over ``T`` = ``max_iter`` epochs; the
  epochs after ``T`` (``partial_fit``) keep the rate of epoch ``T - 1``.
- ``'step'``: ``lr0 * gamma ** ((e - W) // step_size)`` after the warm-up.
- ``'plateau'``: ``lr0``, multiplied by ``gamma`` each time the training loss
  (or validation score) stalls for more than ``n_iter_no_change`` epochs
  (``MLPClassifier``'s count, and PyTorch's ``ReduceLROnPlateau``'s for its
  ``patience``); training stops when a stall finds the rate already <= 1e-6
  (``'adaptive'``'s rule, with ``gamma`` for its 1/5 and for both solvers).

The warm-up (``W`` = ``lr_warmup_epochs`` epochs, for these three) rises
linearly: ``lr * (e + 1) / (W + 1)`` in epoch ``e < W``. Each optimizer
records the rate of each epoch in ``learning_rates`` (Adam: before its bias
correction, which it folds into ``learning_rate``).
"""

import math

import numpy as np

from ._kernels import _update
from . import _engine

#: Every value of the estimators' ``learning_rate`` parameter.
LR_SCHEDULES = ("constant", "invscaling", "adaptive", "cosine", "step", "plateau")

#: The rate below which an 'adaptive' or 'plateau' schedule stops training.
MIN_ADAPTIVE_RATE = 1e-6


def warmup_factor(epoch, warmup_epochs):
    """The linear warm-up's factor in ``epoch`` (from 0): ``(e + 1) / (W + 1)``, then 1."""
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    return 1.0


def scheduled_learning_rate(schedule, epoch, learning_rate_init, *, n_epochs=None,
                            warmup_epochs=0, step_size=10, gamma=0.1):
    """The learning rate of a ``'cosine'`` or ``'step'`` schedule in ``epoch``.

    Parameters
    ----------
    schedule : {'cosine', 'step'}
    epoch : int
        Epochs ended before this one (0 in the first).
    learning_rate_init : float
    n_epochs : int
        ``'cosine'`` only: the epochs it decays over (``max_iter``), > ``warmup_epochs``.
    warmup_epochs : int
    step_size : int
        ``'step'`` only: epochs between two reductions.
    gamma : float
        ``'step'`` only: the factor of each reduction.

    Returns
    -------
    rate : float
    """
    lr0 = float(learning_rate_init)
    if schedule == "cosine":
        epoch = min(epoch, n_epochs - 1)
        if epoch < warmup_epochs:
            return lr0 * warmup_factor(epoch, warmup_epochs)
        return lr0 * (1 + math.cos(math.pi * (epoch - warmup_epochs)
                                   / (n_epochs - warmup_epochs))) / 2
    if schedule == "step":
        if epoch < warmup_epochs:
            return lr0 * warmup_factor(epoch, warmup_epochs)
        return lr0 * gamma ** ((epoch - warmup_epochs) // step_size)
    raise ValueError(f"schedule={schedule!r} has no closed form; use 'cosine' or 'step'")


class BaseOptimizer:
    """Base class: the learning-rate schedule and the stopping rule of fixed schedules.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    learning_rate_init : float
    lr_schedule : str, one of ``LR_SCHEDULES``
    n_epochs : int or None
        ``max_iter``: the epochs a ``'cosine'`` schedule decays over.
    warmup_epochs : int
        Linear warm-up epochs of ``'cosine'``, ``'step'`` and ``'plateau'``.
    step_size : int
        Epochs between two reductions of ``'step'``.
    gamma : float in (0, 1)
        The reduction factor of ``'step'`` and ``'plateau'``.

    Attributes
    ----------
    scheduled_rate : float
        The schedule's rate for the current epoch.
    learning_rate : float
        The rate the next update uses (Adam: with its bias correction).
    learning_rates : list of float
        The schedule's rate in each ended epoch.
    epoch : int
        Epochs ended.
    """

    def __init__(self, params, learning_rate_init, lr_schedule="constant", *, n_epochs=None,
                 warmup_epochs=0, step_size=10, gamma=0.1):
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"learning_rate={lr_schedule!r} is not one of {list(LR_SCHEDULES)}")
        if lr_schedule == "cosine" and (n_epochs is None or warmup_epochs >= n_epochs):
            raise ValueError(
                f"lr_warmup_epochs={warmup_epochs} must be < max_iter={n_epochs} for "
                "learning_rate='cosine': the decay starts after the warm-up"
            )
        self.learning_rate_init = learning_rate_init
        self.lr_schedule = lr_schedule
        self.n_epochs = n_epochs
        self.warmup_epochs = warmup_epochs
        self.step_size = step_size
        self.gamma = gamma
        self.epoch = 0
        self.learning_rates = []
        self.plateau_rate = float(learning_rate_init)
        self._set_rate(self._rate_for_epoch())
        self._tmp = np.zeros_like(params)

    def _rate_for_epoch(self):
        """The rate of the schedule in epoch ``self.epoch``."""
        if self.lr_schedule in ("cosine", "step"):
            return scheduled_learning_rate(
                self.lr_schedule, self.epoch, self.learning_rate_init, n_epochs=self.n_epochs,
                warmup_epochs=self.warmup_epochs, step_size=self.step_size, gamma=self.gamma)
        if self.lr_schedule == "plateau":
            return self.plateau_rate * warmup_factor(self.epoch, self.warmup_epochs)
        return float(self.learning_rate_init)

    def _set_rate(self, rate):
        self.scheduled_rate = rate
        self.learning_rate = rate

    def update_params(self, params, grads):
        """Update ``params`` in place from ``grads`` (both 1-D, same shape)."""
        raise NotImplementedError

    def iteration_ends(self, time_step):
        """Called at the end of each epoch; ``time_step`` is the number of samples seen.

        Records the epoch's rate and sets the next epoch's.
        """
        self.learning_rates.append(self.scheduled_rate)
        self.epoch += 1
        if self.lr_schedule in ("cosine", "step", "plateau"):
            self._set_rate(self._rate_for_epoch())

    def trigger_stopping(self, msg, verbose):
        """Return True to stop training; 'plateau' (and SGD's 'adaptive') lower the rate instead."""
        if self.lr_schedule != "plateau":
            if verbose:
                print(msg + " Stopping.")
            return True
        # the rate is a product of gammas: 1e-3 * 0.1 ** 3 is 1.0000000000000002e-06,
        # which must stop as 1e-6 does, not take one more reduction to 1e-7
        if self.plateau_rate <= MIN_ADAPTIVE_RATE * (1 + 1e-9):
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.plateau_rate *= self.gamma
        self._set_rate(self._rate_for_epoch())
        if verbose:
            print(msg + " Setting learning rate to %f" % self.scheduled_rate)
        return False

    def check_state(self, params):
        """Refuse state arrays (a loaded file's) unlike ``params``: the update
        kernels index them by ``params``, unchecked."""
        for name, value in vars(self).items():
            if name.startswith("_"):  # scratch, made like the state at load
                continue
            if isinstance(value, np.ndarray) and (value.shape != params.shape
                                                  or value.dtype != params.dtype):
                raise ValueError(
                    f"the saved {type(self).__name__}'s {name} (shape {value.shape}, "
                    f"{value.dtype}) does not match the network's parameters (shape "
                    f"{params.shape}, {params.dtype}): the file is damaged or was not "
                    "written by skconv"
                )

    def ensure_writeable(self):
        """Copy state arrays that were loaded read-only (``mmap_mode='r'``)."""
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                setattr(self, name, np.array(value))

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tmp"] = None
        return state

    def __setstate__(self, state):
        # optimizers pickled before the schedules existed: a fixed schedule
        state.setdefault("lr_schedule", "constant")
        for name, default in (("n_epochs", None), ("warmup_epochs", 0), ("step_size", 10),
                              ("gamma", 0.1), ("epoch", 0), ("learning_rates", [])):
            state.setdefault(name, default)
        state.setdefault("plateau_rate", float(state["learning_rate_init"]))
        state.setdefault("scheduled_rate", float(state["learning_rate"]
                                                 if "velocity" in state
                                                 else state["learning_rate_init"]))
        self.__dict__.update(state)
        self._tmp = np.zeros_like(self._state_like())

    def _state_like(self):
        raise NotImplementedError


class SGDOptimizer(BaseOptimizer):
    """Stochastic gradient descent with (Nesterov) momentum.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    learning_rate_init : float
    lr_schedule : str, one of ``LR_SCHEDULES``
        As in ``MLPClassifier``: ``invscaling`` sets
        ``learning_rate = learning_rate_init / (t + 1) ** power_t`` at each epoch
        end (``t`` = samples seen); ``adaptive`` divides it by 5 each time the
        loss stalls, and stops once it is <= 1e-6. The others: see the module.
    momentum : float
    nesterov : bool
    power_t : float
    n_epochs, warmup_epochs, step_size, gamma
        The schedules' parameters, as in :class:`BaseOptimizer`.
    """

    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5, *, n_epochs=None, warmup_epochs=0,
                 step_size=10, gamma=0.1):
        super().__init__(params, learning_rate_init, lr_schedule, n_epochs=n_epochs,
                         warmup_epochs=warmup_epochs, step_size=step_size, gamma=gamma)
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = np.zeros_like(params)

    def _state_like(self):
        return self.velocity

    def iteration_ends(self, time_step):
        super().iteration_ends(time_step)
        if self.lr_schedule == "invscaling":
            self._set_rate(float(self.learning_rate_init) / (time_step + 1) ** self.power_t)

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if self.learning_rate <= MIN_ADAPTIVE_RATE:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_rate(self.learning_rate / 5.0)
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

    def update_params(self, params, grads):
        # v = momentum * v - lr * g; then params += v, or, for Nesterov,
        # params += momentum * v - lr * g
        v, tmp = self.velocity, self._tmp
        np.multiply(grads, self.learning_rate, out=tmp)
        v *= self.momentum
        v -= tmp
        if self.nesterov:
            params -= tmp
            np.multiply(v, self.momentum, out=tmp)
            params += tmp
        else:
            params += v


class AdamOptimizer(BaseOptimizer):
    """Adam (Kingma and Ba, 2014), with the bias correction folded into the rate.

    Parameters
    ----------
    params : ndarray of shape (n_params,)
    learning_rate_init : float
    beta_1, beta_2 : float in [0, 1)
    epsilon : float
    lr_schedule : str, one of ``LR_SCHEDULES``
        ``'constant'``, ``'invscaling'`` and ``'adaptive'`` all keep the rate
        constant, as in ``MLPClassifier``; ``'cosine'``, ``'step'`` and
        ``'plateau'`` schedule the rate that the bias correction multiplies.
    n_epochs, warmup_epochs, step_size, gamma
        The schedules' parameters, as in :class:`BaseOptimizer`.
    """

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, *, lr_schedule="constant", n_epochs=None, warmup_epochs=0,
                 step_size=10, gamma=0.1):
        super().__init__(params, learning_rate_init, lr_schedule, n_epochs=n_epochs,
                         warmup_epochs=warmup_epochs, step_size=step_size, gamma=gamma)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)

    def _state_like(self):
        return self.m

    def update_params(self, params, grads):
        self.t += 1
        self.learning_rate = float(self.scheduled_rate * np.sqrt(1 - self.beta_2 ** self.t)
                                   / (1 - self.beta_1 ** self.t))
        _update.adam_update(params, grads, self.m, self.v, self.beta_1, self.beta_2,
                            self.learning_rate, self.epsilon,
                            _engine.threads_for(params.size, params.size * _engine.WORK_PER_ELEMENT))
