"""``torch.distributions``: probability distributions over chainrule tensors.

Continuous (``Normal``, ``LogNormal``, ``Laplace``, ``Uniform``, ``Exponential``, ``Gamma``,
``Beta``), discrete (``Bernoulli``, ``Categorical``, ``OneHotCategorical``, ``Poisson``,
``Binomial``, ``Geometric``, ``Multinomial``), more univariate ones (``Cauchy``, ``HalfNormal``,
``StudentT``, ``Chi2``, ``Gumbel``), multivariate ones (``Dirichlet``, ``MultivariateNormal``,
``Independent``) and ``TransformedDistribution`` with its transforms, with
``log_prob``, ``sample``/``rsample``, ``entropy``, ``mean``/``variance``/``stddev``,
``batch_shape``/``event_shape``, PyTorch's ``validate_args`` errors, and ``kl_divergence``.
"""

from __future__ import annotations

from . import constraints, transforms, utils
from .continuous import Beta, Exponential, Gamma, Laplace, LogNormal, Normal, Uniform
from .discrete import Bernoulli, Binomial, Categorical, Multinomial, OneHotCategorical, Poisson
from .distribution import Distribution
from .kl import kl_divergence, register_kl
from .multivariate import Dirichlet, Independent, MultivariateNormal
from .transforms import (
    AbsTransform,
    AffineTransform,
    ComposeTransform,
    ExpTransform,
    PowerTransform,
    SigmoidTransform,
    TanhTransform,
    Transform,
    TransformedDistribution,
)
from .univariate import Cauchy, Chi2, Geometric, Gumbel, HalfNormal, StudentT

__all__ = [
    "AbsTransform",
    "AffineTransform",
    "Cauchy",
    "Chi2",
    "ComposeTransform",
    "ExpTransform",
    "Geometric",
    "Gumbel",
    "HalfNormal",
    "Multinomial",
    "PowerTransform",
    "SigmoidTransform",
    "StudentT",
    "TanhTransform",
    "Transform",
    "TransformedDistribution",
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
    "transforms",
    "utils",
    "kl_divergence",
    "register_kl",
]
