"""DermSynth: the embedded default world, generated deterministically from a seed.

Every rating in a DermSynth world comes from a simulated expert panel: figures
computed on it are simulated figures.
"""
