output "lake_uri" {
  description = "Set RECS_LAKE to this."
  value       = trimsuffix("s3://${aws_s3_bucket.lake.bucket}/${local.lake_root}", "/")
}

output "kinesis_stream" {
  description = "Set RECS_SINK=kinesis and RECS_KINESIS_STREAM to this."
  value       = aws_kinesis_stream.events.name
}

output "raw_events_firehose" {
  description = "The Firehose that lands the Kinesis stream in the lake's raw/events/."
  value       = aws_kinesis_firehose_delivery_stream.raw["kinesis"].name
}

output "firehose_stream" {
  description = "Set RECS_SINK=firehose and RECS_FIREHOSE_STREAM to this (null unless firehose_direct_put)."
  value       = try(aws_kinesis_firehose_delivery_stream.raw["direct"].name, null)
}

output "producer_policy_arn" {
  description = "Attach to whatever puts events on the stream."
  value       = aws_iam_policy.producer.arn
}

output "online_store" {
  description = "Set RECS_STORE to this."
  value       = "dynamodb://${aws_dynamodb_table.online_store.name}"
}

output "publisher_policy_arn" {
  description = "Attach to the role that runs `recs publish`."
  value       = aws_iam_policy.publisher.arn
}

output "notify_topic_arn" {
  description = "Set RECS_NOTIFY_TOPIC_ARN to this: the nightly pipeline's summary goes there."
  value       = aws_sns_topic.pipeline.arn
}

output "pipeline_state_machine_arn" {
  description = "The nightly pipeline (null until pipeline_image_tag is set)."
  value       = one(aws_sfn_state_machine.pipeline[*].arn)
}

output "history" {
  description = "Set RECS_HISTORY to this on the API and the Kinesis consumer."
  value       = "dynamodb://${aws_dynamodb_table.history.name}"
}

output "history_table" {
  description = "The recent-history table's name (RECS_HISTORY takes it as dynamodb://<name>)."
  value       = aws_dynamodb_table.history.name
}

output "idempotency_store" {
  description = "Set RECS_IDEMPOTENCY_STORE to this on the API."
  value       = "dynamodb://${aws_dynamodb_table.idempotency.name}"
}

output "glue_database" {
  description = "Set RECS_GLUE_DATABASE to this: the ETL registers the curated tables there."
  value       = aws_glue_catalog_database.curated.name
}

output "athena_workgroup" {
  description = "The Athena workgroup analysts query the curated tables in."
  value       = aws_athena_workgroup.analysts.name
}

output "api_url" {
  description = "The API's base URL: GET <api_url>/v1/health."
  value       = aws_apigatewayv2_stage.recs.invoke_url
}

output "alarms_topic_arn" {
  description = "Subscribe an e-mail or a pager to this: every alarm goes there."
  value       = aws_sns_topic.alarms.arn
}

output "personalize_role_arn" {
  description = "Set RECS_PERSONALIZE_ROLE_ARN to this (null unless personalize = true)."
  value       = one(aws_iam_role.personalize[*].arn)
}

output "pipeline_image_repository" {
  description = "Push the pipeline's image here (`make image`), then set pipeline_image_tag to its tag."
  value       = aws_ecr_repository.pipeline.repository_url
}

output "pipeline_steps_policy_arn" {
  description = "Attach to whatever else runs pipeline steps (a CI job, an operator's role)."
  value       = aws_iam_policy.pipeline_steps.arn
}

output "etl_glue_job" {
  description = "The Glue job that runs the etl step when etl_on = \"glue\" (null without glue_artifacts)."
  value       = one(aws_glue_job.etl[*].name)
}

output "batch_job_queue" {
  description = "The Batch queue of the train step when train_on = \"batch\" (null without batch_subnet_ids)."
  value       = one(aws_batch_job_queue.pipeline[*].arn)
}
