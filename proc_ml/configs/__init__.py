"""Training configs shipped with proc-ml (``proc-ml train --config NAME`` finds them by name)."""
