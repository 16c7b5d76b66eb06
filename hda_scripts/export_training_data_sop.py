"""proc-ml Export Training Data: Python SOP code (Houdini 19.5+, Python 3).

Writes the labelled faces of the input massing as one building of a proc-ml dataset
folder, in the formats ``proc-ml generate buildings`` writes (grids .npz, faces.csv,
adjacency.csv, buildings.csv, meshes, point clouds, labels.json, dataset.yaml), so a
studio's own procedural network produces training data. The geometry passes through.

Input 0: axis-aligned polygons on a ``cellsize`` lattice covering a closed voxel massing
(each polygon may span several cells), with a prim attribute naming the part: a string
(part name) or an int (index into the vocabulary). The output of proc-ml Predict Parts
qualifies. Corrections: where the string prim attribute ``part_fix`` holds a part name
(empty = not corrected), that part is written instead of ``partattrib``'s, and the grid
gets ``label_fixed`` (True on the cell faces of corrected prims; docs/formats.md). An
unknown name in ``part_fix`` is an error naming the building, the prim and the name.
The detail string ``street_sides`` (written by Predict Parts) becomes the grid's ``street``,
so fine-tuning a street-aware model sees the street sides the prediction used; a massing
whose walls were turned (a prediction on a turned mesh) is turned back onto the grid first.

Units: positions and ``cellsize`` are in scene units; the hip file's Unit Length
(``hou.scaleToMKS("m1")``, metres per unit) takes them to metres, so the dataset is in
metres like every proc-ml dataset (a centimetre scene sets ``cellsize`` 300 for 3 m cells).

Parameters: ``output`` (folder), ``buildingid`` (int; buildings of a dataset are
numbered 0..N-1, one per cook, e.g. ``@wedgeindex`` in PDG), ``cellsize`` (float, scene units),
``gridsize`` (int x3; every building of a dataset shares it, 0 0 0 = fit the massing),
``partattrib`` (default ``part_name``), ``parts`` (vocabulary, space separated; empty =
the detail attribute ``part_names`` if present, else proc-ml's default parts),
``formats`` (``all`` or a comma list of faces,adjacency,grids,meshes,points),
``upaxis`` (y/z), ``archetype`` (a label stored per building), ``seed`` (split and point
sampling), ``valfraction``/``testfraction`` (split), ``updateindex`` (toggle: rebuild
the dataset-wide tables and dataset.yaml after this building; turn it off for parallel
PDG cooks and press the HDA's "Rebuild Index" button once at the end).

Houdini massing has no style features: they are written as zeros and dataset.yaml says
``style_present: false``; train on it with ``--set dataset.use_style=false``.
"""

import hou

from proc_ml.dcc import houdini as hgeo
from proc_ml.dcc.export import export_labelled_faces, parse_parts
from proc_ml.errors import ProcMLError
from proc_ml.formats import parse_formats


def _grid_size(node):
    parm = node.parmTuple("gridsize")
    return (16, 16, 16) if parm is None else tuple(int(v) for v in parm.eval())


def _part_values(node, geo):
    name = hgeo.parm_string(node, "partattrib", hgeo.PART_NAME_ATTRIB)
    values = hgeo.prim_attrib_values(geo, name)
    if values is None:
        raise ProcMLError(f"the input has no prim attribute '{name}' naming each face's part")
    if values.ndim != 1:
        raise ProcMLError(f"prim attribute '{name}' must hold one value per prim, "
                          f"not {values.shape[1]}")
    return values


def export(node, geo, scale):
    output = hgeo.output_path(node, "output")
    if not output:
        raise ProcMLError("no output folder set: set the 'output' parameter")
    parts = parse_parts(hgeo.parm_string(node, "parts", ""), hgeo.detail_string(geo, hgeo.PART_NAMES_DETAIL))
    formats = hgeo.parm_string(node, "formats", "all")

    points, counts, indices = hgeo.polygons(geo, scale)     # metres
    part_fix = hgeo.prim_attrib_values(geo, hgeo.PART_FIX_ATTRIB)
    return export_labelled_faces(
        output, int(hgeo.parm_value(node, "buildingid", 0)), points, counts, indices,
        _part_values(node, geo), parts, hgeo.length_parm(node, "cellsize", 3.0, scale), _grid_size(node),
        up=hgeo.parm_string(node, "upaxis", "y"), formats=parse_formats(formats), source="houdini",
        archetype=hgeo.parm_string(node, "archetype", "custom"),
        split=(float(hgeo.parm_value(node, "valfraction", 0.1)), float(hgeo.parm_value(node, "testfraction", 0.1))),
        seed=int(hgeo.parm_value(node, "seed", 0)), update_index=bool(hgeo.parm_value(node, "updateindex", 1)),
        part_fix=part_fix, street=hgeo.detail_string(geo, hgeo.STREET_DETAIL))


def cook(node):
    geo = node.geometry()
    if hgeo.prim_count(geo) == 0:
        raise hou.NodeWarning("input has no polygons: nothing exported")
    scale = hgeo.unit_length()      # metres per Houdini unit: datasets are in metres
    try:
        export(node, geo, scale)
    except ProcMLError as exc:
        message = str(exc)
        if "not on the cell grid" in message:     # 32-bit P far from the origin?
            hint = hgeo.precision_note(geo, cell_size=hgeo.length_parm(node, "cellsize", 3.0, scale),
                                       scale=scale)
            message += f" ({hint})" if hint else ""
        if "cell" in message.lower():       # Cell Size left in metres in a centimetre scene?
            hint = hgeo.unit_note(scale, hgeo.parm_value(node, "cellsize", 3.0))
            message += f"; {hint}" if hint else ""
        raise hou.NodeError(message) from None
    except OSError as exc:      # a folder that cannot be written: one line, not a traceback
        raise hou.NodeError(f"{exc.filename or hgeo.parm_string(node, 'output', '')}: cannot write "
                            f"the dataset ({exc.strerror or exc})") from None


cook(hou.pwd())
