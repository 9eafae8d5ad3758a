"""Registering the curated tables in the Glue Data Catalog, so that Athena can query them.

awswrangler writes the table definitions from the one schema in `etl.schema`, and adds the
partitions of the dates a run changed. Both calls are idempotent, so a run that is retried,
or that finishes an earlier run's work, registers the same things again harmlessly.

The database is not ours to change. On AWS Terraform owns it (`infra/terraform/analytics.tf`)
and the steps' role may not update it: `wr.catalog.create_database(exist_ok=True)` rewrites a
database whose description differs, which AWS would deny after the run's commit. So a run only
reads it, and creates it only where it is missing (a shop on S3 without our Terraform).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.lake import S3Lake
from etl.errors import GlueDatabaseMissing
from etl.schema import INTERACTIONS_TABLE, PARQUET_OPTIONS, TABLES

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_glue import GlueClient

__all__ = ["GlueCatalog", "GlueDatabaseMissing", "catalog_for"]


def catalog_for(lake: object, database: str) -> GlueCatalog | None:
    """The Glue catalog an ETL run registers in: an S3 lake's; None for a folder, which
    Athena cannot read (DuckDB reads it directly)."""
    return GlueCatalog(database, lake) if isinstance(lake, S3Lake) else None


@dataclass
class GlueCatalog:
    """One Glue database holding the curated tables of one S3 lake."""

    database: str
    lake: S3Lake
    session: boto3.Session | None = field(default=None, repr=False)

    def _session(self) -> boto3.Session:
        if self.session is None:
            import boto3

            self.session = boto3.Session()
        return self.session

    def location(self, prefix: str) -> str:
        """The S3 URL of a folder of the lake, with the trailing slash Glue expects."""
        return self.lake.url(prefix).rstrip("/") + "/"

    def ensure_database(self, glue: GlueClient) -> None:
        """Leave an existing database as it is; create a missing one, or say what to do."""
        from botocore.exceptions import ClientError

        try:
            glue.get_database(Name=self.database)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "EntityNotFoundException":
                raise
        try:
            glue.create_database(
                DatabaseInput={
                    "Name": self.database,
                    "Description": "recs: curated shop interactions and catalog",
                }
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "AlreadyExistsException":  # another run made it meanwhile
                return
            if code in ("AccessDeniedException", "AccessDenied"):
                raise GlueDatabaseMissing(
                    f"Glue database {self.database!r} does not exist and this role may not "
                    f"create it ({error.response['Error'].get('Message', code)}). Apply the "
                    "Terraform, which creates it, or set RECS_GLUE_DATABASE to its output "
                    "`glue_database`."
                ) from error
            raise

    def register(self, changed_dates: Iterable[str]) -> None:
        """Make sure of the database, create or update the tables, and add the partitions of
        these dates."""
        import awswrangler as wr

        session = self._session()
        compression = str(PARQUET_OPTIONS["compression"])
        self.ensure_database(session.client("glue"))
        for table in TABLES:
            partition = table.partition
            wr.catalog.create_parquet_table(
                database=self.database,
                table=table.name,
                path=self.location(table.prefix),
                columns_types={c.name: c.athena for c in table.columns},
                partitions_types={partition.name: partition.athena} if partition else None,
                compression=compression,
                description=table.doc,
                columns_comments={
                    c.name: c.doc for c in (*table.columns, *([partition] if partition else []))
                },
                # "append" creates a missing table and leaves an existing one and its
                # partitions alone; "overwrite" would drop every partition. A column added
                # since the table was made (recommendation_id) is added to it (a test holds it).
                mode="append",
                boto3_session=session,
            )
        dates = sorted(set(changed_dates))
        if dates:
            wr.catalog.add_parquet_partitions(
                database=self.database,
                table=INTERACTIONS_TABLE.name,
                partitions_values={
                    self.location(f"{INTERACTIONS_TABLE.prefix}/event_date={d}"): [d] for d in dates
                },
                compression=compression,
                boto3_session=session,
            )
