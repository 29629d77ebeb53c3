"""Hostile-user fuzz of the public API: odd frames through infer, fit, sample, save, load,
evaluate.

``python -m benchmarks.fuzz --frames 2000 --seed 0`` builds that many random frames (1-60
rows, 1-5 columns of odd dtypes and names), runs each through ``Schema.infer``, one
backend's ``fit`` + ``sample`` with a tiny budget, ``save`` / ``load_model`` and
``evaluation.evaluate``, and prints how many calls were made, the ``SynthgenError``s by
class, and every other exception (a broken promise) with a one-line repro.

The generators and the checks here are the ones ``tests/test_fuzz.py`` drives with
hypothesis; this plain loop is for long runs (the suite runs a few hundred frames).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Column generators by name; each takes (rows, with_nulls, rng) and returns a Series.
COLUMN_KINDS: tuple[str, ...] = (
    "int",
    "int_id",
    "int_huge",
    "uint8",
    "float",
    "float_decimals",
    "float_inf",
    "float_huge",
    "float_tiny",
    "float32",
    "lognormal",
    "constant",
    "all_null",
    "bool",
    "Int64",
    "boolean",
    "string",
    "object_str",
    "many_str",
    "category",
    "category_int",
    "datetime",
    "datetime_day",
    "datetime_tz",
    "datetime_s",
    "datetime_far",
    "timedelta",
    "mixed",
    "object_num",
    "period",
    "interval",
    "list",
    "dict",
    "bytes",
    "decimal",
    "date",
    "time",
    "mixed_tz",
    "complex",
)
#: Kinds that ``Schema.infer`` must refuse with a SchemaError / DataError naming the column.
REFUSED_KINDS: tuple[str, ...] = (
    "float_inf",
    "datetime_far",
    "mixed",
    "period",
    "interval",
    "list",
    "dict",
    "bytes",
    "decimal",
    "date",
    "time",
    "mixed_tz",
    "complex",
)
#: Kinds that must work end to end (fit, sample, save, load, evaluate).
MODELLED_KINDS: tuple[str, ...] = tuple(k for k in COLUMN_KINDS if k not in REFUSED_KINDS)
REFUSED_SHARE = 0.1
#: Column names: odd strings ("" and "a b" must work) and non-strings (must be refused).
STRING_NAMES: tuple[str, ...] = ("a", "b", "a b", "", "0", "id", "user_id", "x.y", "é", "col-1")
ODD_NAMES: tuple[Any, ...] = (0, 1.5, None)
ODD_NAME_SHARE = 0.03
BACKENDS: tuple[str, ...] = ("TVAE", "CTGAN", "TabDDPM", "TabularAR")
#: Cheap evaluation sections (the model-based ones are skipped below 20 rows anyway).
EVAL_SECTIONS: tuple[str, ...] = ("fidelity", "privacy")


@dataclass(frozen=True)
class FrameSpec:
    """Everything that determines one fuzz case; its repr is a one-line repro."""

    rows: int
    columns: tuple[tuple[Any, str, bool], ...]  # (name, generator, with nulls)
    seed: int
    backend: str


def _with_nulls(values: pd.Series, with_nulls: bool, rng: np.random.Generator) -> pd.Series:
    if not with_nulls or len(values) == 0:
        return values
    mask = rng.random(len(values)) < 0.3
    mask[0] = True
    out = values.copy()
    if isinstance(out.dtype, pd.CategoricalDtype) or out.dtype == object:
        out = out.astype(out.dtype)
    out[mask] = None
    return out


def make_column(kind: str, n: int, with_nulls: bool, rng: np.random.Generator) -> pd.Series:
    """One column of ``n`` values of the named kind (nulls in ~30% of rows if asked)."""
    values = _MAKERS[kind](n, rng)
    return values if kind == "all_null" else _with_nulls(values, with_nulls, rng)


def _datetimes(n: int, rng: np.random.Generator) -> pd.Series:
    base = np.datetime64("2020-01-01T00:00:00", "s")
    offsets = rng.integers(-(10**8), 10**8, n)
    return pd.Series(pd.to_datetime(base + offsets.astype("timedelta64[s]")))


_MAKERS: dict[str, Callable[[int, np.random.Generator], pd.Series]] = {
    "int": lambda n, r: pd.Series(r.integers(-5, 50, n)),
    "int_id": lambda n, r: pd.Series(np.arange(n) + 1000),
    "int_huge": lambda n, r: pd.Series(r.integers(-(2**62), 2**62, n)),
    "uint8": lambda n, r: pd.Series(r.integers(0, 255, n).astype(np.uint8)),
    "float": lambda n, r: pd.Series(r.normal(0, 1, n)),
    "float_decimals": lambda n, r: pd.Series(np.round(r.lognormal(3, 1, n), 2)),
    "float_inf": lambda n, r: pd.Series(np.where(r.random(n) < 0.2, np.inf, r.normal(size=n))),
    "float_huge": lambda n, r: pd.Series(r.choice([-1.0, 1.0], n) * 10.0 ** r.uniform(100, 300, n)),
    "float_tiny": lambda n, r: pd.Series(10.0 ** r.uniform(-300, -100, n)),
    "float32": lambda n, r: pd.Series(r.normal(5, 2, n).astype(np.float32)),
    "lognormal": lambda n, r: pd.Series(r.lognormal(0, 4, n)),
    "constant": lambda n, r: pd.Series(np.full(n, 7.5)),
    "all_null": lambda n, r: pd.Series([np.nan] * n),
    "bool": lambda n, r: pd.Series(r.random(n) < 0.4),
    "Int64": lambda n, r: pd.Series(r.integers(0, 1000, n)).astype("Int64"),
    "boolean": lambda n, r: pd.Series(r.random(n) < 0.5).astype("boolean"),
    "string": lambda n, r: pd.Series(r.choice(["x", "y", "z z"], n)).astype("string"),
    "object_str": lambda n, r: pd.Series(r.choice(["Paris", "Lyon", ""], n).astype(object)),
    "many_str": lambda n, r: pd.Series([f"s{v}" for v in r.integers(0, 10**6, n)], dtype=object),
    "category": lambda n, r: pd.Series(r.choice(["lo", "mid", "hi"], n)).astype("category"),
    "category_int": lambda n, r: pd.Series(r.integers(0, 4, n)).astype("category"),
    "datetime": lambda n, r: _datetimes(n, r),
    "datetime_day": lambda n, r: pd.Series(
        pd.to_datetime("2021-03-01") + pd.to_timedelta(r.integers(0, 400, n), unit="D")
    ),
    "datetime_tz": lambda n, r: _datetimes(n, r).dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo"),
    "datetime_s": lambda n, r: _datetimes(n, r).astype("datetime64[s]"),
    "datetime_far": lambda n, r: pd.Series(
        np.datetime64("2500-01-01", "s") + r.integers(0, 3 * 10**9, n).astype("m8[s]")
    ),
    "timedelta": lambda n, r: pd.Series(pd.to_timedelta(r.integers(0, 10**6, n), unit="s")),
    "mixed": lambda n, r: pd.Series([1, "a", 2.5, None, True][: max(1, n)] * n, dtype=object)[:n],
    "object_num": lambda n, r: pd.Series(list(r.integers(0, 5, n)), dtype=object),
    "period": lambda n, r: pd.Series(pd.period_range("2020-01", periods=n, freq="M")),
    "interval": lambda n, r: pd.Series(pd.cut(r.random(n), 3)),
    "list": lambda n, r: pd.Series([[int(v), 1] for v in r.integers(0, 3, n)], dtype=object),
    "dict": lambda n, r: pd.Series([{"k": int(v)} for v in r.integers(0, 3, n)], dtype=object),
    "bytes": lambda n, r: pd.Series([b"ab", b"cd"] * n, dtype=object)[:n],
    "decimal": lambda n, r: pd.Series([decimal.Decimal(int(v)) / 4 for v in r.integers(0, 9, n)]),
    "date": lambda n, r: pd.Series(
        [datetime.date(2020, 1, 1) + datetime.timedelta(days=int(v)) for v in r.integers(0, 99, n)]
    ),
    "time": lambda n, r: pd.Series([datetime.time(int(v), 30) for v in r.integers(0, 24, n)]),
    "mixed_tz": lambda n, r: pd.Series(
        [
            pd.Timestamp("2020-01-01", tz=["UTC", "Europe/Paris"][int(v)])
            for v in r.integers(0, 2, n)
        ],
        dtype=object,
    ),
    "complex": lambda n, r: pd.Series(r.normal(size=n) + 1j * r.normal(size=n)),
}


def build_frame(spec: FrameSpec) -> pd.DataFrame:
    """The frame of ``spec`` (deterministic: the same spec gives the same frame)."""
    rng = np.random.default_rng(spec.seed)
    series = [
        make_column(kind, spec.rows, with_nulls, rng).reset_index(drop=True)
        for _, kind, with_nulls in spec.columns
    ]
    # built positionally, so that duplicate names survive (and must then be refused)
    frame = pd.concat(series, axis=1, ignore_index=True)
    frame.columns = [name for name, _, _ in spec.columns]
    return frame


def random_spec(rng: np.random.Generator) -> FrameSpec:
    """A random case, drawn with the weights of the hypothesis strategy in tests/test_fuzz.py:
    mostly kinds that must work (so fit, sample, save and evaluate get exercised), some
    that must be refused, and now and then a non-string or duplicate column name."""
    columns = []
    for _ in range(int(rng.integers(1, 6))):
        pool = REFUSED_KINDS if rng.random() < REFUSED_SHARE else MODELLED_KINDS
        kind = pool[int(rng.integers(len(pool)))]
        names = ODD_NAMES if rng.random() < ODD_NAME_SHARE else STRING_NAMES
        name = names[int(rng.integers(len(names)))]
        columns.append((name, kind, bool(rng.random() < 0.3)))
    return FrameSpec(
        rows=int(rng.integers(1, 61)),
        columns=tuple(unique_names(columns) if rng.random() < 0.9 else columns),
        seed=int(rng.integers(2**31)),
        backend=BACKENDS[int(rng.integers(len(BACKENDS)))],
    )


def unique_names(columns: list[tuple[Any, str, bool]]) -> list[tuple[Any, str, bool]]:
    """Rename repeated names (``c<index>``) so that the case gets past the duplicate check."""
    seen: set[str] = set()
    out = []
    for index, (name, kind, nulls) in enumerate(columns):
        out.append((f"c{index}" if repr(name) in seen else name, kind, nulls))
        seen.add(repr(name))
    return out


def make_model(backend: str):
    """The backend with the smallest budget that still runs every code path.

    One torch thread: these networks are tiny, and on a busy machine competing threads
    made a 4-step CTGAN fit take seconds.
    """
    import synthgen as sg

    common = {"batch_size": 16, "seed": 0, "device": "cpu", "progress": False, "num_threads": 1}
    if backend == "TVAE":
        return sg.TVAE(epochs=1, **common)
    if backend == "CTGAN":
        return sg.CTGAN(epochs=1, pac=1, **common)
    if backend == "TabDDPM":
        return sg.TabDDPM(steps=2, num_timesteps=10, sample_steps=2, hidden=(16,), **common)
    return sg.TabularAR(epochs=1, embedding_dim=4, hidden_dim=16, **common)


Record = Callable[[str, BaseException | None], None]


def _had_no_nulls(series: pd.Series) -> bool:
    return bool(series.notna().all())


def _has_inf(series: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return False
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return bool(np.isinf(values).any())


def check_output(real: pd.DataFrame, synthetic: pd.DataFrame, what: str) -> None:
    """The promises on generated frames: the input's columns (same order) and dtypes, and
    no NaN / inf in a column where the input had none."""
    assert list(synthetic.columns) == list(real.columns), (
        f"{what}: columns {list(synthetic.columns)} != {list(real.columns)}"
    )
    for index, name in enumerate(real.columns):
        got, want = synthetic.iloc[:, index], real.iloc[:, index]
        assert got.dtype == want.dtype, f"{what}: column {name!r} is {got.dtype}, not {want.dtype}"
        if len(got) and _had_no_nulls(want):
            assert _had_no_nulls(got), f"{what}: column {name!r} has nulls; the input had none"
        if not _has_inf(want):
            assert not _has_inf(got), f"{what}: column {name!r} has inf; the input had none"


def exercise(df: pd.DataFrame, backend: str, workdir: str, record: Record) -> None:
    """Run one frame through the public API, calling ``record(call, error)`` per call.

    A ``SynthgenError`` ends the case (the input was refused: that is a kept promise).
    Any other exception, or a broken output promise (``AssertionError``), propagates.
    """
    import synthgen as sg
    from evaluation import evaluate

    def call(name: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        try:
            result = fn()
        except sg.SynthgenError as exc:
            record(name, exc)
            return False, None
        except BaseException as exc:
            record(name, exc)
            raise
        record(name, None)
        return True, result

    ok, _ = call("Schema.infer", lambda: sg.Schema.infer(df))
    if not ok:
        return
    model = make_model(backend)
    ok, _ = call(f"{backend}.fit", lambda: model.fit(df))
    if not ok:
        return
    n = max(1, len(df))
    ok, synthetic = call("sample", lambda: model.sample(n, seed=1))
    if not ok:
        return
    check_output(df, synthetic, f"{backend}.sample")
    path = os.path.join(workdir, "model.synth")
    ok, _ = call("save", lambda: model.save(path))
    if ok:
        ok, loaded = call("load_model", lambda: sg.load_model(path))
        if ok:
            ok, again = call("sample(loaded)", lambda: loaded.sample(n, seed=1))
            if ok:
                check_output(df, again, f"{backend}.sample after load_model")
    call("evaluate", lambda: evaluate(df, synthetic, metrics=list(EVAL_SECTIONS)))


def replay(spec: FrameSpec) -> None:
    """Run one case and let any exception through (the repro printed by ``main``)."""
    with tempfile.TemporaryDirectory() as workdir:
        exercise(build_frame(spec), spec.backend, workdir, lambda name, exc: None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames to generate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frame generator")
    args = parser.parse_args(argv)
    os.environ.setdefault("SYNTHGEN_NO_PROGRESS", "1")
    import warnings

    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(args.seed)
    calls: collections.Counter[str] = collections.Counter()
    refused: collections.Counter[str] = collections.Counter()
    broken: list[tuple[str, str, FrameSpec]] = []
    start = time.perf_counter()
    for _ in range(args.frames):
        spec = random_spec(rng)

        def record(name: str, exc: BaseException | None) -> None:
            calls[name] += 1
            if exc is not None and isinstance(exc, _synthgen_error()):
                refused[type(exc).__name__] += 1

        with tempfile.TemporaryDirectory() as workdir:
            try:
                exercise(build_frame(spec), spec.backend, workdir, record)
            except Exception as exc:  # a broken promise: keep a repro and go on
                where = traceback.extract_tb(exc.__traceback__)[-1]
                message = str(exc).splitlines()[0][:120] if str(exc) else ""
                broken.append(
                    (
                        f"{type(exc).__name__}: {message}",
                        f"{os.path.relpath(where.filename)}:{where.lineno}",
                        spec,
                    )
                )
    elapsed = time.perf_counter() - start
    print(_summary(args.frames, elapsed, calls, refused, broken))
    return 1 if broken else 0


def _synthgen_error() -> type:
    from synthgen.errors import SynthgenError

    return SynthgenError


def _summary(frames, elapsed, calls, refused, broken) -> str:
    lines = [f"# fuzz: {frames} frames in {elapsed:.0f} s", "", "| call | count |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in sorted(calls.items())]
    lines += ["", "| SynthgenError | count |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in refused.most_common()]
    lines += ["", f"other exceptions (broken promises): {len(broken)}"]
    kinds = collections.Counter((error, where) for error, where, _ in broken)
    for (error, where), count in kinds.most_common():
        spec = next(s for e, w, s in broken if (e, w) == (error, where))
        lines.append(f"- {count} x {error} at {where}")
        lines.append(f'  repro: python -c "from benchmarks.fuzz import *; replay({spec!r})"')
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
