"""Orchestration: the `recs` command and the nightly pipeline that runs the stages in order."""
