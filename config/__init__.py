"""Configuration: the settings object, the TOML model files and their validation."""
