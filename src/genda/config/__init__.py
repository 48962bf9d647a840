"""The params: one typed schema of every section (schema), reading and validation with messages that name the key
(load, messages), each method's effective settings (resolve) and profiles as overlays of params.yaml (profiles).
``python -m genda.config compose|check``: see genda.config.__main__."""
from genda.config.load import load_params, read_yaml, validate  # noqa: F401
from genda.config.profiles import compose, merge  # noqa: F401
from genda.config.resolve import (  # noqa: F401
    check_sampler, cond_config, cond_kind, da_setting_config, effective_compute, face_gan_config)
from genda.config.schema import COND_FIELDS, SCHEMA  # noqa: F401
from genda.runtime.paths import repo_root, resolve_path  # noqa: F401
