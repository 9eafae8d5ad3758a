# Ingestion edge: producers -> Kinesis -> Firehose -> S3 raw zone, all encrypted with one KMS key.
# The raw zone's layout (raw/events/YYYY/MM/DD/HH/, gzip JSON lines) is the contract in
# ingestion/raw.py; the local sink writes the same layout on disk.

data "aws_caller_identity" "current" {}

locals {
  name = "recs-${var.stage}"
  # The lake's root inside the bucket: "" or "<lake_prefix>/", as RECS_LAKE=s3://bucket/prefix.
  lake_root = var.lake_prefix == "" ? "" : "${var.lake_prefix}/"
  # The named filters as RECS_FILTERS' JSON, unset fields left out, for the API and pipeline.
  filters_environment = length(var.filters) == 0 ? {} : {
    RECS_FILTERS = jsonencode({
      for name, f in var.filters : name => { for key, value in f : key => value if value != null }
    })
  }
}

# Who may assume each of the stack's roles: one AWS service each, on behalf of this account
# only (aws:SourceAccount), so no other account's use of the service can borrow them. Glue is
# the exception: it sets no aws:SourceAccount when it assumes a job's role, so the condition
# would lock its job out.
data "aws_iam_policy_document" "assume" {
  for_each = {
    firehose  = true, lambda = true, states = true, scheduler = true, personalize = true,
    ecs-tasks = true, glue = false,
  }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["${each.key}.amazonaws.com"]
    }
    dynamic "condition" {
      for_each = each.value ? [1] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }
}

resource "aws_kms_key" "lake" {
  description             = "${local.name}: S3 lake, Kinesis, Firehose, DynamoDB, logs and SNS"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.lake_key.json
}

