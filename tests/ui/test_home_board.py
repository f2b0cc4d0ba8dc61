"""Home's health board on the demo store: the health card's verdict per model, what is being
done in words, each person's own items, read-scoped, and a fixed number of queries."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from core.auth import Permission
from core.db import Database
from core.models import Role
from core.services import board, monitoring, reviews
from core.services.users import principal_by_id
from tests.ui.kit import DemoStore, frame_values, open_page

APPROVALS = re.compile(r"^v\d+ in review: (\d+) of (\d+) approvals$|^v\d+ in review: \d+ approvals")


@pytest.fixture(scope="module")
def db(demo_env: DemoStore) -> Iterator[Database]:
    database = Database(demo_env.url)
    yield database
    database.dispose()


def _rows(db: Database, store: DemoStore, role: Role | None) -> list[board.BoardRow]:
    return board.health_board(db, principal_by_id(db, store.user_ids[role]))


def test_each_live_model_carries_the_health_cards_verdict(db: Database, demo_env: DemoStore):
    blake = principal_by_id(db, demo_env.user_ids[Role.BUSINESS])
    rows = board.health_board(db, blake)
    assert {r.model for r in rows} == {
        "bike-demand-forecaster",
        "credit-default-scorer",
        "tumour-benchmark-classifier",
    }
    for row in rows:
        if "production" not in row.live:
            assert row.status == board.NOT_LIVE and row.trend == []
            continue
        card = monitoring.health_card(monitoring.monitoring_data(db, blake, row.model))
        assert (row.status, row.goal_met) == (card.status, card.goal_met), row.model
        assert row.trend and all(isinstance(v, float) for v in row.trend)
    order = [board.ORDER[r.status] for r in rows]
    assert order == sorted(order), "the worst health comes first"


def test_a_failing_model_says_so_beside_what_is_being_done(db: Database, demo_env: DemoStore):
    bike = {r.model: r for r in _rows(db, demo_env, Role.BUSINESS)}["bike-demand-forecaster"]
    assert bike.status == monitoring.FAILING
    assert bike.verdict == "Needs action: misses its goal."
    assert bike.goal == "MAE at most 25"
    assert re.match(r"^\d+(\.\d+)? \((measured|estimated), \d+ \w+ \d{4}", bike.latest)
    # the latest complete window's value, not the few rows of a week still under way
    assert "partial" not in bike.latest and bike.latest.startswith(f"{bike.trend[-1]:.3g} (")
    # while Monitoring's card, which judges the latest window, says that window is still filling
    blake = principal_by_id(db, demo_env.user_ids[Role.BUSINESS])
    card = monitoring.health_card(monitoring.monitoring_data(db, blake, "bike-demand-forecaster"))
    assert "a partial window, still filling" in card.goal
    assert card.headline.endswith("a partial window still filling).")
    assert "v3 approved, waiting for promotion" in bike.activity
    assert any(re.match(r"incident open: [a-z ]+ since \d+ \w+ \d{4}$", a) for a in bike.activity)


def test_reviews_in_flight_count_approvals(db: Database, demo_env: DemoStore):
    rows = _rows(db, demo_env, Role.BUSINESS)
    lines = [a for r in rows for a in r.activity if " in review" in a]
    assert lines, "the demo has a version in review"
    for line in lines:
        match = APPROVALS.match(line)
        assert match, line
        if match.group(1) is not None:
            assert int(match.group(1)) <= int(match.group(2)), line


WAITING = {
    Role.DATA_SCIENTIST: {
        ("tumour-benchmark-classifier", "answer the changes requested (v2)"),
        ("tumour-benchmark-classifier", "submit (v3)"),
    },
    Role.COMPLIANCE: {("credit-default-scorer", "your review of v3")},
    Role.ADMIN: {("credit-default-scorer", "your review of v3")},
    Role.REVIEWER: set(),  # Riley already approved v3
    Role.BUSINESS: set(),
}


@pytest.mark.parametrize("role", list(WAITING), ids=lambda r: r.value)
def test_each_person_sees_what_waits_for_them(role: Role, db: Database, demo_env: DemoStore):
    actor = principal_by_id(db, demo_env.user_ids[role])
    mine = {(r.model, m) for r in board.health_board(db, actor) for m in r.mine}
    assert mine == WAITING[role]
    queue = reviews.review_queue(db, actor) if actor.can_anywhere(Permission.DECIDE) else []
    assert {(q.model, f"your review of v{q.number}") for q in queue} <= mine


def test_someone_without_a_role_sees_no_model(db: Database, demo_env: DemoStore):
    assert _rows(db, demo_env, None) == []


def test_the_board_takes_a_fixed_number_of_queries(db: Database, demo_env: DemoStore):
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        _rows(db, demo_env, Role.BUSINESS)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    for table in ("window_aggregate", "alert", "deployment"):
        reads = [s for s in statements if f"FROM {table}" in s]
        assert len(reads) == 1, f"one read of {table} for every model, not one per model"
    profiles = [
        s
        for s in statements
        if "FROM evaluation" in s and " IN (" in s and "reference_profile" in s
    ]
    assert len(profiles) == 1, "one read of the reference profiles of every live version"
    assert len(statements) <= 30, statements


def test_home_draws_the_board(demo_env: DemoStore):
    at = open_page("app.py", demo_env.user_ids[Role.BUSINESS])
    assert not at.exception
    values = frame_values(at)
    assert "Failing" in values and "Needs action: misses its goal." in values
    assert "State" not in " ".join(str(c) for c in at.dataframe[0].value.columns)
