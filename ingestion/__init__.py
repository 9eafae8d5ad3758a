"""Ingestion: the event contract, the sinks that accept events, and the raw zone they land in.

Everything downstream (etl, training, serving) imports the contract from here; nothing here
imports from downstream.
"""
