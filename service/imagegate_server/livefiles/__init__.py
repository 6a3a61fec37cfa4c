"""Operator files the gateway reads as documents and keeps current while it runs.

:mod:`.documents` reads one TOML or YAML file (by its extension) into plain data
and reports a problem as one line naming the file and the field, never a value;
:mod:`.watch` keeps a loaded file current: re-read when it (or a file it names)
changes, the last good version kept when a new one is bad. The clients file and
the upstreams file are both read this way.
"""
