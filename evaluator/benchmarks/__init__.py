"""One module per benchmark. Each module registers itself with ``evaluator.registry.register``;
the registry imports every module found here, so a new benchmark needs no edit elsewhere."""
