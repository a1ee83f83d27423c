"""agentcron.yaml: its schema, loading with precise errors, and the example file."""

from agentcron.config.errors import ConfigError, ConfigProblem
from agentcron.config.example import EXAMPLE_CONFIG
from agentcron.config.loader import (
    expand_value,
    load_config,
    parse_config_text,
    validate_task_mapping,
)
from agentcron.config.schema import (
    ApiConfig,
    ConfigFile,
    LoadedConfig,
    config_json_schema,
    is_loopback_host,
)

__all__ = [
    "EXAMPLE_CONFIG",
    "ApiConfig",
    "ConfigError",
    "ConfigFile",
    "ConfigProblem",
    "LoadedConfig",
    "config_json_schema",
    "expand_value",
    "is_loopback_host",
    "load_config",
    "parse_config_text",
    "validate_task_mapping",
]
