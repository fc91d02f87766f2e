"""`hivrrp check`'s verdict on the strict-mode corpus (tests/helpers/strict_corpus.py),
without keepalived or root; tests/netns/test_strict_keepalived_check.py puts keepalived -t
beside it."""

import pytest

from helpers.conf import load_text
from helpers.strict_corpus import CASES


@pytest.mark.parametrize("name", CASES)
def test_corpus_verdict(tmp_path, name):
    case = CASES[name]
    result = load_text(tmp_path, case.text)
    assert [(d.where.line, d.message) for d in result.errors] == case.expected()
    assert result.clean == (not case.errors)
    # keepalived refuses the configuration only where the daemon does too.
    assert result.ok == (not case.fatal)
