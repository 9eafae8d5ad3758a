"""`python -m ingestion`: deprecated, `recs` has every command."""

from common.cli import deprecated
from ingestion.cli import main

deprecated("python -m ingestion", "recs")
main()
