# Where the nightly pipeline's steps run on AWS.
#
# - The pipeline Lambda (orchestration.handler.handler) runs every step by default. It is a
#   container image from the ECR repository below, because the training stack (scipy,
#   implicit, pyarrow, pandas) is past a zip's 250 MB: `make image` builds it from
#   infra/docker/pipeline.Dockerfile, and pipeline_image_tag names the pushed tag. Nothing
#   here but the repository exists until then, so the first apply comes before the image.
# - The Glue job runs the etl step when etl_on = "glue": a Glue 5.0 job (Python 3.11; a
#   Python shell job stops at Python 3.9, older than this code) whose script is
#   orchestration/remote.py and which installs our wheel and its pinned dependencies
#   (`make glue-artifacts` writes both to dist/glue/).
# - An AWS Batch job on Fargate runs the train step when train_on = "batch": the same image,
#   with up to 16 vCPU and 120 GB, and no 15-minute limit. It needs the shop's subnets.
#
# All three run the same code on the same run record in the lake, with the same settings.

locals {
  pipeline = var.pipeline_image_tag == null ? 0 : 1
  glue     = var.glue_artifacts == null ? 0 : 1
  batch    = length(var.batch_subnet_ids) == 0 || var.pipeline_image_tag == null ? 0 : 1
  # Every setting the steps read on AWS, for the Lambda, the Glue job and the Batch job.
  pipeline_environment = merge(
    {
      RECS_LAKE              = trimsuffix("s3://${aws_s3_bucket.lake.bucket}/${local.lake_root}", "/")
      RECS_STORE             = "dynamodb://${aws_dynamodb_table.online_store.name}"
      RECS_STORE_PUBLISH     = "import" # a table per version: serving/store.py
      RECS_STORE_KMS_KEY     = aws_kms_key.lake.arn
      RECS_SINK              = "kinesis" # Firehose lands the events: the flush step is skipped
      RECS_KINESIS_STREAM    = aws_kinesis_stream.events.name
      RECS_HISTORY           = "dynamodb://${aws_dynamodb_table.history.name}"
      RECS_IDEMPOTENCY_STORE = "dynamodb://${aws_dynamodb_table.idempotency.name}"
      RECS_GLUE_DATABASE     = aws_glue_catalog_database.curated.name
      RECS_NOTIFY_TOPIC_ARN  = aws_sns_topic.pipeline.arn
      RECS_STAGE             = var.stage
      RECS_TRAINER           = var.personalize ? "personalize" : "local"
      RECS_ETL_ON            = var.etl_on
      RECS_TRAIN_ON          = var.train_on
    },
    var.personalize ? { RECS_PERSONALIZE_ROLE_ARN = aws_iam_role.personalize[0].arn } : {},
    var.train_window_days == null ? {} : { RECS_TRAIN_WINDOW_DAYS = tostring(var.train_window_days) },
    var.exploration == null ? {} : { RECS_EXPLORATION = tostring(var.exploration) },
    local.filters_environment,
  )
  account = data.aws_caller_identity.current.account_id
}

resource "aws_ecr_repository" "pipeline" {
  name                 = "${local.name}-pipeline"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.lake.arn
  }
}

resource "aws_ecr_lifecycle_policy" "pipeline" {
  repository = aws_ecr_repository.pipeline.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 20 newest images: enough to roll back a month of deploys."
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 20 }
      action       = { type = "expire" }
    }]
  })
}

