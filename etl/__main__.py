"""`python -m etl`: deprecated, `recs` has every command."""

from common.cli import deprecated
from etl.cli import main

deprecated("python -m etl", "recs")
main()
