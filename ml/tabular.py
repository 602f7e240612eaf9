"""Tables in: CSV loading for ``python -m ml train --table`` and input coercion for the estimators.

Policy for a training CSV (documented here and in ``python -m ml train --help``):

* unknown target column, a target with one class, more than two classes without ``--positive``,
  or a ``--positive`` value that never occurs → :class:`TableError` (exit code 2);
* rows with a missing target → dropped, with a warning giving the count;
* a constant or all-missing feature column → **dropped with a warning** naming the column (it
  cannot carry information; refusing would make any real extract with an empty column unusable);
  if no usable feature column is left → :class:`TableError`;
* a numeric-looking column (at least 90 % of its non-missing values parse as numbers) with
  non-numeric garbage → :class:`TableError` naming the column, the first bad line of the file and
  its value. Columns below that share are categorical.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, validate_data

NUMERIC_SHARE = 0.9
"""Share of parseable non-missing values above which a text column counts as numeric."""

MISSING_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "-", "?")


class TableError(ValueError):
    """A training or scoring table cannot be used; the message names the file/column/line."""


@dataclass
class LoadedTable:
    """A validated training table."""

    X: pd.DataFrame
    y: npt.NDArray[np.int64]
    positive: str
    categorical: list[str]
    warnings: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# CSV loading
# ---------------------------------------------------------------------------------------------
def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV as text columns (types decided later); raises :class:`TableError`."""
    p = Path(path)
    if not p.is_file():
        raise TableError(f"{p}: no such file")
    try:
        frame = pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_values=list(MISSING_TOKENS),
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError(f"{p}: cannot read as CSV: {first}") from None
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise TableError(f"{p}: the table has no rows or no columns")
    dupes = [c for c in frame.columns if str(c).endswith(".1") and str(c)[:-2] in frame.columns]
    if dupes:
        raise TableError(f"{p}: duplicate column name {dupes[0][:-2]!r}")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _column_types(frame: pd.DataFrame, source: str) -> tuple[dict[str, pd.Series], list[str]]:
    """Parse each text column to float or keep it categorical; raise on numeric garbage."""
    out: dict[str, pd.Series] = {}
    categorical: list[str] = []
    for col in frame.columns:
        text = frame[col].astype(object).where(frame[col].notna(), None)
        text = text.map(lambda v: v.strip() if isinstance(v, str) else v)
        present = text.notna()
        parsed = pd.to_numeric(text, errors="coerce")
        n_present = int(present.sum())
        if n_present == 0:
            out[col] = parsed.astype(np.float64)
            continue
        bad = present & parsed.isna()
        share_numeric = 1.0 - float(bad.sum()) / n_present
        if not bad.any():
            out[col] = parsed.astype(np.float64)
        elif share_numeric >= NUMERIC_SHARE:
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(
                f"{source}: column {col!r} is numeric but line {row + 2} has "
                f"non-numeric value {text.iloc[row]!r}"
            )
        else:
            out[col] = text.astype(object)
            categorical.append(col)
    return out, categorical


def encode_target(
    values: pd.Series, target: str, positive: str | None, source: str
) -> tuple[npt.NDArray[np.int64], str]:
    """Map the target column to {0, 1}; returns labels and the positive class (as text)."""
    text = values.astype(str).str.strip()
    classes = sorted(set(text))
    if positive is not None:
        if positive not in classes:
            raise TableError(
                f"{source}: --positive {positive!r} does not occur in target column "
                f"{target!r} (values: {', '.join(classes[:10])})"
            )
        pos = positive
    else:
        if len(classes) == 2 and set(classes) <= {"0", "1", "0.0", "1.0"}:
            pos = "1" if "1" in classes else "1.0"
        elif len(classes) == 2 and {c.lower() for c in classes} == {"true", "false"}:
            pos = next(c for c in classes if c.lower() == "true")
        elif len(classes) < 2:
            pos = classes[0] if classes else ""
        else:
            raise TableError(
                f"{source}: target column {target!r} has values "
                f"{', '.join(repr(c) for c in classes[:10])}; name the positive class with "
                "--positive VALUE"
            )
    y = (text == pos).to_numpy(dtype=np.int64)
    if y.min() == y.max():
        only = classes[0] if classes else "nothing"
        raise TableError(
            f"{source}: target column {target!r} has a single class ({only!r}); "
            "a model needs both outcomes"
        )
    return y, pos


