"""FORB, the flat object retrieval benchmark: task, prediction formats, labels and scoring."""
