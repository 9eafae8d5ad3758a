"""Fuzz the API from its own committed OpenAPI spec with schemathesis, over HTTP on loopback.

Every generated request, valid or not, must get an answer the spec documents, in the
documented shape, and never a 5xx; a request the spec calls invalid must be refused.

One built-in check is left out: `positive_data_acceptance`, which expects every request the
schema allows to be accepted. The event contract has rules JSON Schema cannot state (ts
between 2000 and five minutes from now; the 1.6 MB body limit), and the API refuses those with a 400
that names the rule, as it should.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from serving.spec import SPEC_PATH
from tests.serving_helpers import PublishedShop, published_shop, services_for, serving

schema = schemathesis.openapi.from_path(str(SPEC_PATH))
# Ids are exact to the spec's pattern in ASCII; in the rest of Unicode the API also refuses
# format and separator marks the pattern cannot name, so strings stay ASCII here.
schema.config.generation.update(codec="ascii")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    shop: PublishedShop = published_shop(root)
    services = services_for(shop, root)
    with serving(services) as base:
        yield base
    services.sink.close()


#: One test per operation, each with its own id: schemathesis's own parametrize gives them all
#: one node id, and pytest-xdist then runs only one of them.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_request_gets_a_5xx_or_an_undocumented_answer(
    operation: schemathesis.APIOperation, base_url: str
) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    def answers(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url)
        assert response.status_code < 500, (response.status_code, response.text)
        case.validate_response(response, excluded_checks=[checks.positive_data_acceptance])

    answers()
