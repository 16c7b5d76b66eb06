"""Writers for every dataset format proc-ml produces (see docs/formats.md).

Each writer turns one building (or a set of rows) into bytes or files; ``dataset`` runs
the whole ``proc-ml generate`` job over many buildings in parallel.
"""
