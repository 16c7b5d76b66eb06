"""Seeded, YAML-configured procedural buildings on a voxel grid, with labelled faces."""

from .building import Building, Style, generate_building
from .config import ARCHETYPES, DEFAULTS, load_generator_config
from .parts import DEFAULT_PARTS, Vocabulary

__all__ = ["Building", "Style", "generate_building", "ARCHETYPES", "DEFAULTS",
           "load_generator_config", "DEFAULT_PARTS", "Vocabulary"]
