"""PosterRec localize: regional poster variants and the synthetic demo corpus."""

import posterrec_settings  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
