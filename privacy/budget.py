"""The privacy budget of one source dataset: the ledger's arithmetic, nothing else.

Every release made from a source dataset (a DP fit, a DP statistic) spends part of one
total (epsilon, delta). Releases compose by basic composition, so a budget is the total
and a list of charges whose epsilons and deltas add; a charge that would take either sum
past its total is refused before anything is recorded. Storage, locking and the catalog
belong to ``pipelines``; this module only decides what is affordable.

Sums use ``math.fsum`` (exact, independent of the order of the charges) and a charge
is accepted when it exceeds the remaining budget by no more than a relative ``1e-12``
of the total: charges written as decimals (0.1 + 0.2) overshoot their decimal total
(0.3) by an ulp, and a plan that uses up its budget exactly must not be refused for it.
``spent()`` reports at most the total, so the ledger never shows a total exceeded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from synthgen.core.errors import ConfigError, SynthgenError

#: Relative slack, of the total, for float rounding in the sums of charges.
TOLERANCE = 1e-12


class BudgetExceededError(SynthgenError):
    """A charge would spend more epsilon or delta than remains of a source's budget."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _number(value: object, name: str, *, upper: float | None = None) -> float:
    ok = (
        not isinstance(value, bool | np.bool_)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(float(value))
        and float(value) >= 0
        and (upper is None or float(value) < upper)
    )
    if not ok:
        bound = f" and < {upper:g}" if upper is not None else ""
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0{bound}")
    return float(value)


def _timestamp(value: object) -> str:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.utcoffset() is not None and not parsed.utcoffset():
            return value
    raise ConfigError(
        f"at={value!r} must be an ISO 8601 timestamp in UTC, e.g. "
        "datetime.now(timezone.utc).isoformat()"
    )


def _left(total: float, spent: float) -> float:
    left = total - spent
    return 0.0 if left <= TOLERANCE * total else left


def _within(spent: float, total: float) -> bool:
    return spent <= total + TOLERANCE * total


@dataclass(frozen=True)
class Charge:
    """One release from the source: what it was, what it cost, when (UTC, ISO 8601)."""

    label: str
    epsilon: float
    delta: float
    at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ConfigError(
                f"label={self.label!r} must be a non-empty string saying what was released "
                "(e.g. 'fit tvae adult_synth v3')"
            )
        object.__setattr__(self, "epsilon", _number(self.epsilon, "epsilon"))
        object.__setattr__(self, "delta", _number(self.delta, "delta", upper=1.0))
        _timestamp(self.at)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "epsilon": self.epsilon, "delta": self.delta, "at": self.at}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Charge:
        keys = {"label", "epsilon", "delta", "at"}
        if not isinstance(d, Mapping) or set(d) != keys:
            got = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise ConfigError(f"a charge must be a dict with keys {sorted(keys)}, got {got}")
        return cls(**d)


class PrivacyBudget:
    """Total (epsilon, delta) of one source dataset and the charges against it."""

    def __init__(self, epsilon: float, delta: float, source: str = "") -> None:
        self.epsilon = _number(epsilon, "epsilon")
        if self.epsilon == 0:
            raise ConfigError("epsilon=0 leaves no budget; the total epsilon must be > 0")
        self.delta = _number(delta, "delta", upper=1.0)
        if not isinstance(source, str):
            raise ConfigError(f"source={source!r} must be a string (the source dataset's name)")
        self.source = source
        self.charges: list[Charge] = []

    # ---- arithmetic
    def spent(self) -> tuple[float, float]:
        eps = math.fsum(c.epsilon for c in self.charges)
        delta = math.fsum(c.delta for c in self.charges)
        return min(eps, self.epsilon), min(delta, self.delta)

    def remaining(self) -> tuple[float, float]:
        """What is left; a rounding residue (<= 1e-12 of the total) counts as nothing."""
        eps, delta = self.spent()
        return _left(self.epsilon, eps), _left(self.delta, delta)

    def can_afford(self, epsilon: float, delta: float) -> bool:
        eps = _number(epsilon, "epsilon")
        d = _number(delta, "delta", upper=1.0)
        return self._fits(eps, d)

    def _fits(self, epsilon: float, delta: float) -> bool:
        eps_total = math.fsum([*(c.epsilon for c in self.charges), epsilon])
        delta_total = math.fsum([*(c.delta for c in self.charges), delta])
        return _within(eps_total, self.epsilon) and _within(delta_total, self.delta)

    def charge(self, epsilon: float, delta: float, label: str, at: str | None = None) -> Charge:
        """Record a release costing (epsilon, delta), or refuse it and record nothing."""
        new = Charge(label, epsilon, delta) if at is None else Charge(label, epsilon, delta, at)
        if not self._fits(new.epsilon, new.delta):
            eps_left, delta_left = self.remaining()
            name = f"source {self.source!r}" if self.source else "this source"
            raise BudgetExceededError(
                f"{name}: {new.label!r} plans epsilon={new.epsilon:g}, delta={new.delta:.3g} "
                f"but only epsilon={eps_left:g}, delta={delta_left:.3g} remain of the total "
                f"epsilon={self.epsilon:g}, delta={self.delta:.3g}; plan a release within the "
                "remaining budget (smaller epsilon/delta), or release from a source with "
                "budget left"
            )
        self.charges.append(new)
        return new

    # ---- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "charges": [c.to_dict() for c in self.charges],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace this budget by ``state``; refuse a damaged one (nothing changes then)."""
        keys = {"source", "epsilon", "delta", "charges"}
        if not isinstance(state, Mapping) or set(state) != keys:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ConfigError(f"a budget state must be a dict with keys {sorted(keys)}, got {got}")
        fresh = PrivacyBudget(state["epsilon"], state["delta"], state["source"])
        charges = state["charges"]
        if not isinstance(charges, list | tuple):
            raise ConfigError("a budget state's 'charges' must be a list of charges")
        fresh.charges = [Charge.from_dict(c) for c in charges]
        eps = math.fsum(c.epsilon for c in fresh.charges)
        delta = math.fsum(c.delta for c in fresh.charges)
        if not (_within(eps, fresh.epsilon) and _within(delta, fresh.delta)):
            raise ConfigError(
                f"budget state of source {fresh.source!r} is damaged: its charges add up to "
                f"epsilon={eps:g}, delta={delta:.3g}, more than the total epsilon="
                f"{fresh.epsilon:g}, delta={fresh.delta:.3g}; restore the ledger from a backup"
            )
        self.epsilon, self.delta, self.source = fresh.epsilon, fresh.delta, fresh.source
        self.charges = fresh.charges

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PrivacyBudget:
        budget = cls(1.0, 0.0)
        budget.load_state_dict(state)
        return budget

    def to_json(self) -> str:
        return json.dumps(self.state_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PrivacyBudget:
        try:
            state = json.loads(text)
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"budget JSON cannot be read ({error}); restore it from a backup"
            ) from None
        return cls.from_state_dict(state)

    def __repr__(self) -> str:
        eps, delta = self.spent()
        return (
            f"PrivacyBudget(source={self.source!r}, epsilon {eps:g}/{self.epsilon:g}, "
            f"delta {delta:.3g}/{self.delta:.3g}, {len(self.charges)} charges)"
        )
