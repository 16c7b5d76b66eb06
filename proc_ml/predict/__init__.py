"""Predicting from files (torch-free): the library behind ``proc-ml predict`` and the batch
tasks. ``inputs`` reads a building from any file; ``parts`` labels its faces and writes the
outputs; ``shapes`` classifies or segments a mesh or point cloud; ``texture`` textures
facade label maps and whole buildings."""
