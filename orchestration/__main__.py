"""`python -m orchestration`: the same as the `recs` command."""

from orchestration.cli import main

main()
