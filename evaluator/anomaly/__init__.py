"""Multimodal industrial anomaly detection (MVTec 3D-AD, Eyecandies): datasets, prediction
maps, masks and scoring under the published protocol v1."""
