"""`python -m etl`: the ETL stage's commands."""

from etl.cli import main

main()