def load_table(path: str | Path, target: str, positive: str | None = None) -> LoadedTable:
    """Load and validate a training CSV (see the module docstring for the policy)."""
    source = str(path)
    frame = read_csv(path)
    if target not in frame.columns:
        raise TableError(
            f"{source}: no target column {target!r}; columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}"
        )
    warnings: list[str] = []
    target_text = frame[target]
    keep = target_text.notna().to_numpy()
    if not keep.all():
        warnings.append(
            f"{source}: dropped {int((~keep).sum())} row(s) with a missing target {target!r}"
        )
        frame = frame.loc[keep].reset_index(drop=True)
        target_text = frame[target]
    y, pos = encode_target(target_text, target, positive, source)
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise TableError(f"{source}: the table has no feature columns besides {target!r}")
    columns, categorical = _column_types(features, source)
    dropped: list[str] = []
    for col, series in list(columns.items()):
        n_unique = series.nunique(dropna=True)
        if series.notna().sum() == 0:
            warnings.append(f"{source}: dropped column {col!r}: all values are missing")
        elif n_unique == 1 and series.notna().all():
            warnings.append(f"{source}: dropped column {col!r}: constant ({series.iloc[0]!r})")
        else:
            continue
        dropped.append(col)
        del columns[col]
    if not columns:
        raise TableError(f"{source}: no usable feature column (all constant or missing)")
    X = pd.DataFrame(columns)
    return LoadedTable(
        X=X,
        y=y,
        positive=pos,
        categorical=[c for c in categorical if c in columns],
        warnings=warnings,
        dropped_columns=dropped,
    )


# ---------------------------------------------------------------------------------------------
# Estimator input coercion (shared by Scorecard and GBMModel)
# ---------------------------------------------------------------------------------------------
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def as_frame(estimator: BaseEstimator, X: Any, *, reset: bool) -> pd.DataFrame:
    """Validate ``X`` like scikit-learn does and return a DataFrame with string column names.

    Arrays must be numeric (NaN allowed, ±inf allowed); DataFrames may hold text/categorical
    columns. Records/check ``n_features_in_`` and ``feature_names_in_`` with scikit-learn's own
    helper so the usual errors and warnings apply.
    """
    if isinstance(X, pd.DataFrame):
        validate_data(estimator, X, reset=reset, skip_check_array=True)
        if X.shape[0] == 0:
            raise ValueError(
                "Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is required."
            )
        if X.shape[1] == 0:
            raise ValueError("Found array with 0 feature(s) while a minimum of 1 is required.")
        frame = X.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame
    arr = check_array(X, dtype="numeric", ensure_all_finite=False, ensure_min_samples=1)
    if np.iscomplexobj(arr):
        raise ValueError("Complex data not supported")
    validate_data(estimator, arr, reset=reset, skip_check_array=True)
    arr = np.asarray(arr, dtype=np.float64)
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def column_kinds(frame: pd.DataFrame, categorical: Iterable[str] | None) -> dict[str, str]:
    """Numeric for numeric/bool dtypes, categorical for text/category dtypes or when forced."""
    forced = set(categorical or ())
    unknown = forced - set(frame.columns)
    if unknown:
        raise ValueError(f"categorical column(s) not in X: {', '.join(sorted(unknown))}")
    kinds = {}
    for col in frame.columns:
        dtype = frame[col].dtype
        if col in forced:
            kinds[col] = CATEGORICAL
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            kinds[col] = NUMERIC
        else:
            kinds[col] = CATEGORICAL
    return kinds


def numeric_column(frame: pd.DataFrame, col: str) -> npt.NDArray[np.float64]:
    """Column as float64; text that is not a number raises ``ValueError`` naming the column."""
    series = frame[col]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    parsed = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"column {col!r} must be numeric; row {row} has value {series.iloc[row]!r}"
        )
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def categorical_column(frame: pd.DataFrame, col: str) -> npt.NDArray[np.object_]:
    """Column as an object array of ``str`` with ``None`` for missing values."""
    series = frame[col]
    out = series.astype(object).where(series.notna(), None).to_numpy(dtype=object)
    for i, v in enumerate(out):
        if v is not None and not isinstance(v, str):
            out[i] = _category_text(v)
    return out


