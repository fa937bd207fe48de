"""Fixtures for the training tests."""

import pytest
from train_helpers import blobs


@pytest.fixture
def data():
    """A train and a validation split of a 3-class blob problem."""
    X, y = blobs()
    return (X[:180], y[:180]), (X[180:], y[180:])
