"""Command groups of the ``dermeval`` command line, one module each; :mod:`dermeval.cli` mounts them."""
