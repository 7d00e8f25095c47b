"""Configuration: one typed ``Settings`` object, validated once at start-up.

``settings`` loads it (the YAML file through ``config_file``, with its ``call_config`` and
``language_config`` sections; the environment through ``env_vars``) and ``settings_rules``
holds the rules across settings that stop start-up. ``prompts`` reads the persona and call
flow from ``prompts/``. The shipped YAML file is ``agent/config.yaml``.
"""
