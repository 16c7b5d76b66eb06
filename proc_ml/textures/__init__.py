"""Facade textures (numpy only): label maps and procedural textures from a building's
parts, paired training data for pix2pix, atlas packing and textured GLB output.

* ``layout``: facades of a voxel building as module grids (front views, sheets);
* ``palette``: facade label classes and colours, label-map colour checks;
* ``render``: label maps and procedural textures from one per-pixel layout;
* ``pairs``: ``proc-ml generate facades`` (labels/, images/, palette.json, facades.json);
* ``building``: a whole building's label maps -> textures -> atlas -> UVs;
* ``atlas``, ``glb``, ``images``, ``parity``: packing, GLB and PNG output, export inputs.

The pix2pix model itself lives in ``proc_ml.trainers.models.pix2pix`` / ``trainers.pix2pix``; its
torch-free inference in ``proc_ml.runtime.textures``.
"""
