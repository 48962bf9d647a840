"""The params: one schema of every section, validation with messages that name the key, and the profiles."""
from genda.config.schema import (  # noqa: F401
    SCHEMA, da_setting_config, effective_compute, face_gan_config, load_params, read_yaml, repo_root,
    resolve_path, validate)
from genda.config.cond import COND_FIELDS, check_sampler, cond_config, cond_kind  # noqa: F401
