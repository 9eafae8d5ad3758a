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

variable "pipeline_image_tag" {
  description = "Tag of the pipeline's image in the pipeline_image_repository output (`make image` builds it). Unset: no pipeline Lambda, state machine, schedule or Batch job yet; the first apply makes the repository to push to."
  type        = string
  default     = null
}

variable "pipeline_memory_mb" {
  description = "Memory of the pipeline Lambda, which runs every step not sent to Glue or Batch (Lambda gives CPU in proportion: 1,769 MB is one vCPU). Null: the size's (4,096 MB; 10,240 at large, where publish holds a version of 5 million users)."
  type        = number
  default     = null
}

variable "etl_on" {
  description = "Where the etl step runs: lambda, or glue (the Glue job; needs glue_artifacts)."
  type        = string
  default     = "lambda"
  validation {
    condition     = contains(["lambda", "glue"], var.etl_on)
    error_message = "etl_on is lambda or glue."
  }
}

variable "train_on" {
  description = "Where the train step runs: lambda, or batch (AWS Batch on Fargate; needs batch_subnet_ids)."
  type        = string
  default     = "lambda"
  validation {
    condition     = contains(["lambda", "batch"], var.train_on)
    error_message = "train_on is lambda or batch."
  }
}

variable "glue_artifacts" {
  description = "Folder `make glue-artifacts` writes (dist/glue: our wheel and modules.txt). Set: the Glue job that can run the etl step is created."
  type        = string
  default     = null
}

variable "glue_worker_type" {
  description = "Worker type of the Glue job (G.1X: 4 vCPU, 16 GB; G.2X: 8 vCPU, 32 GB). The ETL runs on the driver."
  type        = string
  default     = "G.1X"
}

variable "glue_workers" {
  description = "Workers of the Glue job; 2 is Glue's minimum."
  type        = number
  default     = 2
}

variable "batch_subnet_ids" {
  description = "Subnets for the Batch jobs on Fargate (with a route to AWS APIs: a NAT, VPC endpoints, or a public subnet with batch_public_ip). Empty: no Batch."
  type        = list(string)
  default     = []
}

variable "batch_public_ip" {
  description = "Give each Batch task a public IP (for public subnets without a NAT)."
  type        = bool
  default     = false
}

variable "batch_vcpu" {
  description = "vCPUs of a Batch training job (Fargate: 0.25 to 16)."
  type        = number
  default     = 4
}

variable "batch_memory_mb" {
  description = "Memory of a Batch training job in MiB (Fargate: up to 122,880 with 16 vCPU)."
  type        = number
  default     = 16384
}

variable "pipeline_schedule" {
  description = "EventBridge Scheduler expression that starts the nightly pipeline."
  type        = string
  default     = "cron(0 2 * * ? *)"
}

variable "train_window_days" {
  description = "Nightly training reads only the last N days of events (RECS_TRAIN_WINDOW_DAYS); null: all history. Set, a second schedule retrains on all history (full_history_schedule)."
  type        = number
  default     = null
}

variable "exploration" {
  description = "Share of each list (0 to 0.5) the nightly training keeps for new items, chosen by their attributes (RECS_EXPLORATION, docs/new-items.md); null: the share the holdout supports."
  type        = number
  default     = null
  validation {
    condition     = var.exploration == null ? true : (var.exploration >= 0 && var.exploration <= 0.5)
    error_message = "exploration must be from 0 to 0.5 (or null: chosen on the holdout)."
  }
}

variable "filters" {
  description = "Named filters in Amazon Personalize's grammar, which requests name with filter=NAME&filterValues=... (RECS_FILTERS, docs/filters.md), given to the API and to the nightly pipeline (which makes a Personalize copy of each, with the personalize backend)."
  type = map(object({
    expression      = string
    within_days     = optional(number)
    personalize_arn = optional(string)
  }))
  default = {}
  validation {
    condition     = alltrue([for name in keys(var.filters) : can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", name)) && !contains(["not-purchased", "not-seen"], name)])
    error_message = "A filter's name is 1 to 40 letters, digits, - and _, starting with a letter or digit, and not not-purchased or not-seen (the API's own)."
  }
  validation {
    # A Lambda's variables hold 4 KB in all; the API's own take about 1 KB.
    condition     = length(jsonencode(var.filters)) <= 2500
    error_message = "The filters' JSON must be at most 2,500 characters to fit the API Lambda's 4 KB of environment variables: shorten or drop filters."
  }
}

variable "full_history_schedule" {
  description = "EventBridge Scheduler expression of the full-history run, when train_window_days is set; null: none (a big shop, whose whole history does not fit one training: docs/deploy.md)."
  type        = string
  default     = "cron(0 4 ? * SUN *)"
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

# Reserved concurrency comes out of the account's Lambda concurrency quota, of which AWS
# keeps 10 unreserved; a new account's quota is often 10, so any reservation fails the apply
# until the quota is raised (Service Quotas: "Concurrent executions"). Unreserved (null) is
# the default; docs/deploy.md says when to reserve.
variable "api_concurrency" {
  description = "Reserved concurrency of the API Lambda (null: unreserved, the account's pool)."
  type        = number
  default     = null
}

variable "consumer_concurrency" {
  description = "Reserved concurrency of the Kinesis consumer (null: unreserved)."
  type        = number
  default     = null
}

variable "pipeline_concurrency" {
  description = "Reserved concurrency of the pipeline steps' Lambda (null: unreserved)."
  type        = number
  default     = null
}

variable "size" {
  description = "The shop's size, which sets the HTTP API's throttles (local.sizing in api.tf; docs/deploy.md's sizing table): small, medium or large."
  type        = string
  default     = "small"
  validation {
    condition     = contains(["small", "medium", "large"], var.size)
    error_message = "size is small, medium or large."
  }
}

variable "api_rate_limit" {
  description = "HTTP API steady-state requests per second, across clients (null: the size's)."
  type        = number
  default     = null
}

variable "api_burst_limit" {
  description = "HTTP API burst of requests above the rate (null: the size's)."
  type        = number
  default     = null
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

variable "personalize_filter_arn" {
  description = "Filter the campaign's answers with this Personalize filter, e.g. training's not-purchased one (RECS_PERSONALIZE_FILTER_ARN)."
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
