"""Risk grades from 12-month PD bands.

The band table is data (``ml/data/grade_bands.csv`` by default), not code: each row is
``grade,pd_min,pd_max,label_zh,label_en``, best grade first, bands contiguous and covering
[0, 1]. A PD falls in the band with ``pd_min <= pd < pd_max`` (the last band includes 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

DEFAULT_BANDS_PATH = Path(__file__).with_name("data") / "grade_bands.csv"
_REQUIRED = ("grade", "pd_min", "pd_max", "label_zh", "label_en")


class GradeTableError(ValueError):
    """The band table is malformed (missing column, gap, overlap, unordered, out of [0, 1])."""


@dataclass(frozen=True)
class GradeBand:
    grade: str
    pd_min: float
    pd_max: float
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class GradeScale:
    """An ordered set of PD bands, best (lowest PD) first."""

    bands: tuple[GradeBand, ...]

    def __post_init__(self) -> None:
        if len(self.bands) < 2:
            raise GradeTableError("a grade table needs at least two bands")
        if self.bands[0].pd_min != 0.0 or self.bands[-1].pd_max != 1.0:
            raise GradeTableError("grade bands must start at PD 0 and end at PD 1")
        seen: set[str] = set()
        for prev, band in zip(self.bands, self.bands[1:], strict=False):
            if band.pd_min != prev.pd_max:
                raise GradeTableError(
                    f"grade band {band.grade!r} starts at {band.pd_min}, "
                    f"but {prev.grade!r} ends at {prev.pd_max}: bands must be contiguous"
                )
        for band in self.bands:
            if not band.pd_min < band.pd_max:
                raise GradeTableError(f"grade band {band.grade!r} is empty or reversed")
            if band.grade in seen:
                raise GradeTableError(f"grade {band.grade!r} appears twice")
            seen.add(band.grade)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_csv_text(cls, text: str) -> GradeScale:
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise GradeTableError(f"grade table lacks column(s): {', '.join(missing)}")
        bands = []
        for line, row in enumerate(reader, start=2):
            try:
                bands.append(
                    GradeBand(
                        grade=row["grade"].strip(),
                        pd_min=float(row["pd_min"]),
                        pd_max=float(row["pd_max"]),
                        label_zh=row["label_zh"].strip(),
                        label_en=row["label_en"].strip(),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise GradeTableError(f"grade table line {line}: {exc}") from None
        return cls(tuple(bands))

    @classmethod
    def from_csv(cls, path: str | Path = DEFAULT_BANDS_PATH) -> GradeScale:
        return cls.from_csv_text(Path(path).read_text(encoding="utf-8"))

    def to_csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_REQUIRED)
        for b in self.bands:
            writer.writerow([b.grade, repr(b.pd_min), repr(b.pd_max), b.label_zh, b.label_en])
        return out.getvalue()

    # -- lookups ------------------------------------------------------------------------------
    @property
    def grades(self) -> list[str]:
        return [b.grade for b in self.bands]

    @property
    def upper_edges(self) -> npt.NDArray[np.float64]:
        """Inner band edges (``pd_max`` of every band but the last), increasing."""
        return np.array([b.pd_max for b in self.bands[:-1]], dtype=np.float64)

    def index(self, pd_: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Band index per PD (0 = best). NaN PDs raise ``ValueError``."""
        arr = np.asarray(pd_, dtype=np.float64)
        if np.isnan(arr).any():
            raise ValueError("cannot grade a missing PD")
        return np.searchsorted(self.upper_edges, arr, side="right")

    def grade(self, pd_: float) -> str:
        return self.bands[int(self.index(pd_))].grade

    def grade_many(self, pd_: npt.ArrayLike) -> npt.NDArray[np.object_]:
        return np.asarray(self.grades, dtype=object)[self.index(pd_)]

    def band(self, grade: str) -> GradeBand:
        for b in self.bands:
            if b.grade == grade:
                return b
        raise KeyError(grade)


def load_grade_scale(path: str | Path | None = None) -> GradeScale:
    """Load the band table (default: the packaged ``ml/data/grade_bands.csv``)."""
    return GradeScale.from_csv(DEFAULT_BANDS_PATH if path is None else path)
