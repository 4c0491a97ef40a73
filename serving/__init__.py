"""The model as served: its input, preprocessing, artifact and a loaded classifier."""
