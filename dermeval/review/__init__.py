"""The expert loop: reviewers rate what the evaluator is least sure of, and the next version learns from it.

- :mod:`~dermeval.review.queue` picks what to rate next from the store (by expected value, stratified,
  with a random share for unbiased estimates);
- :mod:`~dermeval.review.ratings` stores ratings (append-only, who and when) and measures agreement;
- :mod:`~dermeval.review.export` writes them as DermEval records, the ``feedback`` source of ``prepare``;
- :mod:`~dermeval.review.auth` signs reviewers in from a local users file (hashed passwords).
"""
