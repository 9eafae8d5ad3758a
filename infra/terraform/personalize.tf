# The Amazon Personalize backend (RECS_TRAINER=personalize): the role Personalize assumes to
# read the ETL's exports and write batch recommendations, and the grants on the lake's bucket
# and key that Personalize also needs (its docs: a bucket policy for the service principal,
# and key access for both). Nothing here exists unless personalize = true.

locals {
  personalize = var.personalize ? 1 : 0
  personalize_reads = [
    "${aws_s3_bucket.lake.arn}/${local.lake_root}exports/personalize/*",
    "${aws_s3_bucket.lake.arn}/${local.lake_root}batch-input/*",
  ]
  personalize_writes = ["${aws_s3_bucket.lake.arn}/${local.lake_root}batch/*"]
}

resource "aws_iam_role" "personalize" {
  count              = local.personalize
  name               = "${local.name}-personalize"
  assume_role_policy = data.aws_iam_policy_document.assume["personalize"].json
}

data "aws_iam_policy_document" "personalize" {
  statement {
    sid       = "ReadExports"
    actions   = ["s3:GetObject"]
    resources = local.personalize_reads
  }
  statement {
    sid       = "WriteBatchOutput"
    actions   = ["s3:PutObject"]
    resources = local.personalize_writes
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
}

resource "aws_iam_role_policy" "personalize" {
  count  = local.personalize
  name   = "${local.name}-personalize"
  role   = aws_iam_role.personalize[0].id
  policy = data.aws_iam_policy_document.personalize.json
}