# What every runner of the steps may do: the lake, the Glue catalog, the summary topic, and
# (with the Personalize trainer) Personalize. The online store comes with the publisher policy.
data "aws_iam_policy_document" "pipeline_steps" {
  statement {
    sid       = "TheLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_root}*"]
  }
  statement {
    sid       = "ListTheLake"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
  }
  statement {
    sid       = "Encryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.lake.arn]
  }
  statement {
    # The ETL creates the curated tables and adds partitions (etl/glue.py, via awswrangler);
    # the database is Terraform's, which the ETL only reads.
    sid = "CuratedTables"
    actions = [
      "glue:GetDatabase", "glue:GetTable", "glue:GetTables",
      "glue:CreateTable", "glue:UpdateTable", "glue:GetPartition", "glue:GetPartitions",
      "glue:BatchGetPartition", "glue:CreatePartition", "glue:BatchCreatePartition",
    ]
    resources = [
      "arn:aws:glue:${var.region}:${local.account}:catalog",
      aws_glue_catalog_database.curated.arn,
      "arn:aws:glue:${var.region}:${local.account}:table/${aws_glue_catalog_database.curated.name}/*",
    ]
  }
  statement {
    sid       = "Summary"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.pipeline.arn]
  }
  dynamic "statement" {
    for_each = var.personalize ? [1] : []
    content {
      # Every Personalize resource the trainer makes is named recs-<stage>...
      sid = "PersonalizeTrainer"
      actions = [
        "personalize:CreateDatasetGroup", "personalize:CreateSchema", "personalize:CreateDataset",
        "personalize:CreateDatasetImportJob", "personalize:CreateSolution",
        "personalize:CreateSolutionVersion", "personalize:CreateBatchInferenceJob",
        "personalize:CreateEventTracker", "personalize:CreateFilter",
        "personalize:DescribeDatasetGroup", "personalize:DescribeSchema",
        "personalize:DescribeDataset", "personalize:DescribeDatasetImportJob",
        "personalize:DescribeSolution", "personalize:DescribeSolutionVersion",
        "personalize:DescribeBatchInferenceJob", "personalize:DescribeEventTracker",
        "personalize:DescribeFilter", "personalize:GetSolutionMetrics",
      ]
      resources = [
        "arn:aws:personalize:${var.region}:${local.account}:*/${local.name}*",
        "arn:aws:personalize:::recipe/*",
      ]
    }
  }
  dynamic "statement" {
    for_each = var.personalize ? [1] : []
    content {
      # Personalize's List calls take no resource ARN (its service authorization reference);
      # they read names, to find the stage's resources again after a retry.
      sid = "FindPersonalizeResources"
      actions = [
        "personalize:ListDatasetGroups", "personalize:ListSchemas", "personalize:ListDatasets",
        "personalize:ListDatasetImportJobs", "personalize:ListSolutions",
        "personalize:ListSolutionVersions", "personalize:ListBatchInferenceJobs",
        "personalize:ListEventTrackers", "personalize:ListFilters",
      ]
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = var.personalize ? [1] : []
    content {
      sid       = "HandPersonalizeItsRole"
      actions   = ["iam:PassRole"]
      resources = [aws_iam_role.personalize[0].arn]
      condition {
        test     = "StringEquals"
        variable = "iam:PassedToService"
        values   = ["personalize.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_policy" "pipeline_steps" {
  name   = "${local.name}-pipeline-steps"
  policy = data.aws_iam_policy_document.pipeline_steps.json
}

# --- The pipeline Lambda (a container image) ---------------------------------------------

resource "aws_iam_role" "pipeline_steps" {
  count              = local.pipeline
  name               = "${local.name}-pipeline-steps"
  assume_role_policy = data.aws_iam_policy_document.assume["lambda"].json
}

resource "aws_cloudwatch_log_group" "pipeline_steps" {
  count             = local.pipeline
  name              = "/aws/lambda/${local.name}-pipeline-steps"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
}

data "aws_iam_policy_document" "pipeline_lambda" {
  count = local.pipeline
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.pipeline_steps[0].arn}:*"]
  }
  statement {
    # X-Ray's trace APIs take no resource ARN (AWS documents "*" for them).
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "pipeline_lambda" {
  count  = local.pipeline
  name   = "${local.name}-pipeline-steps"
  role   = aws_iam_role.pipeline_steps[0].id
  policy = data.aws_iam_policy_document.pipeline_lambda[0].json
}

resource "aws_iam_role_policy_attachment" "pipeline_lambda" {
  for_each   = local.pipeline == 0 ? {} : { steps = aws_iam_policy.pipeline_steps.arn, publish = aws_iam_policy.publisher.arn }
  role       = aws_iam_role.pipeline_steps[0].name
  policy_arn = each.value
}

resource "aws_lambda_function" "pipeline" {
  #checkov:skip=CKV_AWS_116:The state machine invokes it synchronously and catches every error (notify-failure); a DLQ would hold nothing.
  #checkov:skip=CKV_AWS_117:Every resource the steps reach (S3, DynamoDB, Glue, SNS, KMS, Personalize) is an AWS API; a VPC would only add NAT or endpoint costs.
  #checkov:skip=CKV_AWS_272:Container images are not code-signed by Lambda; the image is scanned on push to an immutable-tag repository.
  count         = local.pipeline
  function_name = "${local.name}-pipeline-steps"
  role          = aws_iam_role.pipeline_steps[0].arn
  package_type  = "Image"
  image_uri     = "${aws_ecr_repository.pipeline.repository_url}:${var.pipeline_image_tag}"
  architectures = ["arm64"]
  # The image's own entry point is reset so Batch can run `python -m orchestration.remote`;
  # the Lambda names the runtime's.
  image_config {
    entry_point = ["/lambda-entrypoint.sh"]
    command     = ["orchestration.handler.handler"]
  }
  memory_size                    = coalesce(var.pipeline_memory_mb, local.sizing[var.size].pipeline_memory)
  timeout                        = 900
  reserved_concurrent_executions = var.pipeline_concurrency
  kms_key_arn                    = aws_kms_key.lake.arn
  ephemeral_storage {
    size = 10240 # training writes its arrays to /tmp before the upload
  }
  environment {
    variables = merge(local.pipeline_environment, {
      POWERTOOLS_SERVICE_NAME = "recs-pipeline"
      POWERTOOLS_LOG_LEVEL    = "INFO"
    })
  }
  tracing_config {
    mode = "Active"
  }
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.pipeline_steps[0].name
  }
  depends_on = [aws_iam_role_policy.pipeline_lambda, aws_iam_role_policy_attachment.pipeline_lambda]
}

# --- The ETL as a Glue job ---------------------------------------------------------------

locals {
  glue_wheel   = local.glue == 0 ? null : one(fileset(var.glue_artifacts, "recs-*-py3-none-any.whl"))
  glue_modules = local.glue == 0 ? [] : [for line in split("\n", file("${var.glue_artifacts}/modules.txt")) : trimspace(line) if trimspace(line) != ""]
  glue_prefix  = "${local.lake_root}artifacts/glue"
}

resource "aws_s3_object" "glue_script" {
  count  = local.glue
  bucket = aws_s3_bucket.lake.id
  key    = "${local.glue_prefix}/remote.py"
  source = "${path.module}/../../orchestration/remote.py"
  etag   = filemd5("${path.module}/../../orchestration/remote.py")
}

resource "aws_s3_object" "glue_wheel" {
  count  = local.glue
  bucket = aws_s3_bucket.lake.id
  key    = "${local.glue_prefix}/${local.glue_wheel}"
  source = "${var.glue_artifacts}/${local.glue_wheel}"
  etag   = filemd5("${var.glue_artifacts}/${local.glue_wheel}")
}

resource "aws_iam_role" "glue" {
  count = local.glue
  name  = "${local.name}-etl-job"
  # Glue does not set aws:SourceAccount when it assumes a job's role, so its trust policy
  # names the service alone (see main.tf's assume documents).
  assume_role_policy = data.aws_iam_policy_document.assume["glue"].json
}

data "aws_iam_policy_document" "glue" {
  count = local.glue
  statement {
    # Glue writes a job's logs to groups under /aws-glue/ (with the security configuration's
    # key: AssociateKmsKey), named after the configuration and the role.
    sid       = "JobLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"]
    resources = ["arn:aws:logs:${var.region}:${local.account}:log-group:/aws-glue/*"]
  }
  statement {
    # CloudWatch's PutMetricData takes no resource ARN; the namespace condition keeps it to Glue's.
    sid       = "JobMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }
}

resource "aws_iam_role_policy" "glue" {
  count  = local.glue
  name   = "${local.name}-etl-job"
  role   = aws_iam_role.glue[0].id
  policy = data.aws_iam_policy_document.glue[0].json
}

resource "aws_iam_role_policy_attachment" "glue" {
  count      = local.glue
  role       = aws_iam_role.glue[0].name
  policy_arn = aws_iam_policy.pipeline_steps.arn
}

resource "aws_glue_security_configuration" "etl" {
  count = local.glue
  name  = "${local.name}-etl"
  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = aws_kms_key.lake.arn
    }
    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = aws_kms_key.lake.arn
    }
    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = aws_kms_key.lake.arn
    }
  }
}

