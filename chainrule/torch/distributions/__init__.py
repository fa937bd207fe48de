"""``torch.distributions``: probability distributions over chainrule tensors.

Continuous (``Normal``, ``LogNormal``, ``Laplace``, ``Uniform``, ``Exponential``, ``Gamma``,
``Beta``), discrete (``Bernoulli``, ``Categorical``, ``OneHotCategorical``, ``Poisson``,
``Binomial``) and multivariate (``Dirichlet``, ``MultivariateNormal``, ``Independent``), with
``log_prob``, ``sample``/``rsample``, ``entropy``, ``mean``/``variance``/``stddev``,
``batch_shape``/``event_shape``, PyTorch's ``validate_args`` errors, and ``kl_divergence``.
"""

from __future__ import annotations

from . import constraints
from .continuous import Beta, Exponential, Gamma, Laplace, LogNormal, Normal, Uniform
from .discrete import Bernoulli, Binomial, Categorical, OneHotCategorical, Poisson
from .distribution import Distribution
from .kl import kl_divergence, register_kl
from .multivariate import Dirichlet, Independent, MultivariateNormal

__all__ = [
    "Bernoulli",
    "Beta",
    "Binomial",
    "Categorical",
    "Dirichlet",
    "Distribution",
    "Exponential",
    "Gamma",
    "Independent",
    "Laplace",
    "LogNormal",
    "MultivariateNormal",
    "Normal",
    "OneHotCategorical",
    "Poisson",
    "Uniform",
    "constraints",
    "kl_divergence",
    "register_kl",
]
