"""Operations: bin registry and districts, the inspection's link to its bin, privacy, the image access log, notices.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections") as batch:  # batch: SQLite cannot ALTER most things in place
        batch.alter_column("bin_id", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("tour_id", sa.String(64), nullable=True))
        # Inspections stored before this revision have no link (NULL): they were never checked against a registry.
        batch.add_column(sa.Column("bin_link", sa.String(16), nullable=True))
        batch.add_column(sa.Column("bin_link_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("bin_distance_m", sa.Float(), nullable=True))
        batch.add_column(sa.Column("district", sa.String(128), nullable=True))
        batch.add_column(sa.Column("route", sa.String(64), nullable=True))
        batch.add_column(sa.Column("privacy_regions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("visible_share", sa.Float(), nullable=True))
        batch.create_index("ix_inspections_bin_link", ["bin_link"])
        batch.create_index("ix_inspections_district", ["district"])
        batch.create_index("ix_inspections_route", ["route"])
    op.create_table(
        "bins",
        sa.Column("rfid", sa.String(64), primary_key=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("district", sa.String(128), nullable=True),
        sa.Column("route", sa.String(64), nullable=True),
        sa.Column("fraction", sa.String(32), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bins_district", "bins", ["district"])
    op.create_index("ix_bins_route", "bins", ["route"])
    op.create_table(
        "districts",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "image_access",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("inspection_id", sa.String(36), nullable=False),
        sa.Column("bin_id", sa.String(64), nullable=True),
        sa.Column("what", sa.String(16), nullable=False),
    )
    op.create_index("ix_image_access_at", "image_access", ["at"])
    op.create_index("ix_image_access_inspection_id", "image_access", ["inspection_id"])
    op.create_index("ix_image_access_bin_id", "image_access", ["bin_id"])
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("inspection_id", sa.String(36), nullable=False, unique=True),
        sa.Column("bin_id", sa.String(64), nullable=False),
        sa.Column("fraction", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("contaminants", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_notices_bin_id", "notices", ["bin_id"])
    op.create_index("ix_notices_issued_at", "notices", ["issued_at"])


def downgrade() -> None:
    unlinked = op.get_bind().execute(sa.text("SELECT count(*) FROM inspections WHERE bin_id IS NULL")).scalar()
    if unlinked:  # checked first: a failed ALTER halfway would leave the schema between revisions
        raise RuntimeError(
            f"cannot downgrade below revision 0003: {unlinked} inspections have no bin id (RFID not read, or anonymised by "
            "`binsight gdpr delete`), which revision 0002 does not allow; delete them first if that is intended"
        )
    op.drop_table("notices")
    op.drop_table("image_access")
    op.drop_table("districts")
    op.drop_table("bins")
    with op.batch_alter_table("inspections") as batch:
        for index in ("ix_inspections_route", "ix_inspections_district", "ix_inspections_bin_link"):
            batch.drop_index(index)
        for column in ("visible_share", "privacy_regions", "route", "district", "bin_distance_m", "bin_link_reason", "bin_link", "tour_id"):
            batch.drop_column(column)
        batch.alter_column("bin_id", existing_type=sa.String(64), nullable=False)
