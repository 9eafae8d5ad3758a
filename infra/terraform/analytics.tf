# Analysts' side: the Glue database the ETL registers the curated tables in, and an Athena
# workgroup whose results are encrypted with the lake's key.
#
# The tables themselves are registered by the ETL (etl/glue.py, through awswrangler) from
# the one schema in etl/schema.py, with the partitions each run adds. Declaring them here as
# well would give each table two owners, and every ETL run would show up as drift in the next
# plan, so Terraform owns the database and the ETL its tables.

resource "aws_glue_catalog_database" "curated" {
  name        = replace("${local.name}_curated", "-", "_")
  description = "recs curated zone (${local.name}): interactions, items, users"
}

resource "aws_athena_workgroup" "analysts" {
  name          = "${local.name}-analysts"
  description   = "Queries over the recs curated zone; results encrypted with the lake key."
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${aws_s3_bucket.lake.bucket}/${local.lake_root}athena-results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.lake.arn
      }
    }
  }
}
