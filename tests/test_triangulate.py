"""Concave OBJ polygons become triangles inside them (proc_ml.triangulate), not trimesh's fan."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from proc_ml.meshio import read_geometry
from proc_ml.triangulate import ear_clip, is_convex, triangulate_obj_polygons

L_PLAN = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]          # area 3
U_PLAN = [(0, 0), (3, 0), (3, 3), (2, 3), (2, 1), (1, 1), (1, 3), (0, 3)]   # area 7
COMB = [(0, 0), (7, 0), (7, 3), (6, 3), (6, 1), (5, 1), (5, 3), (4, 3), (4, 1), (3, 1),
        (3, 3), (2, 3), (2, 1), (1, 1), (1, 3), (0, 3)]                    # area 13


def _area(plan) -> float:
    x, y = np.asarray(plan, float).T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _inside(point, plan) -> bool:
    """Reference point-in-polygon: an odd number of edge crossings of a ray to +x."""
    x, y = point
    crossings = 0
    for (x0, y0), (x1, y1) in zip(plan, plan[1:] + plan[:1]):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            crossings += 1
    return crossings % 2 == 1


@pytest.mark.parametrize("plan", [L_PLAN, U_PLAN, COMB, L_PLAN[::-1], U_PLAN[3:] + U_PLAN[:3]],
                         ids=["L", "U", "comb", "L clockwise", "U from a reflex corner"])
def test_ear_clipping_covers_the_polygon_with_triangles_inside_it(plan):
    points = np.array([(x, y, 5.0) for x, y in plan])
    triangles = ear_clip(points)
    assert len(triangles) == len(plan) - 2 and not is_convex(points)
    total = 0.0
    for tri in triangles:
        corners = [plan[k] for k in tri]
        area = _area(corners)
        assert np.sign(area) == np.sign(_area(plan))      # the polygon's own orientation
        total += area
        assert _inside(np.mean(corners, axis=0), plan)    # never outside the polygon
    assert total == pytest.approx(_area(plan))


def _obj(lines) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def test_a_concave_obj_face_is_read_as_the_polygon_not_a_fan(tmp_path):
    """An L-shaped floor and a U-shaped facade (standing in the x-z plane, written with
    texture and normal references and a negative index): read with their true areas and
    the polygon's facing, where trimesh's fan gives 4 and 11."""
    lines = [f"v {x} {y} 0" for x, y in L_PLAN] + [f"v {x} 0 {z}" for x, z in U_PLAN]
    lines += ["vt 0 0", "vn 0 0 1"]
    lines += ["f " + " ".join(f"{k}/1/1" for k in range(3, 7)) +  " 1/1/1 2/1/1",
              "f " + " ".join(str(k - 15) for k in range(7, 15))]
    path = tmp_path / "plan.obj"
    path.write_bytes(_obj(lines))
    fan = trimesh.load(path, process=False)
    assert fan.area == pytest.approx(15.0)                # 4 + 11: trimesh alone
    geometry = read_geometry(path)
    mesh = trimesh.Trimesh(geometry.vertices, geometry.faces, process=False)
    assert len(mesh.faces) == 4 + 6 and mesh.area == pytest.approx(3.0 + 7.0)
    assert (mesh.face_normals[:4, 2] > 0.99).all()        # the L faces up, as written
    assert (mesh.face_normals[4:, 1] < -0.99).all()       # the U turns counter-clockwise in x-z
    path.write_bytes(_obj(lines).replace(b"\n", b"\r\n"))
    assert trimesh.Trimesh(*(lambda g: (g.vertices, g.faces))(read_geometry(path))).area == \
        pytest.approx(10.0)


def test_convex_polygons_and_quads_are_left_to_trimesh():
    square = _obj(["v 0 0 0", "v 1 0 0", "v 1 1 0", "v 0.5 1.5 0", "v 0 1 0", "f 1 2 3 4 5",
                   "f 1 2 3 5"])
    assert triangulate_obj_polygons(square) == square
    broken = _obj(["v 0 0 0", "f 1 2 3 4 9"])                    # out of range: trimesh says
    assert triangulate_obj_polygons(broken) == broken
