"""The MVTec 3D-AD and Eyecandies anomaly-detection baselines: PatchCore memory banks on RGB
(WideResNet-50-2, DINO ViT-B/8) and FPFH point features, the published point-cloud
preprocessing, and generated datasets in both layouts."""
