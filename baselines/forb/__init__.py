"""The FORB retrieval baselines: neural embedders with exact cosine search (CLIP, DINO,
DINOv2), bag-of-words with RANSAC re-ranking, chance level, and generated FORB-shaped data."""
