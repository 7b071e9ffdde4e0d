"""Ingestion: files -> (manifest rows, quarantine rows, cache pixels), shard by shard.

The stage runs as three kinds of job:

1. :mod:`readrace.ingest.listing` writes the dataset's file list with a shard number per
   file.
2. :mod:`readrace.ingest.shard` decodes each file of one shard once (:mod:`~.dicom`,
   :mod:`~.raster`), joins the dataset's tables (:mod:`~.adapters`), applies the cohort
   exclusions, orders CT slices, and preprocesses the pixels for the cache
   (:mod:`~.preprocess`).
3. :mod:`readrace.ingest.gather` concatenates the shards into the dataset's manifest,
   quarantine, cache and summary, assigns patient-level splits, and checks that nothing was
   lost.
"""
