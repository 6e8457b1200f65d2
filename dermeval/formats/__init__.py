"""Adapters for the data formats the platform reads and writes, one module per family."""

from dermeval.formats.candidates import CandidateNarrative, load_candidates
from dermeval.formats.common import LoadResult, RowError, write_jsonl
from dermeval.formats.dermbench import DermBenchCase, load_dermbench
from dermeval.formats.judge import JudgeOutput, load_judge_outputs
from dermeval.formats.records import DermEvalRecord, load_records

__all__ = [
    "CandidateNarrative", "DermBenchCase", "DermEvalRecord", "JudgeOutput", "LoadResult", "RowError",
    "load_candidates", "load_dermbench", "load_judge_outputs", "load_records", "write_jsonl",
]
