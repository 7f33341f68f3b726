"""Stochastic optimizers over one flat parameter array.

The split follows ``sklearn.neural_network._stochastic_optimizers``:
``update_params(params, grads)`` after each batch, ``iteration_ends(t)``
after each epoch, ``trigger_stopping(msg, verbose)`` when the loss stalls.
Unlike scikit-learn's, ``params`` and ``grads`` are single arrays (the
network's flat views), updated in place without per-layer Python loops and
without temporaries: the optimizers keep one scratch array.
"""

import numpy as np


class BaseOptimizer:
    """Base class: a learning rate and the stopping rule of constant schedules."""

    def __init__(self, params, learning_rate_init):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self._tmp = np.zeros_like(params)

    def update_params(self, params, grads):
        """Update ``params`` in place from ``grads`` (both 1-D, same shape)."""
        raise NotImplementedError

    def iteration_ends(self, time_step):
        """Called at the end of each epoch; ``time_step`` is the number of samples seen."""

    def trigger_stopping(self, msg, verbose):
        """Return True to stop training; adaptive schedules lower the rate instead."""
        if verbose:
            print(msg + " Stopping.")
        return True

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
    lr_schedule : {'constant', 'invscaling', 'adaptive'}
        As in ``MLPClassifier``: ``invscaling`` sets
        ``learning_rate = learning_rate_init / (t + 1) ** power_t`` at each epoch
        end (``t`` = samples seen); ``adaptive`` divides it by 5 each time the
        loss stalls, and stops once it is <= 1e-6.
    momentum : float
    nesterov : bool
    power_t : float
    """

    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        super().__init__(params, learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = np.zeros_like(params)

    def _state_like(self):
        return self.velocity

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
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
    """

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        super().__init__(params, learning_rate_init)
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
        m, v, tmp = self.m, self.v, self._tmp
        m *= self.beta_1
        np.multiply(grads, 1 - self.beta_1, out=tmp)
        m += tmp
        v *= self.beta_2
        np.multiply(grads, grads, out=tmp)
        tmp *= 1 - self.beta_2
        v += tmp
        self.learning_rate = float(self.learning_rate_init * np.sqrt(1 - self.beta_2 ** self.t)
                              / (1 - self.beta_1 ** self.t))
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= self.learning_rate
        params -= tmp
