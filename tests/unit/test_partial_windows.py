"""A window still filling (the last week with no data for its last days, or today's day) is
marked partial, and the anomaly rule never flags it nor learns from it."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from core.monitoring.anomalies import flag_anomalies, flag_complete_anomalies
from core.monitoring.windows import partial_windows, window_last_day

TODAY = date(2026, 3, 20)


def test_a_week_is_partial_until_data_reaches_its_sunday():
    mondays = [date(2026, 2, 23), date(2026, 3, 2)]
    assert partial_windows(mondays, "W", date(2026, 3, 4), TODAY) == [False, True]
    assert partial_windows(mondays, "W", date(2026, 3, 8), TODAY) == [False, False]


def test_a_window_not_over_yet_is_partial_whatever_the_data():
    days = [TODAY - timedelta(days=1), TODAY]
    assert partial_windows(days, "D", TODAY, TODAY) == [False, True]
    assert partial_windows([date(2026, 3, 1)], "M", TODAY, TODAY) == [True]
    assert partial_windows([date(2026, 2, 1)], "M", TODAY, TODAY) == [False]
    assert partial_windows([TODAY - timedelta(days=3)], "D", None, TODAY) == [False]


def test_last_days_of_windows():
    assert window_last_day(date(2026, 3, 2), "W") == date(2026, 3, 8)
    assert window_last_day(date(2026, 2, 1), "M") == date(2026, 2, 28)
    assert window_last_day(date(2026, 12, 1), "M") == date(2026, 12, 31)
    assert window_last_day(date(2026, 3, 2), "D") == date(2026, 3, 2)


def _weekly_rows(n: int = 30) -> pd.Series:
    """Rows per week, varying a little; no week is unusual."""
    rows = pd.Series(1000 + 10 * np.sin(np.arange(n) * 1.3), dtype=float)
    assert not flag_anomalies(rows).any()
    return rows


def test_a_partial_last_week_is_not_an_anomaly():
    rows = _weekly_rows()
    rows.iloc[-1] = 290.0  # two days of seven: far below every complete week
    assert flag_anomalies(rows).iloc[-1], "the plain rule would flag it"
    partial = [False] * (len(rows) - 1) + [True]
    flags = flag_complete_anomalies(rows, partial)
    assert not flags.iloc[-1]
    assert not flags.any()


def test_a_partial_window_is_not_history_for_the_next_one():
    rows = _weekly_rows()
    rows.iloc[20] = 100.0  # a partial window in the middle (data was voided, say)
    rows.iloc[21] = 1200.0  # a real spike right after it
    partial = [i == 20 for i in range(len(rows))]
    flags = flag_complete_anomalies(rows, partial)
    assert not flags.iloc[20]
    assert flags.iloc[21]
    assert flags.sum() == 1
