"""ETL: curates the raw zone into Parquet, the Personalize exports and the analysts' views.

It reads the raw zone through `ingestion.raw` and `ingestion.contract`; it lands with issue 3.
"""
