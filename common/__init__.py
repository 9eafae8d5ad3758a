"""Plumbing every stage shares: errors, settings, the command line, SQLite and DynamoDB helpers.

It sits below every stage (`ingestion`, `etl`, `training`, `serving`, `orchestration`) and
imports none of them, so that a stage never imports another stage just for a helper.
"""
