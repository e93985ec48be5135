"""Every upstream adapt fixture: our adapter must give Caddy's JSON or Caddy's error."""

from __future__ import annotations

import pytest

from tests.adapt.corpus import Fixture, fixtures, make_workdir
from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError

FIXTURES = fixtures()
PASSED: list[str] = []


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture(fixture: Fixture, tmp_path, monkeypatch) -> None:
    module = fixture.mock_module()
    if module is not None:
        pytest.skip(f"needs {module}, which exists only in Caddy's Go test binary")
    work = make_workdir(tmp_path, fixture.caddyfile)
    monkeypatch.chdir(work)
    body = (work / "Caddyfile").read_bytes()
    if fixture.expected_error is not None:
        with pytest.raises(CaddyfileError) as info:
            adapt_caddyfile(body, "Caddyfile")
        assert fixture.expected_error in str(info.value)
    else:
        result = adapt_caddyfile(body, "Caddyfile")
        assert result.config == fixture.expected_json
    PASSED.append(fixture.name)
