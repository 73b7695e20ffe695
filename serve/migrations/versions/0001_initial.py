"""Inspections and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("truck_id", sa.String(64), nullable=False),
        sa.Column("capture_id", sa.String(128), nullable=False),
        sa.Column("bin_id", sa.String(64), nullable=False),
        sa.Column("fraction", sa.String(32), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("contamination_score", sa.Float(), nullable=False),
        sa.Column("quality_issue", sa.String(32), nullable=True),
        sa.Column("detections", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("image_path", sa.String(255), nullable=True),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_width", sa.Integer(), nullable=False),
        sa.Column("image_height", sa.Integer(), nullable=False),
        sa.Column("image_deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("truck_id", "capture_id", name="uq_inspections_truck_capture"),
    )
    op.create_index("ix_inspections_bin_captured", "inspections", ["bin_id", "captured_at"])
    op.create_index("ix_inspections_captured", "inspections", ["captured_at"])
    op.create_index("ix_inspections_fraction", "inspections", ["fraction"])
    op.create_index("ix_inspections_verdict", "inspections", ["verdict"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_inspections_verdict", "inspections")
    op.drop_index("ix_inspections_fraction", "inspections")
    op.drop_index("ix_inspections_captured", "inspections")
    op.drop_index("ix_inspections_bin_captured", "inspections")
    op.drop_table("inspections")