# The key's own policy. The account administers it and delegates use to IAM (each role's
# policy names this key); CloudWatch Logs, which encrypts the log groups, may use it only
# for this account's log groups, and CloudWatch only for our alarms.
data "aws_iam_policy_document" "lake_key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself, not every resource; checkov reads it as an identity policy.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" is the key itself, not every resource; checkov reads it as an identity policy.
  #checkov:skip=CKV_AWS_109:The account root administering its own key is AWS's default key policy; use is delegated to IAM roles that name the key.
  statement {
    sid       = "AccountAdministersAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  dynamic "statement" {
    for_each = var.personalize ? [1] : []
    content {
      sid       = "PersonalizeReadsAndWritesTheLake"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = ["*"] # in a key policy, "*" is this key
      principals {
        type        = "Service"
        identifiers = ["personalize.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }
  statement {
    # The alarms topic is encrypted with this key: CloudWatch must make and read its data
    # keys to publish an alarm there, or every notification is dropped without a word.
    sid       = "CloudWatchAlarmsPublishToOurTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:aws:cloudwatch:${var.region}:${data.aws_caller_identity.current.account_id}:alarm:${local.name}-*"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncryptsOurLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_alias" "lake" {
  name          = "alias/${local.name}-lake"
  target_key_id = aws_kms_key.lake.key_id
}

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the lake's storage bill and is a disaster-recovery choice for the shop; versioning with noncurrent retention covers deletes and overwrites. Add a replication configuration where a second region is required.
  bucket = "${local.name}-lake-${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket_logging" "lake" {
  bucket        = aws_s3_bucket.lake.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "lake/"
  # S3 refuses a target whose policy does not yet let its log delivery write there.
  depends_on = [aws_s3_bucket_policy.access_logs]
}

# Only TLS: any request over plain HTTP to either bucket is refused, whoever makes it.
data "aws_iam_policy_document" "tls_only" {
  for_each = { lake = aws_s3_bucket.lake.arn, access_logs = aws_s3_bucket.access_logs.arn }
  dynamic "statement" {
    for_each = var.require_tls ? [1] : []
    content {
      sid       = "DenyPlainHttp"
      effect    = "Deny"
      actions   = ["s3:*"]
      resources = [each.value, "${each.value}/*"]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      condition {
        test     = "Bool"
        variable = "aws:SecureTransport"
        values   = ["false"]
      }
    }
  }
}

# With the Personalize backend, its service principal reads the exports and writes batch
# output, on behalf of this account only.
data "aws_iam_policy_document" "lake_personalize" {
  source_policy_documents = [data.aws_iam_policy_document.tls_only["lake"].json]
  dynamic "statement" {
    for_each = var.personalize ? [1] : []
    content {
      sid       = "PersonalizeReadsAndWrites"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
      resources = concat([aws_s3_bucket.lake.arn], local.personalize_reads, local.personalize_writes)
      principals {
        type        = "Service"
        identifiers = ["personalize.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  count  = var.require_tls || var.personalize ? 1 : 0 # S3 refuses a policy with no statement
  bucket = aws_s3_bucket.lake.id
  policy = data.aws_iam_policy_document.lake_personalize.json
}

# New objects are announced on EventBridge, for whoever wants to react to a landing batch;
# the ETL itself finds new raw objects by listing, so nothing depends on it.
resource "aws_s3_bucket_notification" "lake" {
  bucket      = aws_s3_bucket.lake.id
  eventbridge = true
}

# Where S3 writes the lake's access logs.
resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log bucket; logging it to itself would log its own log writes forever.
  #checkov:skip=CKV_AWS_144:Access logs are kept for audit in one region; replicating them is the shop's choice.
  #checkov:skip=CKV_AWS_145:S3 server access log delivery supports only SSE-S3 (AES256) on the target bucket, not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new access-log objects.
  bucket = "${local.name}-access-logs-${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# S3's log delivery service writes the logs, for the lake bucket of this account only.
data "aws_iam_policy_document" "access_logs" {
  source_policy_documents = [data.aws_iam_policy_document.tls_only["access_logs"].json]
  statement {
    sid       = "S3LogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/lake/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.lake.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  policy = data.aws_iam_policy_document.access_logs.json
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.lake.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    id     = "expire-raw-events"
    status = "Enabled"
    filter {
      prefix = "${local.lake_root}raw/events/"
    }
    expiration {
      days = var.raw_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
  rule {
    id     = "expire-athena-results"
    status = "Enabled"
    filter {
      prefix = "${local.lake_root}athena-results/"
    }
    expiration {
      days = 30
    }
  }
  rule {
    # Everywhere: old versions of rewritten files (manifests, the production pointer) and
    # uploads a crashed writer never finished.
    id     = "tidy-everything"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_kinesis_stream" "events" {
  name             = "${local.name}-events"
  shard_count      = var.kinesis_shards > 0 ? var.kinesis_shards : null
  retention_period = 24
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.lake.arn
  stream_mode_details {
    stream_mode = var.kinesis_shards > 0 ? "PROVISIONED" : "ON_DEMAND"
  }
}

resource "aws_iam_role" "firehose" {
  name               = "${local.name}-firehose"
  assume_role_policy = data.aws_iam_policy_document.assume["firehose"].json
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid = "ReadEvents"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetShardIterator",
      "kinesis:GetRecords",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.events.arn]
  }
  statement {
    sid = "WriteRawZone"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetBucketLocation",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:PutObject",
    ]
    resources = [aws_s3_bucket.lake.arn, "${aws_s3_bucket.lake.arn}/${local.lake_root}raw/*"]
  }
  statement {
    sid       = "UseLakeKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.lake.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "deliver-raw-events"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/aws/kinesisfirehose/${local.name}-raw-events"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
}

resource "aws_cloudwatch_log_stream" "firehose" {
  name           = "S3Delivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

# Firehose to the raw zone. "kinesis" reads the events stream (the default path). "direct"
# takes PutRecordBatch from RECS_SINK=firehose, which AWS refuses on a Kinesis-fed stream;
# it exists only with firehose_direct_put = true.
locals {
  firehoses = merge(
    { kinesis = "${local.name}-raw-events" },
    var.firehose_direct_put ? { direct = "${local.name}-raw-events-direct" } : {},
  )
}

resource "aws_kinesis_firehose_delivery_stream" "raw" {
  for_each    = local.firehoses
  name        = each.value
  destination = "extended_s3"

  dynamic "kinesis_source_configuration" {
    for_each = each.key == "kinesis" ? [1] : []
    content {
      kinesis_stream_arn = aws_kinesis_stream.events.arn
      role_arn           = aws_iam_role.firehose.arn
    }
  }

  dynamic "server_side_encryption" {
    # A Kinesis-fed stream is encrypted by its source; a direct-put one by the lake's key.
    for_each = each.key == "direct" ? [1] : []
    content {
      enabled  = true
      key_type = "CUSTOMER_MANAGED_CMK"
      key_arn  = aws_kms_key.lake.arn
    }
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = aws_s3_bucket.lake.arn
    kms_key_arn         = aws_kms_key.lake.arn
    prefix              = "${local.lake_root}raw/events/"
    error_output_prefix = "${local.lake_root}raw/errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
    buffering_size      = var.firehose_buffer_mb
    buffering_interval  = var.firehose_buffer_seconds
    compression_format  = "GZIP"

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose.name
    }
  }

  depends_on = [aws_iam_role_policy.firehose]
}

moved {
  from = aws_kinesis_firehose_delivery_stream.raw_events
  to   = aws_kinesis_firehose_delivery_stream.raw["kinesis"]
}

# What a producer (the API Lambda, a shop's backend) needs to put events on the stream.
data "aws_iam_policy_document" "producer" {
  statement {
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [aws_kinesis_stream.events.arn]
  }
  dynamic "statement" {
    for_each = var.firehose_direct_put ? [1] : []
    content {
      actions   = ["firehose:PutRecord", "firehose:PutRecordBatch"]
      resources = [aws_kinesis_firehose_delivery_stream.raw["direct"].arn]
    }
  }
  statement {
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.lake.arn]
  }
}

resource "aws_iam_policy" "producer" {
  name        = "${local.name}-event-producer"
  description = "Put recs events on the Kinesis stream"
  policy      = data.aws_iam_policy_document.producer.json
}
