"""Real datasets bundled with the package, so demos and tests never download anything.

Sources and licences are listed in ``synthgen/datasets/data/SOURCES.md``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from synthgen.errors import ConfigError

#: name -> (file, read_csv options, target column)
_DATASETS: dict[str, tuple[str, dict, str]] = {
    "adult": ("adult.csv.gz", {"skipinitialspace": True, "na_values": ["?"]}, "income"),
    "credit_default": ("credit_default.csv.gz", {}, "default.payment.next.month"),
}


def names() -> list[str]:
    """Names accepted by ``load``."""
    return sorted(_DATASETS)


def target_of(name: str) -> str:
    """The label column of a bundled dataset (what utility metrics predict)."""
    return _spec(name)[2]


def _spec(name: str) -> tuple[str, dict, str]:
    try:
        return _DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(names())}") from None


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame with proper dtypes and NaN for missing."""
    filename, options, _ = _spec(name)
    with resources.files(__package__).joinpath("data", filename).open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip", **options)
    return frame


#: Category lists published in a dataset's documentation (UCI's ``adult.names``): public
#: knowledge, so differentially private training may use them at no privacy cost.
#: Columns whose documentation marks unknown values ("?") are nullable.
_PUBLIC_CATEGORIES: dict[str, dict[str, tuple[list[str], bool]]] = {
    "adult": {
        "workclass": (
            [
                "Private",
                "Self-emp-not-inc",
                "Self-emp-inc",
                "Federal-gov",
                "Local-gov",
                "State-gov",
                "Without-pay",
                "Never-worked",
            ],
            True,
        ),
        "education": (
            [
                "Bachelors",
                "Some-college",
                "11th",
                "HS-grad",
                "Prof-school",
                "Assoc-acdm",
                "Assoc-voc",
                "9th",
                "7th-8th",
                "12th",
                "Masters",
                "1st-4th",
                "10th",
                "Doctorate",
                "5th-6th",
                "Preschool",
            ],
            False,
        ),
        "marital-status": (
            [
                "Married-civ-spouse",
                "Divorced",
                "Never-married",
                "Separated",
                "Widowed",
                "Married-spouse-absent",
                "Married-AF-spouse",
            ],
            False,
        ),
        "occupation": (
            [
                "Tech-support",
                "Craft-repair",
                "Other-service",
                "Sales",
                "Exec-managerial",
                "Prof-specialty",
                "Handlers-cleaners",
                "Machine-op-inspct",
                "Adm-clerical",
                "Farming-fishing",
                "Transport-moving",
                "Priv-house-serv",
                "Protective-serv",
                "Armed-Forces",
            ],
            True,
        ),
        "relationship": (
            ["Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"],
            False,
        ),
        "race": (["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"], False),
        "sex": (["Female", "Male"], False),
        "native-country": (
            [
                "United-States",
                "Cambodia",
                "England",
                "Puerto-Rico",
                "Canada",
                "Germany",
                "Outlying-US(Guam-USVI-etc)",
                "India",
                "Japan",
                "Greece",
                "South",
                "China",
                "Cuba",
                "Iran",
                "Honduras",
                "Philippines",
                "Italy",
                "Poland",
                "Jamaica",
                "Vietnam",
                "Mexico",
                "Portugal",
                "Ireland",
                "France",
                "Dominican-Republic",
                "Laos",
                "Ecuador",
                "Taiwan",
                "Haiti",
                "Columbia",
                "Hungary",
                "Guatemala",
                "Nicaragua",
                "Scotland",
                "Thailand",
                "Yugoslavia",
                "El-Salvador",
                "Trinadad&Tobago",
                "Peru",
                "Hong",
                "Holand-Netherlands",
            ],
            True,
        ),
        "income": ([">50K", "<=50K"], False),
    },
}


def public_schema(name: str, frame: pd.DataFrame | None = None):
    """The schema of a bundled dataset with its documented category lists marked public.

    Kinds and dtypes come from ``frame`` (default: the bundled table), the category
    lists from the dataset's documentation, never from the rows; numeric bounds are left
    to the DP release. Pass it to a ``dp=`` fit: documented categories cost no privacy
    budget and rare ones are not lost to DP category discovery.
    """
    from synthgen.schema import Schema

    _spec(name)
    frame = load(name) if frame is None else frame
    schema = Schema.infer(frame)
    for column, (categories, nullable) in _PUBLIC_CATEGORIES.get(name, {}).items():
        if column in schema.names:
            spec = schema[column]
            spec.categories = sorted(categories)
            spec.nullable = nullable
            spec.public = True
    return schema


__all__ = ["load", "names", "public_schema", "target_of"]
