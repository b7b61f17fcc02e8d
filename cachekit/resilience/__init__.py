"""Failure handling shared by the network providers: the circuit breaker and fail-open."""

from __future__ import annotations

from .breaker import BreakerState, CircuitBreaker
from .failopen import FailOpen

__all__ = ["BreakerState", "CircuitBreaker", "FailOpen"]
