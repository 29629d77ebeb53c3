"""The privacy ledger: a budget per source dataset and every charge against it.

A DP training is charged in two steps, both under a lock on the budget row (``SELECT
... FOR UPDATE`` on PostgreSQL; SQLite's write lock, taken by ``BEGIN IMMEDIATE``):

1. ``reserve``: before training starts, the planned (epsilon, delta) is checked against
   what is left (``privacy.PrivacyBudget`` does the arithmetic) and recorded as a
   reservation; a plan that does not fit is refused and nothing is recorded.
2. ``commit_charge``: after training, the model row is inserted and the reservation
   becomes the model's actual receipt (never more than planned), in one transaction.

Because the reservation counts from step 1, concurrent jobs cannot overspend: with a
budget that allows five, exactly five of eight simultaneous reservations succeed. A
reservation whose training failed or whose process died stays counted (``failed`` /
``reserved``): the data may already have been touched, so the ledger assumes it was.

Budgets are kept per source *name* (all its versions share one budget): a new version
of a source usually holds the same people, so its releases compose with the old ones.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from pipelines.catalog import models as m
from privacy.budget import BudgetExceededError, PrivacyBudget
from synthgen.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.orm import Session

#: Default total delta of a budget, in units of the default delta of one DP fit
#: (1 / n**1.5): room for ten default fits, and below 1/n for any table over 100 rows.
DEFAULT_DELTA_FITS = 10
COUNTED = ("reserved", "spent", "failed")


def default_budget_delta(n_rows: int) -> float:
    return min(DEFAULT_DELTA_FITS / float(n_rows) ** 1.5, 0.5 / n_rows)


class LedgerMixin:
    """Ledger methods of ``Catalog`` (they use its sessions, lookups and locks)."""

    # ---------------------------------------------------------------- budgets
    def _budget_row(self, session: Session, source: str, *, lock: bool) -> m.Budget:
        from pipelines.catalog.catalog import parse_ref

        name, version = parse_ref(source)
        if version is not None:
            raise ConfigError(
                f"budgets belong to a source name, not a version: use {name!r}, not {source!r}"
            )
        query = select(m.Budget).where(m.Budget.namespace == self.namespace, m.Budget.name == name)
        if lock:
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None:
            self._find(session, name)  # a clear error when the source itself is unknown
            raise BudgetExceededError(
                f"source {name!r} has no privacy budget yet, so no DP release can be charged "
                f"to it; set one first: synthgen catalog budget {name} --set EPSILON"
            )
        return row

    @staticmethod
    def _arithmetic(row: m.Budget) -> PrivacyBudget:
        return PrivacyBudget.from_state_dict(
            {
                "source": row.name,
                "epsilon": row.epsilon,
                "delta": row.delta,
                "charges": [
                    {
                        "label": c.label,
                        "epsilon": c.epsilon,
                        "delta": c.delta,
                        "at": c.created_at.isoformat(),
                    }
                    for c in row.charges
                    if c.status in COUNTED
                ],
            }
        )

    def set_budget(self, source: str, epsilon: float, delta: float | None = None) -> dict[str, Any]:
        """Create or change the total budget of ``source``; never below what is spent."""
        from pipelines.catalog.catalog import check_name

        name = check_name(source, "source name")
        with self.session() as session:
            dataset = self._find(session, name)
            if delta is None:
                delta = default_budget_delta(max(int(dataset.row_count), 2))
            PrivacyBudget(epsilon, delta, name)  # validates the numbers
            self._lock(session, f"budget:{self.namespace}/{name}")
            row = session.scalars(
                select(m.Budget)
                .where(m.Budget.namespace == self.namespace, m.Budget.name == name)
                .with_for_update()
            ).first()
            if row is None:
                row = m.Budget(namespace=self.namespace, name=name, epsilon=epsilon, delta=delta)
                session.add(row)
                session.flush()
            else:
                spent_eps, spent_delta = self._arithmetic(row).spent()
                if epsilon < spent_eps or delta < spent_delta:
                    raise ConfigError(
                        f"source {name!r} has already spent epsilon={spent_eps:g}, "
                        f"delta={spent_delta:.3g}; a total of epsilon={epsilon:g}, "
                        f"delta={delta:.3g} would be below that. Choose a total at least as large"
                    )
                row.epsilon, row.delta = float(epsilon), float(delta)
                row.updated_at = m.utcnow()
            session.flush()
            return self._budget_dict(row)

    def budget(self, source: str) -> dict[str, Any]:
        """Total, spent, remaining and every charge of ``source``'s budget."""
        with self.session() as session:
            return self._budget_dict(self._budget_row(session, source, lock=False))

    def _budget_dict(self, row: m.Budget) -> dict[str, Any]:
        arithmetic = self._arithmetic(row)
        spent_eps, spent_delta = arithmetic.spent()
        left_eps, left_delta = arithmetic.remaining()
        return {
            "source": row.name,
            "epsilon": row.epsilon,
            "delta": row.delta,
            "spent_epsilon": spent_eps,
            "spent_delta": spent_delta,
            "remaining_epsilon": left_eps,
            "remaining_delta": left_delta,
            "charges": [
                {
                    "id": c.id,
                    "label": c.label,
                    "epsilon": c.epsilon,
                    "delta": c.delta,
                    "status": c.status,
                    "model_id": c.model_id,
                    "job_run_id": c.job_run_id,
                    "created_at": c.created_at.isoformat(),
                }
                for c in row.charges
            ],
        }

    # ---------------------------------------------------------------- charges
    def reserve(
        self,
        source: str,
        epsilon: float,
        delta: float,
        label: str,
        *,
        job_run_id: int | None = None,
    ) -> int:
        """Reserve a planned release; refused (BudgetExceededError) if it does not fit."""
        with self.session() as session:
            self._lock(session, f"budget:{self.namespace}/{parse_source(source)}")
            row = self._budget_row(session, source, lock=True)
            self._arithmetic(row).charge(epsilon, delta, label)  # raises, recording nothing
            charge = m.Charge(
                budget_id=row.id,
                epsilon=float(epsilon),
                delta=float(delta),
                label=label,
                status="reserved",
                job_run_id=job_run_id,
            )
            session.add(charge)
            session.flush()
            return charge.id

    def commit_charge(
        self,
        charge_id: int,
        model: Any,
        *,
        model_path: str | os.PathLike | None = None,
        job_run_id: int | None = None,
        cache_key: str | None = None,
    ) -> int:
        """Insert the model row and turn the reservation into its receipt, atomically."""
        spent = getattr(model, "privacy_spent", None)
        if spent is None:
            raise ConfigError(
                "the model has no privacy_spent: it was not trained with dp=DPConfig(...), so "
                "there is nothing to charge"
            )
        uri, digest = self.store_model_file(model_path) if model_path else (None, None)
        with self.session() as session:
            charge = session.get(m.Charge, int(charge_id), with_for_update=True)
            if charge is None or charge.status != "reserved":
                state = "does not exist" if charge is None else f"is {charge.status}"
                raise DataError(f"charge {charge_id} {state}; reserve a new one")
            if not _within(spent.epsilon, charge.epsilon) or not _within(spent.delta, charge.delta):
                raise BudgetExceededError(
                    f"the model spent epsilon={spent.epsilon:g}, delta={spent.delta:.3g}, more "
                    f"than its reservation (epsilon={charge.epsilon:g}, delta="
                    f"{charge.delta:.3g}); the reservation stays counted in full"
                )
            row = self._model_row(
                model,
                uri=uri,
                digest=digest,
                source_id=self._latest_id(session, charge.budget.name),
                job_run_id=job_run_id or charge.job_run_id,
                cache_key=cache_key,
            )
            session.add(row)
            session.flush()
            charge.epsilon, charge.delta = float(spent.epsilon), float(spent.delta)
            charge.status, charge.model_id = "spent", row.id
            return row.id

    def fail_charge(self, charge_id: int, error: str = "") -> None:
        """Mark a reservation whose training failed; it stays counted in full."""
        with self.session() as session:
            charge = session.get(m.Charge, int(charge_id), with_for_update=True)
            if charge is not None and charge.status == "reserved":
                charge.status = "failed"
                charge.label = (
                    (charge.label + f" (failed: {error})")[:200] if error else charge.label
                )

    def _latest_id(self, session: Session, name: str) -> int:
        return self._find(session, name).id

    def train_private(
        self,
        source: str,
        model: Any,
        data: Any = None,
        *,
        model_path: str | os.PathLike | None = None,
        label: str | None = None,
        job_run_id: int | None = None,
        cache_key: str | None = None,
        **fit_kwargs: Any,
    ) -> int:
        """Fit a DP model on ``source`` (its latest version unless ``data`` is given),
        charging the source's budget: refused before training if the plan does not fit,
        the model row and the receipt committed together afterwards. Returns the model id.
        """
        dp = getattr(model, "dp", None)
        if dp is None and callable(getattr(model, "resolved_dp", None)):
            # AIM / MST take their budget as epsilon= too: the same DPConfig either way
            dp = model.resolved_dp()
        if dp is None:
            raise ConfigError(
                f"{type(model).__name__} has dp=None; train_private needs a model built with "
                "dp=privacy.DPConfig(epsilon=...)"
            )
        name = parse_source(source)
        frame = self.read(name) if data is None else data
        planned_delta, _ = dp.resolve_delta(len(frame))
        charge_id = self.reserve(
            name,
            dp.epsilon,
            planned_delta,
            label or f"fit {type(model).__name__} on {name} ({len(frame)} rows)",
            job_run_id=job_run_id,
        )
        try:
            model.fit(frame, **fit_kwargs)
            if model_path is not None:
                model.save(model_path)
        except BaseException as exc:
            self.fail_charge(charge_id, f"{type(exc).__name__}: {exc}"[:120])
            raise
        return self.commit_charge(
            charge_id, model, model_path=model_path, job_run_id=job_run_id, cache_key=cache_key
        )


def parse_source(source: str) -> str:
    from pipelines.catalog.catalog import parse_ref

    name, version = parse_ref(source)
    if version is not None:
        raise ConfigError(
            f"budgets belong to a source name, not a version: use {name!r}, not {source!r}"
        )
    return name


def _within(value: float, limit: float) -> bool:
    return value <= limit or math.isclose(value, limit, rel_tol=1e-12, abs_tol=0.0)
