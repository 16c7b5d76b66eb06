"""Datasets as training and evaluation read them: building datasets (``buildings``),
ModelNet-layout shape folders (``modelnet``), point clouds and meshes as net inputs
(``pointclouds``), paired facade images (``pix2pix``), and the dataset writer
(``writer``). The readers of each on-disk format live in ``proc_ml.formats`` and are
re-exported here under their historical names.

Malformed input raises ``DatasetError`` with one line naming the file and the line or
field that is wrong.
"""

from ..formats.adjacency_csv import read as read_adjacency_csv
from ..formats.buildings_csv import read as read_buildings_csv
from ..formats.faces_csv import read as read_faces_csv
from ..formats.grid_npz import read as read_building_npz
from ..formats.labelled_mesh import read as read_labelled_mesh
from ..formats.legend import read as read_labels_json
from ..formats.manifest import read as read_manifest
from ..formats.point_cloud import read as read_point_cloud
from .buildings import BuildingDataset, BuildingRecord, open_dataset

__all__ = ["BuildingDataset", "BuildingRecord", "open_dataset", "read_adjacency_csv",
           "read_building_npz", "read_buildings_csv", "read_faces_csv", "read_labels_json",
           "read_labelled_mesh", "read_manifest", "read_point_cloud"]
