# The Lambdas, ARM64 on python3.12 (Amazon Linux 2023, whose glibc takes the numpy the tests
# run): the API (serving.handler.handler) and the Kinesis consumer that fills the recent
# history (ingestion.consumer.handler), both from the zip `make package` builds. The pipeline
# steps' Lambda needs the training stack (scipy, implicit, pyarrow), which is past a zip's
# limits; it comes as a container image, and pipeline.tf takes its ARN.

locals {
  lambda_runtime = "python3.12"
  # Every setting the API reads on AWS: nothing may be left on a local file (the API refuses
  # to start if one is, serving/settings.py).
  api_environment = merge(
    {
      RECS_LAKE                    = trimsuffix("s3://${aws_s3_bucket.lake.bucket}/${local.lake_root}", "/")
      RECS_STORE                   = "dynamodb://${aws_dynamodb_table.online_store.name}"
      RECS_SINK                    = "kinesis"
      RECS_KINESIS_STREAM          = aws_kinesis_stream.events.name
      RECS_HISTORY                 = "dynamodb://${aws_dynamodb_table.history.name}"
      RECS_IDEMPOTENCY_STORE       = "dynamodb://${aws_dynamodb_table.idempotency.name}"
      RECS_CORS_ORIGINS            = join(",", var.cors_origins)
      RECS_MODEL_USERS             = "store" # users' histories from the store's profile rows
      POWERTOOLS_SERVICE_NAME      = "recs-api"
      POWERTOOLS_METRICS_NAMESPACE = "recs"
      POWERTOOLS_LOG_LEVEL         = "INFO"
    },
    var.api_keys == "" ? {} : { RECS_API_KEYS = var.api_keys },
    var.personalize_campaign_arn == null ? {} : { RECS_PERSONALIZE_CAMPAIGN_ARN = var.personalize_campaign_arn },
    var.personalize_filter_arn == null ? {} : { RECS_PERSONALIZE_FILTER_ARN = var.personalize_filter_arn },
    local.filters_environment,
  )
  consumer_environment = merge(
    {
      RECS_HISTORY            = "dynamodb://${aws_dynamodb_table.history.name}"
      POWERTOOLS_SERVICE_NAME = "recs-history-consumer"
    },
    var.personalize_tracking_id == null ? {} : { RECS_PERSONALIZE_TRACKING_ID = var.personalize_tracking_id },
  )
  functions = {
    api      = { handler = "serving.handler.handler", memory = local.sizing[var.size].api_memory, timeout = 10, environment = local.api_environment }
    consumer = { handler = "ingestion.consumer.handler", memory = 512, timeout = 60, environment = local.consumer_environment }
  }
}

resource "aws_iam_role" "lambda" {
  for_each           = local.functions
  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume["lambda"].json
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
}

# What each function does, and nothing else.
data "aws_iam_policy_document" "api" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda["api"].arn}:*"]
  }
  statement {
    sid       = "PutEvents"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [aws_kinesis_stream.events.arn]
  }
  statement {
    # The pointer, and each version's own table a table-swap publish makes (<store>.<version>).
    sid       = "ReadPublished"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.online_store.arn, "${aws_dynamodb_table.online_store.arn}.*"]
  }
  statement {
    sid       = "ReadHistory"
    actions   = ["dynamodb:Query"]
    resources = [aws_dynamodb_table.history.arn]
  }
  statement {
    sid       = "IdempotencyKeys"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.idempotency.arn]
  }
  statement {
    sid       = "LoadModelVersions"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_root}models/*"]
  }
  statement {
    sid       = "Encryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.lake.arn]
  }
  dynamic "statement" {
    for_each = var.personalize_campaign_arn == null ? [] : [1]
    content {
      # GetRecommendations is authorised on the campaign and on the filter it names.
      sid     = "AskTheCampaign"
      actions = ["personalize:GetRecommendations"]
      resources = compact(concat(
        [var.personalize_campaign_arn, var.personalize_filter_arn],
        [for f in values(var.filters) : f.personalize_arn if f.personalize_arn != null],
      ))
    }
  }
  statement {
    # X-Ray's trace APIs take no resource ARN (AWS documents "*" for them).
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda["consumer"].arn}:*"]
  }
  statement {
    sid = "ReadStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.events.arn]
  }
  statement {
    sid       = "WriteHistory"
    actions   = ["dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.history.arn]
  }
  statement {
    sid       = "FailedBatches"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.consumer_failures.arn]
  }
  statement {
    sid       = "Encryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.lake.arn]
  }
  dynamic "statement" {
    for_each = var.personalize_tracking_id == null ? [] : [1]
    content {
      # PutEvents has no resource type (Service Authorization Reference): a statement scoped
      # to the tracker's ARN never matches, and AWS documents "*" for it.
      sid       = "ForwardToTracker"
      actions   = ["personalize:PutEvents"]
      resources = ["*"]
    }
  }
  statement {
    # X-Ray's trace APIs take no resource ARN (AWS documents "*" for them).
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.functions
  name     = "${local.name}-${each.key}"
  role     = aws_iam_role.lambda[each.key].id
  policy   = each.key == "api" ? data.aws_iam_policy_document.api.json : data.aws_iam_policy_document.consumer.json
}

resource "aws_lambda_function" "recs" {
  #checkov:skip=CKV_AWS_116:The API is invoked synchronously by API Gateway, which gets the error; the consumer's failed batches go to the event source mapping's on-failure queue, not a function DLQ.
  #checkov:skip=CKV_AWS_117:Every resource the functions reach (S3, DynamoDB, Kinesis, KMS) is an AWS API; a VPC would only add NAT or endpoint costs.
  #checkov:skip=CKV_AWS_272:The zip is built and uploaded by the CI job from a pinned lock of its dependencies; code signing needs a signing profile the shop owns.
  for_each                       = local.functions
  function_name                  = "${local.name}-${each.key}"
  role                           = aws_iam_role.lambda[each.key].arn
  runtime                        = local.lambda_runtime
  architectures                  = ["arm64"]
  handler                        = each.value.handler
  filename                       = var.api_package
  source_code_hash               = filebase64sha256(var.api_package)
  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.key == "api" ? var.api_concurrency : var.consumer_concurrency
  kms_key_arn                    = aws_kms_key.lake.arn

  environment {
    variables = each.value.environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  depends_on = [aws_iam_role_policy.lambda]
}

# Records the consumer still cannot write after its retries: kept 14 days for a replay.
resource "aws_sqs_queue" "consumer_failures" {
  name                      = "${local.name}-history-consumer-failures"
  message_retention_seconds = 14 * 24 * 3600
  kms_master_key_id         = aws_kms_key.lake.arn
}

resource "aws_lambda_event_source_mapping" "consumer" {
  function_name                      = aws_lambda_function.recs["consumer"].arn
  event_source_arn                   = aws_kinesis_stream.events.arn
  starting_position                  = "LATEST"
  batch_size                         = 100
  maximum_batching_window_in_seconds = 1
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = 10
  maximum_record_age_in_seconds      = 86400
  # The handler answers batchItemFailures: a retry starts at the first record not written.
  function_response_types = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.consumer_failures.arn
    }
  }
}
