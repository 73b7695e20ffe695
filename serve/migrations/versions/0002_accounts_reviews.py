"""Reviewer and admin accounts, web sessions, review claims and the audit trail; keys bound to trucks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections") as batch:  # batch: SQLite cannot ALTER most things in place
        # Inspections stored before this revision get no draw: they are not sampled for quality control.
        batch.add_column(sa.Column("qc_draw", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("review_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reviewed_detections", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(64), nullable=True))
        batch.create_index("ix_inspections_review_state", ["review_state"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("truck_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("fleet", sa.Boolean(), nullable=False, server_default=sa.true()))
    # Keys made before keys were bound stay fleet keys (they could already post as any truck); new ones default to bound.
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("fleet", server_default=None)
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "review_claims",
        sa.Column("inspection_id", sa.String(36), sa.ForeignKey("inspections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_claims_user_id", "review_claims", ["user_id"])
    op.create_table(
        "review_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.String(36), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("state_before", sa.String(16), nullable=True),
        sa.Column("detections_before", sa.JSON(), nullable=False),
        sa.Column("detections_after", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_review_events_inspection_id", "review_events", ["inspection_id"])


def downgrade() -> None:
    op.drop_table("review_events")
    op.drop_table("review_claims")
    op.drop_table("web_sessions")
    op.drop_table("users")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("fleet")
        batch.drop_column("truck_id")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_index("ix_inspections_review_state")
        for column in ("reviewed_by", "reviewed_at", "reviewed_detections", "review_state", "qc_draw"):
            batch.drop_column(column)
