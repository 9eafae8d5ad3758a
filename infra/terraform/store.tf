# The online store serving reads. This table holds the pointer item (pk = "_pointer",
# sk = "live"), which names the live version and its table. The pipeline publishes by table
# swap (RECS_STORE_PUBLISH=import): DynamoDB's ImportTable makes a table per version,
# "<this table>.<version>", from rows staged in the lake (pk = "user#U1", "item#I1" or
# "profile#U1", sk = version), encrypted with the lake's key; `recs publish` deletes a
# version's table two publishes later. Those tables are the pipeline's, not Terraform's.
# With RECS_STORE_PUBLISH=rows the rows go into this table instead. serving/store.py is
# the contract.

resource "aws_dynamodb_table" "online_store" {
  name         = "${local.name}-online-store"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.lake.arn
  }
}

# Recent history for realtime answers on AWS: the Kinesis consumer (ingestion.consumer.handler)
# writes each event under user_id (hash) and event = "<13-digit ts_ms>#<event_id>" (range),
# with expires_at for TTL; the API queries a user's newest. Both take
# RECS_HISTORY=dynamodb://<name>.
resource "aws_dynamodb_table" "history" {
  name         = "${local.name}-history"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "user_id"
  range_key    = "event"

  attribute {
    name = "user_id"
    type = "S"
  }

  attribute {
    name = "event"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.lake.arn
  }
}

# Idempotency-Key records of POST /v1/events, in Powertools' DynamoDB layout: id (hash),
# expiration for TTL. Set RECS_IDEMPOTENCY_STORE=dynamodb://<name> on the API.
resource "aws_dynamodb_table" "idempotency" {
  name         = "${local.name}-idempotency"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }

  ttl {
    attribute_name = "expiration"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.lake.arn
  }
}

# What `recs publish` and `recs models experiment` need: the table's rows, pointer and
# experiment item, and in the lake the versions they read (models/, batch/),
# models/production.json and the experiments' records (_state/experiments/), which they
# write. Attach it to the role that runs publishing.
data "aws_iam_policy_document" "publisher" {
  statement {
    sid       = "OnlineStore"
    actions   = ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.online_store.arn]
  }
  statement {
    # A table swap: ImportTable makes <store>.<version> (DescribeImport is authorised on its
    # import, <table>/import/<id>, which the same pattern matches), and an old version's
    # table is deleted. AWS's guide "Requesting a table import" lists these.
    sid       = "VersionTables"
    actions   = ["dynamodb:ImportTable", "dynamodb:DescribeImport", "dynamodb:DescribeTable", "dynamodb:DeleteTable"]
    resources = ["${aws_dynamodb_table.online_store.arn}.*"]
  }
  statement {
    # The import reads the staged rows as the caller, and writes its errors to CloudWatch.
    sid       = "StageVersions"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_root}store-import/*"]
  }
  statement {
    sid       = "ImportLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:PutLogEvents", "logs:PutRetentionPolicy"]
    resources = ["arn:aws:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws-dynamodb/*"]
  }
  statement {
    # A table encrypted with a customer managed key: DynamoDB makes a grant on the key for
    # the table, on behalf of whoever creates it.
    sid       = "VersionTableKey"
    actions   = ["kms:CreateGrant", "kms:DescribeKey"]
    resources = [aws_kms_key.lake.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.region}.amazonaws.com"]
    }
  }
  statement {
    sid       = "ReadVersions"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_root}models/*", "${aws_s3_bucket.lake.arn}/${local.lake_root}batch/*"]
  }
  statement {
    sid       = "RecordProduction"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_root}models/production.json"]
  }
  statement {
    # Each experiment's record; publishing its candidate ends it.
    sid       = "RecordExperiments"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_root}_state/experiments/*"]
  }
  statement {
    sid       = "ListVersions"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lake_root}models/*", "${local.lake_root}batch/*", "${local.lake_root}store-import/*", "${local.lake_root}_state/experiments/*"]
    }
  }
  statement {
    sid       = "Encryption"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.lake.arn]
  }
  statement {
    # A Personalize version moves the stage's campaign (recs-<stage>) before the flip.
    sid       = "PersonalizeCampaign"
    actions   = ["personalize:CreateCampaign", "personalize:UpdateCampaign", "personalize:DescribeCampaign"]
    resources = ["arn:aws:personalize:${var.region}:${data.aws_caller_identity.current.account_id}:campaign/${local.name}"]
  }
  statement {
    # ListCampaigns takes no resource ARN (Personalize's service authorization reference),
    # so it needs "*"; it only reads campaign names, to find ours after a retry.
    sid       = "FindCampaign"
    actions   = ["personalize:ListCampaigns"]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "publisher" {
  name   = "${local.name}-publisher"
  policy = data.aws_iam_policy_document.publisher.json
}
