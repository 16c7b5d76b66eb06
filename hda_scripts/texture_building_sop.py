"""proc-ml Texture Building: Python SOP code (Houdini 19.5+, Python 3).

Textures the labelled quads of a proc-ml Predict Parts SOP with a pix2pix generator
exported by ``proc-ml export onnx`` (see docs/pix2pix.md): every facade is drawn as a
label map, the generator turns it into a texture, the textures are packed into one atlas
PNG written to the ``atlas`` path, and the quads get UVs into it.

Input 0: the Predict Parts SOP's output (one quad per exterior cell face with the prim
attribute ``part`` and the detail attribute ``part_names``); the building may have been
moved since, as long as the quads are kept.
Output: the same quads plus the point attribute ``uv`` (float3, u v 0) and the prim
attribute ``texture_path`` (the atlas file, e.g. for a material's base colour texture).

Parameters: ``model`` (file; empty with ``procedural`` on), ``atlas`` (file to write),
``material`` (plaster/brick), ``modulepx`` (pixels per module, 0 = the model's),
``procedural`` (toggle: the procedural texture instead of a model), ``seed``,
``device`` (auto/cpu/cuda/tensorrt/directml/coreml, ``proc_ml.runtime.DEVICES``), ``threads``.
"""

import numpy as np

import hou

from proc_ml.dcc import houdini as hgeo
from proc_ml.errors import ProcMLError
from proc_ml.dcc.texture import texture_quads, write_atlas
from proc_ml.runtime.textures import TextureGenerator

UV_ATTRIB = "uv"
TEXTURE_PATH_ATTRIB = "texture_path"


def _generator(node):
    if bool(hgeo.parm_value(node, "procedural", 0)):
        return None
    model = hgeo.parm_string(node, "model", "").strip()
    if not model:
        raise ProcMLError("no model file set: point 'model' at a pix2pix .onnx "
                          "(or turn on 'procedural')")
    device, threads = hgeo.parm_string(node, "device", "auto"), int(hgeo.parm_value(node, "threads", 0))
    return TextureGenerator.open(model, device, threads)     # proc-ml's one model cache


def _write_uvs(geo, uv, atlas_path):
    # an existing uv / texture_path of another type or size (a float2 uv, an int attribute)
    # is replaced; a vertex uv (what UV SOPs write) would hide the point uv, so it goes too
    vertex_uv = geo.findVertexAttrib(UV_ATTRIB)
    if vertex_uv is not None:
        vertex_uv.destroy()
    hgeo.fresh_attrib(geo, hou.attribType.Point, UV_ATTRIB, (0.0, 0.0, 0.0))
    uvw = np.zeros((len(uv), 3), dtype=np.float32)
    uvw[:, :2] = uv
    geo.setPointFloatAttribValuesFromString(UV_ATTRIB, uvw.tobytes(), hou.numericData.Float32)
    hgeo.fresh_attrib(geo, hou.attribType.Prim, TEXTURE_PATH_ATTRIB, "")
    geo.setPrimStringAttribValues(TEXTURE_PATH_ATTRIB, [atlas_path] * hgeo.prim_count(geo))


def cook(node):
    geo = node.geometry()
    try:
        names = hgeo.detail_string(geo, hgeo.PART_NAMES_DETAIL)
        parts = hgeo.prim_attrib_values(geo, hgeo.PART_ATTRIB)
        if names is None or parts is None:
            raise ProcMLError("input has no 'part' / 'part_names' attributes: connect the "
                              "output of a proc-ml Predict Parts SOP")
        atlas_path = hgeo.output_path(node, "atlas")
        if not atlas_path:
            raise ProcMLError("no atlas file set: 'atlas' names the PNG to write")
        points, counts, indices = hgeo.polygons(geo, hgeo.unit_length())     # metres
        if len(counts) == 0:
            raise hou.NodeWarning("input has no quads: nothing to texture")
        if (counts != 4).any():
            raise ProcMLError("every primitive must be a quad (the Predict Parts output)")
        textures = texture_quads(points, indices.reshape(-1, 4), parts, names.split(), _generator(node),
                                 up="y", clockwise=True,
                                 material=hgeo.parm_string(node, "material", "plaster"),
                                 module_px=int(hgeo.parm_value(node, "modulepx", 0)) or None,
                                 seed=int(hgeo.parm_value(node, "seed", 0)))
        write_atlas(atlas_path, textures.atlas)
    except ProcMLError as exc:
        raise hou.NodeError(str(exc)) from None
    except OSError as exc:      # a folder that cannot be written: one line, not a traceback
        raise hou.NodeError(f"{atlas_path}: cannot write the atlas ({exc.strerror or exc})") from None
    _write_uvs(geo, textures.uv, atlas_path)


cook(hou.pwd())
