"""The part vocabulary: names and the roles the rules use (colours: ``proc_ml.colours``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..colours import part_colours
from ..errors import ConfigError
from ..validation import check_part_name

DEFAULT_PARTS = ("wall", "window", "door", "roof", "balcony", "shopfront", "ground")
REQUIRED_ROLES = ("wall", "roof", "ground")
# A role missing from a custom vocabulary falls back to the first present part listed.
FALLBACKS = {
    "window": ("window", "wall"),
    "door": ("door", "wall"),
    "balcony": ("balcony", "window", "wall"),
    "shopfront": ("shopfront", "window", "wall"),
}


@dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"parts: duplicate part names in {list(self.names)}")
        for name in self.names:
            try:
                check_part_name(name)
            except ValueError as exc:
                raise ConfigError(f"parts: a part name {exc}, got {name!r}") from None
        missing = [r for r in REQUIRED_ROLES if r not in self.names]
        if missing:
            raise ConfigError(f"parts: vocabulary must contain {', '.join(missing)}")
        if len(self.names) > 127:
            raise ConfigError("parts: at most 127 parts (labels are stored as int8)")

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def role(self, role: str) -> int:
        """Index of the part that plays ``role`` in the rules (with fallbacks)."""
        for candidate in FALLBACKS.get(role, (role,)):
            if candidate in self.names:
                return self.names.index(candidate)
        raise KeyError(role)

    def colours(self) -> list[tuple[int, int, int]]:
        """An RGB colour per part (``proc_ml.colours.part_colours``)."""
        return part_colours(self.names)
