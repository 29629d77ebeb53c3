"""Privacy: DP-SGD, accounting, DP-safe preprocessing, the budget ledger, audits and attacks.

The bottom layer of the project: it imports only ``synthgen.core`` from synthgen, so
``import privacy`` loads no generator. Names are imported on first use (opacus takes
seconds to import and only DP training needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # empirical attacks
    "DCRResult": "privacy.attacks",
    "dcr_overfitting": "privacy.attacks",
    "exact_copy_rate": "privacy.attacks",
    "knn_euclidean": "privacy.attacks",
    "membership_inference_auc": "privacy.attacks",
    "nearest_distances": "privacy.attacks",
    "nndr": "privacy.attacks",
    # accounting
    "DPConfig": "privacy.accounting",
    "PrivacySpent": "privacy.accounting",
    "Accountant": "privacy.accounting",
    "solve_noise_multiplier": "privacy.accounting",
    "planned_epsilon": "privacy.accounting",
    "PREPROCESSING_SHARE": "privacy.accounting",
    "PREPROCESSING_CAP": "privacy.accounting",
    # the ledger's arithmetic
    "PrivacyBudget": "privacy.budget",
    "Charge": "privacy.budget",
    "BudgetExceededError": "privacy.budget",
    # DP-safe preprocessing
    "release_statistics": "privacy.preprocessing",
    "PreprocessingRelease": "privacy.preprocessing",
    "columns_needing_release": "privacy.preprocessing",
    # audits
    "CanaryAudit": "privacy.audit",
    "audit_from_scores": "privacy.audit",
    "run_canary_audit": "privacy.audit",
    "make_canaries": "privacy.audit",
    "epsilon_lower_bound": "privacy.audit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'privacy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
