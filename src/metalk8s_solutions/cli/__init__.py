"""The `solutions` command: parses arguments, calls the engine, prints (tables, JSON, YAML,
progress).
"""
