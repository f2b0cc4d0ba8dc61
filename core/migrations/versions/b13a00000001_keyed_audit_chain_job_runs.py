"""keyed audit chain (append-only triggers, HMAC from a marked event on), job runs

Revision ID: b13a00000001
Revises: b11a00000001
Create Date: 2026-11-30 09:55:02.395486
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes


revision: str = 'b13a00000001'
down_revision: Union[str, None] = 'b11a00000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The table refuses UPDATE, DELETE (and on PostgreSQL TRUNCATE) for everyone, the owner
# included, until someone drops these triggers; the application's role should not own the
# table (README: deployment), so it cannot drop them.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE is refused'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE is refused'); END",
)
POSTGRES_TRIGGERS = (
    "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_event is append-only: % is refused', TG_OP "
    "USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
)


def upgrade() -> None:
    op.create_table('job_lock',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('lease_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('job_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.create_index('ix_job_run_job_started', ['job', 'started_at'], unique=False)

    # Existing events are the legacy SHA-256 chain; new ones are keyed.
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='sha256'))
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.alter_column('mac', server_default=None)

    bind = op.get_bind()
    for statement in POSTGRES_TRIGGERS if bind.dialect.name == 'postgresql' else SQLITE_TRIGGERS:
        op.execute(statement)
    _rekey(bind)


def _rekey(bind: sa.engine.Connection) -> None:
    """Mark the switch: an audit.rekeyed event, keyed, naming the last SHA-256 head."""
    from sqlmodel import Session

    from core import audit

    session = Session(bind=bind)
    audit.rekey(session)
    session.flush()


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_column('mac')

    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.drop_index('ix_job_run_job_started')

    op.drop_table('job_run')
    op.drop_table('job_lock')
