# One dashboard for the whole path, and alarms on what should page someone, sent to SNS
# (subscribe an e-mail or a pager to the alarms_topic_arn output).

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.lake.arn
}

locals {
  api_id = aws_apigatewayv2_api.recs.id
  alarms = merge(
    {
      api-5xx = {
        namespace  = "AWS/ApiGateway", metric = "5xx", stat = "Sum", threshold = 5, period = 300
        dimensions = { ApiId = local.api_id, Stage = "$default" }
        what       = "the API answered 5xx more than 5 times in 5 minutes"
      }
      api-p99-latency = {
        namespace  = "AWS/ApiGateway", metric = "Latency", stat = "p99", threshold = var.api_p99_alarm_ms, period = 300
        dimensions = { ApiId = local.api_id, Stage = "$default" }
        what       = "the API's p99 latency is above ${var.api_p99_alarm_ms} ms"
      }
      api-lambda-errors = {
        namespace  = "AWS/Lambda", metric = "Errors", stat = "Sum", threshold = 0, period = 300
        dimensions = { FunctionName = aws_lambda_function.recs["api"].function_name }
        what       = "the API Lambda raised"
      }
      api-lambda-throttles = {
        namespace  = "AWS/Lambda", metric = "Throttles", stat = "Sum", threshold = 0, period = 300
        dimensions = { FunctionName = aws_lambda_function.recs["api"].function_name }
        what       = "the API Lambda was throttled (raise the account's concurrency quota, or set api_concurrency)"
      }
      consumer-errors = {
        namespace  = "AWS/Lambda", metric = "Errors", stat = "Sum", threshold = 0, period = 300
        dimensions = { FunctionName = aws_lambda_function.recs["consumer"].function_name }
        what       = "the Kinesis consumer raised"
      }
      consumer-iterator-age = {
        namespace  = "AWS/Lambda", metric = "IteratorAge", stat = "Maximum", threshold = 300000, period = 300
        dimensions = { FunctionName = aws_lambda_function.recs["consumer"].function_name }
        what       = "realtime history is more than 5 minutes behind the stream"
      }
      firehose-delivery = {
        namespace  = "AWS/Firehose", metric = "DeliveryToS3.DataFreshness", stat = "Maximum", threshold = 3 * var.firehose_buffer_seconds, period = 300
        dimensions = { DeliveryStreamName = aws_kinesis_firehose_delivery_stream.raw["kinesis"].name }
        what       = "events are not landing in the raw zone (oldest record older than three buffer intervals)"
      }
    },
    var.personalize_tracking_id == null ? {} : {
      tracker-forwarding = {
        # ingestion/tracker.py counts each event the event tracker refused after retries.
        namespace  = "recs", metric = "TrackerEventsFailed", stat = "Sum", threshold = 0, period = 300
        dimensions = { service = local.consumer_environment.POWERTOOLS_SERVICE_NAME }
        what       = "Personalize's event tracker refused events: the campaign is not seeing live events (the consumer's log says why)"
      }
    },
    local.pipeline == 0 ? {} : {
      pipeline-failed = {
        namespace  = "AWS/States", metric = "ExecutionsFailed", stat = "Sum", threshold = 0, period = 3600
        dimensions = { StateMachineArn = aws_sfn_state_machine.pipeline[0].arn }
        what       = "a nightly pipeline run failed (its notify message says which step and why)"
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "recs" {
  for_each            = local.alarms
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.what
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.stat == "p99" ? null : each.value.stat
  extended_statistic  = each.value.stat == "p99" ? "p99" : null
  dimensions          = each.value.dimensions
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_dashboard" "recs" {
  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = [
      for n, w in [
        { title = "API latency (ms)", metrics = [
          ["AWS/ApiGateway", "Latency", "ApiId", local.api_id, "Stage", "$default", { stat = "p50" }],
          ["AWS/ApiGateway", "Latency", "ApiId", local.api_id, "Stage", "$default", { stat = "p99" }],
        ] },
        { title = "API 4xx and 5xx", metrics = [
          ["AWS/ApiGateway", "4xx", "ApiId", local.api_id, "Stage", "$default", { stat = "Sum" }],
          ["AWS/ApiGateway", "5xx", "ApiId", local.api_id, "Stage", "$default", { stat = "Sum" }],
        ] },
        { title = "Lambda errors and throttles", metrics = flatten([
          for f in keys(local.functions) : [
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.recs[f].function_name, { stat = "Sum" }],
            ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.recs[f].function_name, { stat = "Sum" }],
          ]
        ]) },
        { title = "Kinesis consumer iterator age (ms)", metrics = [
          ["AWS/Lambda", "IteratorAge", "FunctionName", aws_lambda_function.recs["consumer"].function_name, { stat = "Maximum" }],
        ] },
        { title = "Firehose delivery to S3", metrics = [
          ["AWS/Firehose", "DeliveryToS3.Success", "DeliveryStreamName", aws_kinesis_firehose_delivery_stream.raw["kinesis"].name, { stat = "Average" }],
          ["AWS/Firehose", "DeliveryToS3.DataFreshness", "DeliveryStreamName", aws_kinesis_firehose_delivery_stream.raw["kinesis"].name, { stat = "Maximum", yAxis = "right" }],
        ] },
        { title = "Pipeline runs", metrics = local.pipeline == 0 ? [] : [
          ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", aws_sfn_state_machine.pipeline[0].arn, { stat = "Sum" }],
          ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.pipeline[0].arn, { stat = "Sum" }],
        ] },
        ] : {
        type   = "metric"
        x      = (n % 2) * 12
        y      = floor(n / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          region  = var.region
          view    = "timeSeries"
          stacked = false
          period  = 300
          metrics = w.metrics
        }
      }
    ]
  })
}
