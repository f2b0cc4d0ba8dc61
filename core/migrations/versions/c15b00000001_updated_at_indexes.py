"""updated_at indexes

Revision ID: c15b00000001
Revises: c15a00000001
Create Date: 2026-11-30 16:50:00

Home's cache key reads the newest change of models, versions, windows and alerts; without an
index each read walks its whole table (10 ms on a store of 10,000 versions; 1 ms with them).
"""
from typing import Sequence, Union

from alembic import op


revision: str = 'c15b00000001'
down_revision: Union[str, None] = 'c15a00000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = (
    ("ix_ml_model_updated_at", "ml_model"),
    ("ix_model_version_updated_at", "model_version"),
    ("ix_window_aggregate_updated_at", "window_aggregate"),
    ("ix_alert_updated_at", "alert"),
)


def upgrade() -> None:
    for name, table in INDEXES:
        op.create_index(name, table, ["updated_at"], unique=False)


def downgrade() -> None:
    for name, table in INDEXES:
        op.drop_index(name, table_name=table)
