"""raw rows in parquet

Revision ID: c15a00000001
Revises: b12a00000001
Create Date: 2026-11-30 13:20:00

Production rows leave SQL: each batch's raw rows become Parquet files in the artifact store
(one per day), listed in batch_file; prediction_key keeps each prediction id's file and row
and its label. Existing rows of the prediction table are written to Parquet on upgrade, then
the table is dropped. Batches and windows built outside Quorum (aggregates from Spark) are
marked.
"""
import io
import json
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes


revision: str = 'c15a00000001'
down_revision: Union[str, None] = 'c18b00000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('batch_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('day', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['inference_batch.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('batch_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_file_batch_id'), ['batch_id'], unique=False)

    op.create_table('prediction_key',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('environment', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('prediction_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('label_batch_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('model_id', 'environment', 'prediction_id')
    )
    with op.batch_alter_table('prediction_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_key_file_id'), ['file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_key_label_batch_id'), ['label_batch_id'], unique=False)

    with op.batch_alter_table('inference_batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('window_aggregate', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_rows', sa.Integer(), nullable=False, server_default='0'))

    _move_rows_to_parquet(op.get_bind())

    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_label_batch_id'))
        batch_op.drop_index(batch_op.f('ix_prediction_batch_id'))
    op.drop_table('prediction')


def _move_rows_to_parquet(bind: sa.engine.Connection) -> None:
    """Every stored prediction row to its batch's Parquet file of its day, with its index row."""
    batches = bind.execute(sa.text(
        "SELECT DISTINCT b.id, b.model_id, b.environment FROM inference_batch b "
        "JOIN prediction p ON p.batch_id = b.id ORDER BY b.id"
    )).all()
    if not batches:
        return
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.artifacts import default_store

    store = default_store()
    for batch_id, model_id, environment in batches:
        rows = bind.execute(sa.text(
            "SELECT prediction_id, ts, prediction, score, label, label_batch_id, features "
            "FROM prediction WHERE batch_id = :b ORDER BY id"
        ), {"b": batch_id}).all()
        frame = pd.DataFrame(
            {
                "prediction_id": [r[0] for r in rows],
                "timestamp": pd.to_datetime([r[1] for r in rows], utc=True),
                "prediction": [r[2] for r in rows],
                "score": pd.to_numeric(pd.Series([r[3] for r in rows], dtype=object)),
            }
        )
        frame = pd.concat(
            [frame, pd.DataFrame.from_records([json.loads(r[6]) for r in rows])], axis=1
        )
        if frame["score"].isna().all():
            frame = frame.drop(columns=["score"])
        days = frame["timestamp"].dt.tz_convert(None).dt.floor("D")
        safe_env = "".join(c if c.isalnum() or c in "_.-" else "_" for c in environment)
        for part, (day, index) in enumerate(frame.groupby(days).groups.items()):
            piece = frame.loc[index]
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(piece, preserve_index=False), buffer)
            key = (
                f"predictions/model={model_id}/env={safe_env}/day={day:%Y-%m-%d}/"
                f"batch-{batch_id}-{part:05d}.parquet"
            )
            stored = store.put_at(key, buffer.getvalue())
            file_id = bind.execute(sa.text(
                "INSERT INTO batch_file (batch_id, day, key, n_rows, size) "
                "VALUES (:b, :d, :k, :n, :s) RETURNING id"
            ), {"b": batch_id, "d": pd.Timestamp(str(day)).tz_localize("UTC").to_pydatetime(), "k": key, "n": len(piece),
                "s": stored.size}).scalar_one()
            bind.execute(sa.text(
                "INSERT INTO prediction_key (model_id, environment, prediction_id, file_id, "
                "row, label, label_batch_id) VALUES (:m, :e, :p, :f, :r, :l, :lb)"
            ), [
                {"m": model_id, "e": environment, "p": rows[i][0], "f": file_id, "r": n,
                 "l": rows[i][4], "lb": rows[i][5]}
                for n, i in enumerate(index)
            ])


def downgrade() -> None:
    # The rows stay in their Parquet files; the prediction table comes back empty.
    op.create_table('prediction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('environment', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('prediction_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('prediction', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('label_batch_id', sa.Integer(), nullable=True),
    sa.Column('features', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['inference_batch.id'], ),
    sa.ForeignKeyConstraint(['label_batch_id'], ['inference_batch.id'], name='fk_prediction_label_batch'),
    sa.ForeignKeyConstraint(['model_id'], ['ml_model.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['model_version.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'environment', 'prediction_id', name='uq_prediction_id')
    )
    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_label_batch_id'), ['label_batch_id'], unique=False)
    with op.batch_alter_table('window_aggregate', schema=None) as batch_op:
        batch_op.drop_column('external_rows')
    with op.batch_alter_table('inference_batch', schema=None) as batch_op:
        batch_op.drop_column('external')
    with op.batch_alter_table('prediction_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_key_label_batch_id'))
        batch_op.drop_index(batch_op.f('ix_prediction_key_file_id'))
    op.drop_table('prediction_key')
    with op.batch_alter_table('batch_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_file_batch_id'))
    op.drop_table('batch_file')
