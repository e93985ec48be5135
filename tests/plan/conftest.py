"""tests/plan loads programs only in test_corpus_programs; it shares the datapath
tests' throwaway pin root."""

from tests.datapath.conftest import layout  # noqa: F401
