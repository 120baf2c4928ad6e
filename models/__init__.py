"""PosterRec models: the poster embedding model, its training, export and catalogue reader."""

import posterrec_settings  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
