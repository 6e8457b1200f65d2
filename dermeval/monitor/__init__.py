"""Continuous evaluation: score watched MLLMs' narratives, store them, find drift, track trust."""
