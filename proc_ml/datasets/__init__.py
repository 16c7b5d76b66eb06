"""Readers for every dataset format ``proc-ml generate`` writes (see docs/formats.md).

Malformed input raises ``DatasetError`` with one line naming the file and the line or
field that is wrong.
"""

from .buildings import (BuildingDataset, open_dataset, read_adjacency_csv, read_building_npz,
                        read_buildings_csv, read_faces_csv, read_labels_json, read_labelled_mesh,
                        read_manifest, read_point_cloud)

__all__ = ["BuildingDataset", "open_dataset", "read_adjacency_csv", "read_building_npz",
           "read_buildings_csv", "read_faces_csv", "read_labels_json", "read_labelled_mesh",
           "read_manifest", "read_point_cloud"]
