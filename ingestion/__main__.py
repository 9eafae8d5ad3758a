"""`python -m ingestion`: the ingestion stage's commands."""

from ingestion.cli import main

main()
