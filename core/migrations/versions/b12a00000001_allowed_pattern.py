"""allowed regular expressions in uploaded models

Revision ID: b12a00000001
Revises: b13b00000001
Create Date: 2026-11-30 10:30:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes


revision: str = 'b12a00000001'
down_revision: Union[str, None] = 'b13b00000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('allowed_pattern',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pattern', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('allowed_by_id', sa.Integer(), nullable=True),
    sa.Column('allowed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['allowed_by_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pattern')
    )


def downgrade() -> None:
    op.drop_table('allowed_pattern')
