"""One thin module per DVC stage: read params, call dermeval, write declared outputs."""
