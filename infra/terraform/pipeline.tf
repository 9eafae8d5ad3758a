# The nightly pipeline: the Step Functions state machine generated from orchestration/steps.py
# (orchestration/statemachine.asl.json), started every night by an EventBridge Scheduler
# schedule, with its summary published to SNS. The steps run in the pipeline Lambda, the Glue
# job or a Batch job (compute.tf); until pipeline_image_tag names the pipeline's image, only
# the topic is created, so this file applies before that image exists.

resource "aws_sns_topic" "pipeline" {
  name              = "${local.name}-pipeline"
  kms_master_key_id = aws_kms_key.lake.arn
}

resource "aws_cloudwatch_log_group" "pipeline" {
  count             = local.pipeline
  name              = "/aws/vendedlogs/states/${local.name}-pipeline"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
}

resource "aws_iam_role" "pipeline" {
  count              = local.pipeline
  name               = "${local.name}-pipeline"
  assume_role_policy = data.aws_iam_policy_document.assume["states"].json
}

data "aws_iam_policy_document" "pipeline" {
  count = local.pipeline
  statement {
    sid       = "RunTheSteps"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.pipeline[0].arn, "${aws_lambda_function.pipeline[0].arn}:*"]
  }
  dynamic "statement" {
    for_each = local.glue == 0 ? [] : [1]
    content {
      # glue:startJobRun.sync starts the job, polls its run, and stops it if the run is stopped.
      sid       = "RunTheEtlJob"
      actions   = ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"]
      resources = [aws_glue_job.etl[0].arn]
    }
  }
  dynamic "statement" {
    for_each = local.batch == 0 ? [] : [1]
    content {
      sid       = "SubmitBatchJobs"
      actions   = ["batch:SubmitJob"]
      resources = [aws_batch_job_queue.pipeline[0].arn, "${aws_batch_job_definition.pipeline[0].arn_prefix}:*"]
    }
  }
  dynamic "statement" {
    for_each = local.batch == 0 ? [] : [1]
    content {
      # batch:submitJob.sync: DescribeJobs and TerminateJob take no job ARN known in advance
      # (Batch names jobs by id at submission), so "*" as Step Functions' docs show.
      sid       = "FollowBatchJobs"
      actions   = ["batch:DescribeJobs", "batch:TerminateJob"]
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = local.batch == 0 ? [] : [1]
    content {
      # The rule Step Functions manages to hear of Batch jobs' ends (its .sync pattern).
      sid       = "HearBatchJobsEnd"
      actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
      resources = ["arn:aws:events:${var.region}:${local.account}:rule/StepFunctionsGetEventsForBatchJobsRule"]
    }
  }
  statement {
    # The aws-sdk integrations that poll Personalize's long jobs. Personalize names them
    # recs-<stage>-..., the prefix every resource of the Personalize trainer takes.
    sid = "PollPersonalize"
    actions = [
      "personalize:DescribeDatasetImportJob",
      "personalize:DescribeSolutionVersion",
      "personalize:DescribeBatchInferenceJob",
    ]
    resources = [
      "arn:aws:personalize:${var.region}:${data.aws_caller_identity.current.account_id}:dataset-import-job/${local.name}-*",
      "arn:aws:personalize:${var.region}:${data.aws_caller_identity.current.account_id}:solution/${local.name}-*",
      "arn:aws:personalize:${var.region}:${data.aws_caller_identity.current.account_id}:batch-inference-job/${local.name}-*",
    ]
  }
  statement {
    # CloudWatch Logs' log delivery APIs take no resource ARN: AWS documents "*" for them
    # (Step Functions' "Logging using CloudWatch Logs" page).
    sid = "DeliverLogs"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "pipeline" {
  count  = local.pipeline
  role   = aws_iam_role.pipeline[0].id
  policy = data.aws_iam_policy_document.pipeline[0].json
}

resource "aws_sfn_state_machine" "pipeline" {
  count    = local.pipeline
  name     = "${local.name}-pipeline"
  role_arn = aws_iam_role.pipeline[0].arn
  definition = templatefile("${path.module}/../../orchestration/statemachine.asl.json", {
    pipeline_function_arn = aws_lambda_function.pipeline[0].arn
    # A branch the settings never take may name nothing: its Choice is never true.
    etl_glue_job         = try(aws_glue_job.etl[0].name, "")
    batch_job_queue      = try(aws_batch_job_queue.pipeline[0].arn, "")
    batch_job_definition = try(aws_batch_job_definition.pipeline[0].arn, "")
  })
  lifecycle {
    precondition {
      condition     = var.etl_on != "glue" || local.glue == 1
      error_message = "etl_on = \"glue\" needs the Glue job: run `make glue-artifacts` and set glue_artifacts = \"../../dist/glue\"."
    }
    precondition {
      condition     = var.train_on != "batch" || local.batch == 1
      error_message = "train_on = \"batch\" needs Batch: set batch_subnet_ids to subnets that reach AWS APIs."
    }
  }
  # Every state's input and output: run ids, step names and counts, no shopper data.
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.pipeline[0].arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }
  tracing_configuration {
    enabled = true
  }
}

resource "aws_iam_role" "scheduler" {
  count              = local.pipeline
  name               = "${local.name}-pipeline-schedule"
  assume_role_policy = data.aws_iam_policy_document.assume["scheduler"].json
}

data "aws_iam_policy_document" "scheduler" {
  count = local.pipeline
  statement {
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.pipeline[0].arn]
  }
  statement {
    # The schedule's input is encrypted with the lake key (kms_key_arn below); Scheduler
    # decrypts it as this role before each start.
    sid       = "DecryptTheSchedule"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.lake.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count  = local.pipeline
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

# The nightly run, and with a training window a second one on a longer schedule that trains
# on all of history, so long cycles and slow items stay in the model (a big shop, whose
# history does not fit one training, sets full_history_schedule = null). The lake's lock keeps
# the two from overlapping (a second one waits, then retries).
locals {
  schedules = merge(
    {
      nightly = {
        expression  = var.pipeline_schedule
        description = "Start the recs nightly pipeline."
        input       = { now = "<aws.scheduler.scheduled-time>" }
      }
    },
    var.train_window_days == null || var.full_history_schedule == null ? {} : {
      full-history = {
        expression  = var.full_history_schedule
        description = "Start the recs pipeline on all of history (no training window)."
        input       = { now = "<aws.scheduler.scheduled-time>", full_history = true }
      }
    },
  )
}

resource "aws_scheduler_schedule" "pipeline" {
  for_each                     = local.pipeline == 1 ? local.schedules : {}
  name                         = "${local.name}-pipeline-${each.key}"
  description                  = each.value.description
  schedule_expression          = each.value.expression
  schedule_expression_timezone = var.pipeline_timezone
  kms_key_arn                  = aws_kms_key.lake.arn
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_sfn_state_machine.pipeline[0].arn
    role_arn = aws_iam_role.scheduler[0].arn
    # The run's clock is the time the schedule fired (orchestration.handler's "now").
    input = jsonencode(each.value.input)
    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 3600
    }
  }
}

moved {
  from = aws_scheduler_schedule.pipeline[0]
  to   = aws_scheduler_schedule.pipeline["nightly"]
}
