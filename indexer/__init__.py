"""PosterRec indexer: the catalogue store, ingest and offline ScaNN index rebuilds."""

import posterrec_settings  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
