"""PosterRec recsvc: the Flask HTTP API that serves the published index."""

import posterrec_settings  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
