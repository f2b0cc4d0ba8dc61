"""decision threshold per version

Revision ID: c14a00000001
Revises: b12a00000001
Create Date: 2026-11-30 13:05:00

A binary classifier's version may state the probability at which it predicts the positive
class; every class metric of that version (evaluation, monitoring windows, comparisons) uses it.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "c14a00000001"
down_revision: Union[str, None] = "b12a00000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_threshold", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_column("decision_threshold")