resource "aws_glue_job" "etl" {
  count                  = local.glue
  name                   = "${local.name}-etl"
  description            = "recs: one step of a pipeline run (orchestration/remote.py), started by the state machine."
  role_arn               = aws_iam_role.glue[0].arn
  glue_version           = "5.0"
  worker_type            = var.glue_worker_type
  number_of_workers      = var.glue_workers
  max_retries            = 0   # the job retries the step's own errors; the state machine the rest
  timeout                = 240 # minutes
  security_configuration = aws_glue_security_configuration.etl[0].name
  execution_property {
    max_concurrent_runs = 1 # one ETL at a time, as the lake's lock would insist anyway
  }
  command {
    name            = "glueetl"
    python_version  = "3"
    script_location = "s3://${aws_s3_bucket.lake.id}/${aws_s3_object.glue_script[0].key}"
  }
  default_arguments = merge(
    {
      "--job-language"                     = "python"
      "--enable-continuous-cloudwatch-log" = "true"
      "--enable-metrics"                   = "true"
      # Our wheel, and exactly the versions the tests run (constraints.txt).
      "--additional-python-modules" = join(",", concat(["s3://${aws_s3_bucket.lake.id}/${aws_s3_object.glue_wheel[0].key}"], local.glue_modules))
    },
    # A Glue job has no environment variables: orchestration.remote puts these into its own.
    { for name, value in local.pipeline_environment : "--${name}" => value },
  )
}

