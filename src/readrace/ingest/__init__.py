"""Ingestion: files -> (manifest rows, quarantine rows, cache pixels), shard by shard.

The stage runs as three kinds of job:

1. :mod:`readrace.ingest.listing` writes the dataset's file list with a pseudonym
   (file_id) and a shard number per file.
2. :mod:`readrace.ingest.shard` decodes each file of one shard once (:mod:`~.dicom`,
   :mod:`~.raster`), joins the dataset's tables (:mod:`~.adapters`), applies the cohort
   exclusions, orders CT slices, and preprocesses the pixels for the cache
   (:mod:`~.preprocess`).
3. :mod:`readrace.ingest.gather` concatenates the shards into the dataset's manifest,
   quarantine, cache, summary and descriptor, assigns patient-level splits, and checks that
   nothing was lost.

Source paths and library messages carry identifiers, so public outputs name a file by its
``file_id`` and give only the public part of a reason (:mod:`~.reasons`); the listing, the map
from manifest rows to files and the reasons' private details are written to ``private/``.
Numeric record values are parsed in one place (:mod:`~.values`).
"""
