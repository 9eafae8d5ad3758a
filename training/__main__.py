"""`python -m training`: deprecated, `recs` has every command."""

from common.cli import deprecated
from training.cli import main

deprecated("python -m training", "recs")
main()
