# The online store serving reads: one DynamoDB table. `recs publish` writes each version's
# rows (pk = "user#U1" or "item#I1", sk = version) and then flips the pointer item
# (pk = "_pointer", sk = "live"); serving/store.py is the contract.

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

# What `recs publish` needs on the table; attach it to the role that runs publishing.
resource "aws_iam_policy" "publisher" {
  name = "${local.name}-publisher"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:GetItem"]
        Resource = aws_dynamodb_table.online_store.arn
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.lake.arn
      }
    ]
  })
}