def _category_text(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def table_features(
    path: str | Path, features: Sequence[str], id_column: str | None = None
) -> tuple[pd.DataFrame, npt.NDArray[Any]]:
    """The model's ``features`` from a scoring CSV (typed as in :func:`load_table`) and the
    key per row (``id_column`` values, else the 1-based data row number). Missing feature
    columns raise :class:`FeatureSetError`; other columns are ignored."""
    source = str(path)
    frame = read_csv(path)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise FeatureSetError(f"{source}", missing, [])
    if id_column is not None and id_column not in frame.columns:
        raise TableError(f"{source}: no id column {id_column!r}")
    columns, _categorical = _column_types(frame[list(features)], source)
    keys = (
        frame[id_column].to_numpy(dtype=object)
        if id_column is not None
        else np.arange(1, len(frame) + 1)
    )
    return pd.DataFrame(columns), keys


def check_feature_set(
    model_features: Sequence[str], input_columns: Sequence[str], what: str
) -> None:
    """Raise :class:`FeatureSetError` if ``input_columns`` differ from ``model_features``."""
    got = set(input_columns)
    expected = set(model_features)
    missing = [c for c in model_features if c not in got]
    extra = [c for c in input_columns if c not in expected]
    if missing or extra:
        raise FeatureSetError(what, missing, extra)


class FeatureSetError(ValueError):
    """Input columns differ from the model's feature set (``missing``: the model needs them,
    the input lacks them; ``extra``: the input has them, the model was not trained on them)."""

    def __init__(self, what: str, missing: Sequence[str], extra: Sequence[str]) -> None:
        self.missing = list(missing)
        self.extra = list(extra)
        parts = []
        if self.missing:
            parts.append(f"input lacks column(s) the model needs: {', '.join(self.missing)}")
        if self.extra:
            parts.append(
                f"input has column(s) the model was not trained on: {', '.join(self.extra)}"
            )
        super().__init__(f"{what}: feature set does not match — {'; '.join(parts)}")


# ---------------------------------------------------------------------------------------------
# Synth-shaped record directories
# ---------------------------------------------------------------------------------------------
TEXT_COLUMNS = frozenset(
    {
        "uscc", "name", "region_code", "industry_code", "founded_on", "size_class",
        "authorized_scopes", "period", "tax_type", "rating", "month", "utility", "record_id",
        "record_type", "severity", "decided_on", "publication_ends_on", "repaired_on",
        "provider", "batch_id",
    }
)  # fmt: skip
"""Columns read as text (codes such as region/uscc must keep leading zeros)."""


def read_records(directory: str | Path) -> dict[str, pd.DataFrame]:
    """Read ``<table>.csv`` or ``<table>.parquet`` for every table of :mod:`ml.schema` found in
    ``directory`` (``enterprises`` required; ``truth.csv`` included when present).

    Raises :class:`TableError` naming the directory or file.
    """
    from ml import schema

    root = Path(directory)
    if not root.is_dir():
        raise TableError(f"{root}: no such records directory")
    tables: dict[str, pd.DataFrame] = {}
    for name in [*schema.TABLE_COLUMNS, schema.TRUTH]:
        csv_path, pq_path = root / f"{name}.csv", root / f"{name}.parquet"
        try:
            if pq_path.is_file():
                frame = pd.read_parquet(pq_path)
            elif csv_path.is_file():
                header = pd.read_csv(csv_path, nrows=0).columns
                frame = pd.read_csv(
                    csv_path,
                    dtype={c: str for c in header if c in TEXT_COLUMNS},
                    keep_default_na=True,
                    low_memory=False,
                )
            else:
                continue
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TableError(
                f"{csv_path if csv_path.is_file() else pq_path}: unreadable: {first}"
            ) from None
        tables[name] = frame
    if schema.ENTERPRISES not in tables:
        raise TableError(f"{root}: no enterprises.csv or enterprises.parquet")
    return tables


def binary_target(
    estimator: BaseEstimator, y: Any, n_rows: int
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Validate a binary target like scikit-learn; return ``classes_`` and y as 0/1
    (1 = ``classes_[1]``, the event). Raises ``ValueError`` for None, NaN/inf, a length
    mismatch or anything but exactly two classes."""
    import warnings

    from sklearn.exceptions import DataConversionWarning
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import assert_all_finite, column_or_1d

    name = type(estimator).__name__
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None")
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected.",
            DataConversionWarning,
            stacklevel=3,
        )
    y_arr = column_or_1d(y_arr, warn=False)
    if y_arr.dtype.kind in "fc":
        assert_all_finite(y_arr, input_name="y")
    if len(y_arr) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(y_arr)}")
    check_classification_targets(y_arr)
    classes = np.unique(y_arr)
    if len(classes) != 2:
        raise ValueError(
            "Only binary classification is supported. "
            f"{name} needs exactly two classes; got {len(classes)} class(es)"
        )
    return classes, (y_arr == classes[1]).astype(np.int64)
