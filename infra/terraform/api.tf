# The HTTP API in front of the API Lambda (payload format 2.0). Each of the app's paths is a
# route with and without /v1, on any method, so the app itself answers a wrong method with the
# 405 that names the right one (serving/app.py's METHODS; a test keeps the two lists equal).

locals {
  api_paths = ["/recommendations/personalized", "/recommendations/related", "/recommendations/ranking", "/events", "/health", "/docs"]
  api_routes = toset(flatten([
    for path in local.api_paths : ["ANY ${path}", "ANY /v1${path}"]
  ]))
}

resource "aws_apigatewayv2_api" "recs" {
  name          = "${local.name}-api"
  protocol_type = "HTTP"
  description   = "recs recommendations API"

  dynamic "cors_configuration" {
    for_each = length(var.cors_origins) > 0 ? [1] : []
    content {
      allow_origins = var.cors_origins
      allow_methods = ["GET", "POST", "OPTIONS"]
      allow_headers = ["content-type", "idempotency-key", "x-api-key"]
      max_age       = 3600
    }
  }
}

resource "aws_apigatewayv2_integration" "recs" {
  api_id                 = aws_apigatewayv2_api.recs.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.recs["api"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 10000
}

resource "aws_apigatewayv2_route" "recs" {
  #checkov:skip=CKV_AWS_309:The app authorizes each request itself against RECS_API_KEYS (X-Api-Key), the first README's scheme, and answers 401 in JSON; an API Gateway authorizer would answer before it, in another shape.
  for_each           = local.api_routes
  api_id             = aws_apigatewayv2_api.recs.id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.recs.id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${local.name}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
}

resource "aws_apigatewayv2_stage" "recs" {
  api_id      = aws_apigatewayv2_api.recs.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = coalesce(var.api_burst_limit, local.sizing[var.size].burst)
    throttling_rate_limit  = coalesce(var.api_rate_limit, local.sizing[var.size].rate)
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      httpMethod     = "$context.httpMethod"
      routeKey       = "$context.routeKey"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationMs  = "$context.integrationLatency"
      error          = "$context.integrationErrorMessage"
    })
  }
}

resource "aws_lambda_permission" "api" {
  statement_id   = "AllowHttpApi"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.recs["api"].function_name
  principal      = "apigateway.amazonaws.com"
  source_arn     = "${aws_apigatewayv2_api.recs.execution_arn}/*/*"
  source_account = data.aws_caller_identity.current.account_id
}

# The sizing table (docs/deploy.md explains each row). A shop's peak requests per second are
# its recommendation requests plus its event posts (up to 100 events each) at five times the
# daily mean; each size's rate covers twice that peak and stays under API Gateway's
# account-wide default of 10,000 requests per second in a region.
#   small:  100k events and 30k requests a day  -> peak    2 r/s; rate   500
#   medium: 5M events and 3M requests a day    -> peak  177 r/s; rate 1,000
#   large:  50M events and 50M requests a day  -> peak 2,922 r/s; rate 6,000
# The API Lambda's memory grows with the catalog it holds (the item side of a version; users'
# histories come from the store); the pipeline Lambda's with the version publish loads whole
# (for the users' profile rows): `python -m benchmarks.big_shop` measures both.
locals {
  sizing = {
    small  = { rate = 500, burst = 1000, api_memory = 1024, pipeline_memory = 4096 }
    medium = { rate = 1000, burst = 2000, api_memory = 1024, pipeline_memory = 4096 }
    large  = { rate = 6000, burst = 5000, api_memory = 3072, pipeline_memory = 10240 }
  }
}
