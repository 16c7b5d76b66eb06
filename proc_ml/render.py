"""PNG pictures of labelled buildings (matplotlib, Agg backend): coloured quads + legend.

``render_parts`` draws one or more labelled quad meshes side by side (e.g. prediction
next to ground truth) and returns PNG bytes; the demo and ``proc-ml predict`` use it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .colours import UNLABELLED
from .meshing import QuadMesh


def render_parts(meshes: Sequence[QuadMesh], parts: Sequence[str], colours,
                 titles: Sequence[str] | None = None, size: float = 4.5, dpi: int = 110,
                 elev: float = 28.0, azim: float = -58.0, columns: int | None = None) -> bytes:
    """PNG bytes: one 3D view per mesh (z up), faces coloured by part, one shared legend.

    A mesh is a ``QuadMesh`` (``parts`` per quad) or any triangle mesh with ``vertices``,
    ``triangles`` and ``triangle_parts``.

    Views fill rows of ``columns`` (default: all in one row).
    """
    import io

    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    titles = list(titles) if titles is not None else [""] * len(meshes)
    table = np.array([[c / 255.0 for c in rgb] for rgb in list(colours) + [UNLABELLED]])
    cols = max(1, min(columns or len(meshes), len(meshes)))
    rows = -(-len(meshes) // cols)
    fig = Figure(figsize=(size * cols + 1.6, size * rows), dpi=dpi)
    used: set[int] = set()
    for i, (mesh, title) in enumerate(zip(meshes, titles)):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        if hasattr(mesh, "parts"):                  # QuadMesh: one quad per face
            quads = mesh.vertices.reshape(-1, 4, 3)
            face_parts = np.asarray(mesh.parts, dtype=np.int64)
        else:                                       # any triangle mesh with triangle_parts
            quads = mesh.vertices[mesh.triangles]
            face_parts = np.asarray(mesh.triangle_parts, dtype=np.int64)
        face_colours = table[np.where(face_parts >= 0, face_parts, len(table) - 1)]
        ax.add_collection3d(Poly3DCollection(quads, facecolors=face_colours,
                                             edgecolors=(0, 0, 0, 0.25), linewidths=0.2))
        _frame(ax, mesh.vertices, elev, azim)
        ax.set_title(title, fontsize=10)
        used.update(int(p) for p in np.unique(face_parts) if p >= 0)
    handles = [Patch(facecolor=table[p], edgecolor="black", label=parts[p]) for p in sorted(used)]
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=9, frameon=False)
    fig.subplots_adjust(left=0.0, right=1.0 - 1.4 / fig.get_figwidth(), bottom=0.02,
                        top=1.0 - 0.35 / fig.get_figheight(), wspace=0.0, hspace=0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _frame(ax, vertices: np.ndarray, elev: float, azim: float) -> None:
    """Equal-aspect limits around the vertices and a clean view."""
    if len(vertices):
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    else:
        lo, hi = np.zeros(3), np.ones(3)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()


def render_points(points: np.ndarray, labels: np.ndarray, parts, colours, size: float = 5.0,
                  dpi: int = 110) -> bytes:
    """PNG bytes: a 3D scatter of the points (z up) coloured by part, with a legend."""
    import io

    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rgb = np.array(colours, dtype=np.float64)[labels] / 255.0
    fig = Figure(figsize=(size, size), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=rgb, s=2, depthshade=False)
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - half, c + half)
    ax.view_init(elev=28.0, azim=-58.0)
    present = sorted(set(labels.tolist()))
    fig.legend(handles=[Patch(color=np.array(colours[i]) / 255.0, label=parts[i]) for i in present],
               loc="lower center", ncol=min(4, max(1, len(present))), fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
