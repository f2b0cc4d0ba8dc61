"""comparisons of a candidate with its champion, computed once and stored

Revision ID: c18b00000001
Revises: b12a00000001
Create Date: 2026-11-30 13:15:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes


revision: str = 'c18b00000001'
down_revision: Union[str, None] = 'c16b00000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('comparison',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('candidate_id', sa.Integer(), nullable=False),
    sa.Column('champion_id', sa.Integer(), nullable=False),
    sa.Column('data', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('data_from', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('data_to', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['ml_model.id'], ),
    sa.ForeignKeyConstraint(['candidate_id'], ['model_version.id'], ),
    sa.ForeignKeyConstraint(['champion_id'], ['model_version.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('content_hash')
    )
    op.create_index(op.f('ix_comparison_model_id'), 'comparison', ['model_id'], unique=False)
    op.create_index(op.f('ix_comparison_candidate_id'), 'comparison', ['candidate_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_comparison_candidate_id'), table_name='comparison')
    op.drop_index(op.f('ix_comparison_model_id'), table_name='comparison')
    op.drop_table('comparison')
