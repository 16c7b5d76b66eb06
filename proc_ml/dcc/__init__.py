"""DCC integration shared by Houdini, Blender and the CLI (numpy + onnxruntime only).

* ``geometry``: DCC geometry -> voxel grids (voxel points, polygon massing), frames.
* ``predict``: the cached model session and the massing -> labelled quads path.
* ``prims``: predictions -> per-primitive arrays (part, name, probabilities, colour).
* ``export``: labelled DCC faces -> building datasets in the ``proc-ml generate`` formats.
* ``faces``: polygons on a cell lattice <-> grid cell faces (the mapping ``export`` and
  ``fixes`` share).
* ``fixes``: the artist's corrections (the ``part_fix`` face attribute) applied to a new
  prediction and to exported labels (``label_fixed``).
* ``houdini`` / ``blender``: thin adapters between ``hou`` / ``bpy`` geometry and numpy;
  import them only inside the DCC (they import ``hou`` / ``bpy``).
"""
