"""Texturing DCC geometry (numpy only): the labelled quads of a parts prediction in, UVs
per point and an atlas out. The Houdini texture SOP and the Blender texture operator call
``texture_quads``; the textures come from ``proc_ml.runtime.textures.TextureGenerator``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..grid import DIRECTION_VECTORS
from ..meshing import QUAD_CORNERS, to_z_up
from ..runtime.textures import TextureGenerator
from ..textures.building import texture_faces
from ..textures.images import write_png
from ..textures.pairs import DEFAULT_MODULE_PX
from .faces import turn_walls_to_axes


class QuadTextures:
    """UVs for the points of labelled quads, and the atlas they sample."""

    def __init__(self, uv, atlas, label_atlas, faces: int, facades: int):
        self.uv, self.atlas, self.label_atlas = uv, atlas, label_atlas
        self.faces, self.facades = faces, facades


def texture_quads(points, polygons, parts, part_names, generator: TextureGenerator | None = None, *,
                  up: str = "z", clockwise: bool = False, material: str = "plaster",
                  module_px: int | None = None, seed: int = 0) -> QuadTextures:
    """UVs (``float32[N, 2]``, one per point) and atlas for the labelled quads a parts
    prediction writes (``proc_ml.dcc.prims.LabelledPrims``: every quad an exterior cell
    face with its own four points, in the DCC frame ``up`` / winding ``clockwise``).

    The grid is recovered from the quads themselves: cell size from their edges, cell and
    direction of each quad from its centre and winding, so any chain of DCC nodes that
    keeps the quads (moving the whole building included) can be textured.
    """
    polygons = np.asarray(polygons, dtype=np.int64)
    if polygons.ndim != 2 or polygons.shape[1] != 4 or not len(polygons):
        raise ModelError("texturing needs the labelled quads of a parts prediction (4 points each)")
    ccw = polygons[:, ::-1] if clockwise else polygons                       # CCW seen from outside
    # a prediction on a mesh whose walls were turned to the grid comes back turned: undo it
    pts, _ = turn_walls_to_axes(to_z_up(np.asarray(points, dtype=np.float64), up), ccw)
    quads = pts[ccw]
    normals = np.cross(quads[:, 1] - quads[:, 0], quads[:, 3] - quads[:, 0])
    edges = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    cell = float(np.median(edges))
    directions = np.argmax(normals @ DIRECTION_VECTORS.T.astype(np.float64), axis=1)
    aligned = np.abs(np.abs(normals @ DIRECTION_VECTORS[directions].T.astype(np.float64)).diagonal()
                     - cell * cell) <= 1e-3 * cell * cell
    if cell <= 0 or not aligned.all() or np.abs(edges - cell).max() > 1e-3 * cell:
        raise ModelError("texturing needs axis-aligned square quads of one cell size "
                         "(the output of the parts prediction)")
    centres = quads.mean(axis=1) - 0.5 * cell * DIRECTION_VECTORS[directions]
    origin = quads.reshape(-1, 3).min(axis=0)
    cells = np.floor((centres - origin) / cell).astype(np.int64)
    gen = generator
    px = int(module_px or (gen.module_px if gen is not None else None) or DEFAULT_MODULE_PX)
    faces = texture_faces(cells, directions, np.asarray(parts, dtype=np.int64), list(part_names), gen,
                          module_px=px, material=material, seed=seed,
                          palette=gen.palette if gen is not None else None)
    # match each quad's points to its canonical corners by position
    canonical = (cells[:, None, :] + QUAD_CORNERS[directions]) * cell + origin           # [F, 4, 3]
    order = polygons[:, ::-1] if clockwise else polygons
    given = pts[order]
    nearest = np.argmin(((given[:, :, None, :] - canonical[:, None, :, :]) ** 2).sum(-1), axis=2)
    uv = np.zeros((len(pts), 2), dtype=np.float32)
    uv[order.reshape(-1)] = np.take_along_axis(faces.uv, nearest[..., None], axis=1).reshape(-1, 2)
    return QuadTextures(uv, faces.atlas.image, faces.label_atlas.image, len(polygons), len(faces.sheets))


def write_atlas(path, image: np.ndarray) -> str:
    """Write the atlas PNG atomically; returns the path written."""
    write_png(path, image)
    return str(path)