# --- The trainer on AWS Batch (Fargate) --------------------------------------------------

data "aws_subnet" "batch" {
  count = local.batch
  id    = var.batch_subnet_ids[0]
}

resource "aws_security_group" "batch" {
  count       = local.batch
  name        = "${local.name}-batch"
  description = "recs Batch jobs: no inbound; HTTPS out to AWS APIs and ECR"
  vpc_id      = data.aws_subnet.batch[0].vpc_id
  egress {
    #checkov:skip=CKV_AWS_382:The jobs reach S3, DynamoDB, ECR, Glue and SNS over HTTPS; without VPC endpoints those are public addresses.
    description = "HTTPS to AWS APIs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_cloudwatch_log_group" "batch" {
  count             = local.batch
  name              = "/aws/batch/${local.name}-pipeline"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
}

resource "aws_iam_role" "batch_execution" {
  count              = local.batch
  name               = "${local.name}-batch-execution"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs-tasks"].json
}

data "aws_iam_policy_document" "batch_execution" {
  count = local.batch
  statement {
    sid       = "PullTheImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.pipeline.arn]
  }
  statement {
    # ECR's GetAuthorizationToken takes no resource ARN (AWS documents "*" for it).
    sid       = "LogInToEcr"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.batch[0].arn}:*"]
  }
  statement {
    sid       = "DecryptTheImage"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.lake.arn]
  }
}

resource "aws_iam_role_policy" "batch_execution" {
  count  = local.batch
  name   = "${local.name}-batch-execution"
  role   = aws_iam_role.batch_execution[0].id
  policy = data.aws_iam_policy_document.batch_execution[0].json
}

resource "aws_iam_role" "batch_job" {
  count              = local.batch
  name               = "${local.name}-batch-job"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs-tasks"].json
}

resource "aws_iam_role_policy_attachment" "batch_job" {
  for_each   = local.batch == 0 ? {} : { steps = aws_iam_policy.pipeline_steps.arn, publish = aws_iam_policy.publisher.arn }
  role       = aws_iam_role.batch_job[0].name
  policy_arn = each.value
}

resource "aws_batch_compute_environment" "pipeline" {
  count = local.batch
  # Without service_role, Batch uses its service-linked role (AWSServiceRoleForBatch).
  compute_environment_name = "${local.name}-pipeline"
  type                     = "MANAGED"
  compute_resources {
    type               = "FARGATE"
    max_vcpus          = var.batch_vcpu * 2
    subnets            = var.batch_subnet_ids
    security_group_ids = [aws_security_group.batch[0].id]
  }
}

resource "aws_batch_job_queue" "pipeline" {
  count    = local.batch
  name     = "${local.name}-pipeline"
  state    = "ENABLED"
  priority = 1
  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.pipeline[0].arn
  }
}

resource "aws_batch_job_definition" "pipeline" {
  count                 = local.batch
  name                  = "${local.name}-pipeline"
  type                  = "container"
  platform_capabilities = ["FARGATE"]
  timeout {
    attempt_duration_seconds = 6 * 3600 # the pipeline's lock lease (orchestration/runner.py)
  }
  container_properties = jsonencode({
    image            = "${aws_ecr_repository.pipeline.repository_url}:${var.pipeline_image_tag}"
    command          = ["python", "-m", "orchestration.remote", "--help"] # the state machine names the step
    jobRoleArn       = aws_iam_role.batch_job[0].arn
    executionRoleArn = aws_iam_role.batch_execution[0].arn
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.batch_vcpu) },
      { type = "MEMORY", value = tostring(var.batch_memory_mb) },
    ]
    runtimePlatform              = { operatingSystemFamily = "LINUX", cpuArchitecture = "ARM64" }
    networkConfiguration         = { assignPublicIp = var.batch_public_ip ? "ENABLED" : "DISABLED" }
    fargatePlatformConfiguration = { platformVersion = "LATEST" }
    ephemeralStorage             = { sizeInGiB = 50 }
    environment                  = [for name, value in local.pipeline_environment : { name = name, value = value }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.batch[0].name
        "awslogs-region"        = var.region
        "awslogs-stream-prefix" = "pipeline"
      }
    }
  })
}
