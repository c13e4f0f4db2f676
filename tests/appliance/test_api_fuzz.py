"""A bounded schemathesis run over the published schema against a real appliance (in process, its catalog and store
under a tmp directory): no 500, and every answer as the schema declares it. The long run (thousands of cases, the
stateful phase) is the CLI's, against a running daemon (docs/api.md, "Fuzzing")."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from appliance import config
from appliance.api.app import create_app
from appliance.catalog.groups import SourceInput

# A name the generator will not hit: its restores would write wherever a generated `to` points.
GROUP = f"fuzz-{uuid.uuid4().hex}"


@pytest.fixture
def api_schema(tmp_path):
    from appliance.daemon import Appliance

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    app = Appliance(config.load(None, tmp_path / "data", read_default_file=False))
    app.open()
    app.start()
    app.create_group(GROUP, [SourceInput(str(src))])
    app.engine.wait(app.request(GROUP, "sync")[0])
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(app))
    finally:
        app.stop()


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_answer_breaks_the_schema(case):
    # A request the schema allows may still be refused for what it means (a source holding the data directory):
    # that is a 400 with its fix, not a schema violation.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
