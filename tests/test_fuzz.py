"""Fuzz the public API with odd frames: only ``SynthgenError`` may escape.

Hypothesis draws frames of 1-60 rows and 1-5 columns (ints and floats with NaN, inf,
huge and tiny magnitudes, constant and all-null columns, bool, nullable Int64 / boolean
/ string, object strings, categoricals, naive and tz-aware datetimes with NaT, durations,
mixed objects, periods, intervals, lists, bytes, Decimal, dates, times, mixed time zones;
names such as "", "a b", 0 or duplicates) and runs each through ``Schema.infer``, one
backend's ``fit`` + ``sample`` with a tiny budget, ``save`` / ``load_model`` and
``evaluate`` (see ``benchmarks/fuzz.py``, whose generators and checks this drives).

Asserted: every exception is a ``SynthgenError``; generated frames keep the input's
columns (same order) and dtypes; no NaN / inf appears in a column where the input had
none. ``derandomize=True`` keeps CI stable; ``SYNTHGEN_FUZZ_EXAMPLES`` scales the run
(200 by default, about a minute on two cores).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synthgen as sg

# ``benchmarks`` is a folder of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fuzz import (  # noqa: E402
    BACKENDS,
    MODELLED_KINDS,
    ODD_NAMES,
    REFUSED_KINDS,
    STRING_NAMES,
    FrameSpec,
    build_frame,
    check_output,
    exercise,
    unique_names,
)

EXAMPLES = int(os.environ.get("SYNTHGEN_FUZZ_EXAMPLES", "200"))

# weights as in benchmarks.fuzz.random_spec: ~11% refused kinds, ~3% non-string names
_kinds = st.sampled_from(MODELLED_KINDS * 4 + REFUSED_KINDS)
_names = st.sampled_from(STRING_NAMES * 10 + ODD_NAMES)
_columns = st.tuples(
    st.lists(st.tuples(_names, _kinds, st.booleans()), min_size=1, max_size=5),
    st.integers(0, 9),
).map(lambda drawn: tuple(unique_names(drawn[0]) if drawn[1] else drawn[0]))
specs = st.builds(
    FrameSpec,
    rows=st.integers(1, 60),
    columns=_columns,
    seed=st.integers(0, 2**31 - 1),
    backend=st.sampled_from(BACKENDS),
)


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=specs)
def test_only_synthgen_errors_escape(spec: FrameSpec) -> None:
    calls: list[tuple[str, BaseException | None]] = []
    with tempfile.TemporaryDirectory() as workdir:
        exercise(build_frame(spec), spec.backend, workdir, lambda *call: calls.append(call))
    assert calls and calls[0][0] == "Schema.infer"
    for name, error in calls:
        assert error is None or isinstance(error, sg.SynthgenError), (name, error)


def test_check_output_catches_broken_promises() -> None:
    """The fuzz checks themselves can fail (a test that cannot fail proves nothing)."""
    real = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    check_output(real, real.copy(), "same")
    with pytest.raises(AssertionError, match="columns"):
        check_output(real, real[["b", "a"]], "order")
    with pytest.raises(AssertionError, match="float64"):
        check_output(real, real.astype(float), "dtype")
    with pytest.raises(AssertionError, match="nulls"):
        check_output(real, real.assign(b=[0.5, None]), "nulls")
    with pytest.raises(AssertionError, match="inf"):
        check_output(real, real.assign(b=[0.5, float("inf")]), "inf")


@pytest.mark.parametrize("kind", REFUSED_KINDS)
def test_refused_kinds_are_refused_by_name(kind: str) -> None:
    """Each kind the fuzz counts as 'must refuse' is refused at Schema.infer, naming it."""
    frame = build_frame(FrameSpec(rows=30, columns=(("odd col", kind, False),), seed=0, backend=""))
    with pytest.raises(sg.SynthgenError, match="'odd col'"):
        sg.Schema.infer(frame)
