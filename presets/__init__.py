"""The TOML presets that ship with cltui: one published (or demo) experiment per file."""
