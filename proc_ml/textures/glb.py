"""Textured GLB output: one mesh, UVs, a PBR material with the atlas as baseColorTexture."""

from __future__ import annotations

import os

import numpy as np

from ..fileio import write_bytes

#: proc-ml grids are z up; glTF is y up: (x, y, z) -> (x, z, -y), a rotation.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def textured_mesh(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, texture: np.ndarray,
                  name: str = "building"):
    """A ``trimesh.Trimesh`` (y up) with ``TextureVisuals`` and a PBR material."""
    import trimesh
    from PIL import Image

    material = trimesh.visual.material.PBRMaterial(
        name=f"{name}_facades", baseColorTexture=Image.fromarray(np.ascontiguousarray(texture)),
        metallicFactor=0.0, roughnessFactor=0.9)
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(uv, dtype=np.float64), material=material)
    return trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float64) @ Z_UP_TO_Y_UP.T,
                           faces=np.asarray(triangles), visual=visual, process=False)


def write_textured_glb(path: str | os.PathLike, vertices, triangles, uv, texture,
                       name: str = "building") -> None:
    """Write the textured mesh as a binary glTF, atomically."""
    mesh = textured_mesh(vertices, triangles, uv, texture, name)
    write_bytes(path, mesh.export(file_type="glb"))
