"""A scorecard and a LightGBM challenger trained once per session on the same synthetic
population (so they share a hold-out set), for the governance tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from app.services.model_monitoring import train_synthetic
from models import ModelKind

N_ENTERPRISES = 1200
SEED = 7


@dataclass(frozen=True)
class TrainedPair:
    scorecard_dir: Path
    gbm_dir: Path
    X_holdout: pd.DataFrame
    y_holdout: npt.NDArray[np.int64]


@pytest.fixture(scope="session", name="trained_pair")
def trained_pair_fixture(tmp_path_factory: pytest.TempPathFactory) -> TrainedPair:
    card = tmp_path_factory.mktemp("card")
    gbm = tmp_path_factory.mktemp("gbm")
    X, y = train_synthetic(ModelKind.SCORECARD, N_ENTERPRISES, SEED, card)
    X2, y2 = train_synthetic(ModelKind.GBM, N_ENTERPRISES, SEED, gbm)
    pd.testing.assert_frame_equal(X, X2)  # the same hold-out rows for both kinds
    assert (y == y2).all()
    return TrainedPair(card, gbm, X, y)
