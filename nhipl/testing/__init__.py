"""Policy testing: ``*_test.nhipl`` files, invariants, coverage, JUnit, Hypothesis.

- :func:`run_files` / :func:`discover`: run the tests and invariants of test files
  (what ``nhipl test`` and the pytest plugin use);
- :func:`coverage`: which rules no test made determining;
- :func:`junit_xml`: a run as JUnit XML;
- :func:`check_invariant`: search for a counterexample to an invariant;
- :func:`requests`, :func:`policies`: Hypothesis strategies;
- :func:`assert_decision`, :func:`assert_never_allows`, :func:`assert_never`: assertions
  for tests written in Python.

See ``docs/testing.md``.
"""

from .assertions import assert_decision, assert_never, assert_never_allows, never
from .coverage import Coverage, FileCoverage, coverage
from .invariants import InvariantResult, check_invariant
from .junit import junit_xml
from .runner import CaseResult, FileResult, RunResult, discover, run_files
from .strategies import policies, policy_texts, requests
from .vocabulary import Vocabulary

__all__ = [
    "CaseResult",
    "Coverage",
    "FileCoverage",
    "FileResult",
    "InvariantResult",
    "RunResult",
    "Vocabulary",
    "assert_decision",
    "assert_never",
    "assert_never_allows",
    "check_invariant",
    "coverage",
    "discover",
    "junit_xml",
    "never",
    "policies",
    "policy_texts",
    "requests",
    "run_files",
]
