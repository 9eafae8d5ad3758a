variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-2"
}

variable "stage" {
  description = "Deployment stage, part of every resource name (dev, prod)."
  type        = string
  default     = "dev"
  validation {
    condition     = can(regex("^[a-z0-9-]{1,16}$", var.stage))
    error_message = "stage must be 1-16 lowercase letters, digits or dashes."
  }
}

variable "kinesis_shards" {
  description = "Shards of the events stream; 0 selects on-demand capacity."
  type        = number
  default     = 0
}

variable "firehose_buffer_mb" {
  description = "Firehose BufferingHints.SizeInMBs (RECS_BUFFER_MB is the local sink's twin)."
  type        = number
  default     = 64
}

variable "firehose_buffer_seconds" {
  description = "Firehose BufferingHints.IntervalInSeconds (RECS_BUFFER_SECONDS locally)."
  type        = number
  default     = 300
}

variable "raw_retention_days" {
  description = "Days to keep raw events before S3 expires them; curated data is kept."
  type        = number
  default     = 90
}

variable "pipeline_function_arn" {
  description = "ARN of the Lambda that runs the pipeline's steps (handler orchestration.handler.handler). Unset: no state machine or schedule yet, only the notify topic."
  type        = string
  default     = null
}

variable "pipeline_schedule" {
  description = "EventBridge Scheduler expression that starts the nightly pipeline."
  type        = string
  default     = "cron(0 2 * * ? *)"
}

variable "pipeline_timezone" {
  description = "Time zone of pipeline_schedule (IANA name)."
  type        = string
  default     = "UTC"
}

variable "lake_prefix" {
  description = "Folder of the lake inside its bucket (RECS_LAKE=s3://bucket/<lake_prefix>); empty for the bucket's root."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*)?$", var.lake_prefix))
    error_message = "lake_prefix is empty or a path such as shop/lake, without leading or trailing slashes."
  }
}

variable "firehose_direct_put" {
  description = "Also create a Direct PUT Firehose for RECS_SINK=firehose (the Kinesis-fed one refuses direct puts)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days CloudWatch log groups and S3 access logs are kept."
  type        = number
  default     = 365
}

variable "athena_bytes_scanned_cutoff" {
  description = "Largest scan one Athena query in the analysts' workgroup may make, in bytes (Athena's minimum is 10 MB)."
  type        = number
  default     = 10737418240
}

variable "api_package" {
  description = "The Lambda zip `make package` builds (API and Kinesis consumer)."
  type        = string
  default     = "../../dist/recs-api-arm64.zip"
}

variable "api_keys" {
  description = "Comma-separated API keys (RECS_API_KEYS); empty leaves the API open. Kept in the Lambda's KMS-encrypted environment."
  type        = string
  default     = ""
  sensitive   = true
}

variable "cors_origins" {
  description = "Origins browsers may call the API from (RECS_CORS_ORIGINS and the HTTP API's CORS)."
  type        = list(string)
  default     = []
}

variable "api_concurrency" {
  description = "Reserved concurrency of the API Lambda: its most instances at once."
  type        = number
  default     = 50
}

variable "api_rate_limit" {
  description = "HTTP API steady-state requests per second, across clients."
  type        = number
  default     = 500
}

variable "api_burst_limit" {
  description = "HTTP API burst of requests above the rate."
  type        = number
  default     = 1000
}

variable "api_p99_alarm_ms" {
  description = "Alarm when the API's p99 latency over 5 minutes is above this."
  type        = number
  default     = 500
}

variable "personalize_campaign_arn" {
  description = "Answer personalized requests from this Personalize campaign (RECS_PERSONALIZE_CAMPAIGN_ARN)."
  type        = string
  default     = null
}

variable "personalize_tracking_id" {
  description = "The Kinesis consumer forwards events to this Personalize event tracker (RECS_PERSONALIZE_TRACKING_ID)."
  type        = string
  default     = null
}

variable "personalize" {
  description = "Grant Amazon Personalize the lake (RECS_TRAINER=personalize): its role, and its bucket and key access."
  type        = bool
  default     = false
}

variable "require_tls" {
  description = "Refuse plain-HTTP requests to the lake. Only an emulator on loopback (make aws-local) sets false."
  type        = bool
  default     = true
}
