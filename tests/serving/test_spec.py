"""The committed OpenAPI spec is the app's: a route change without `make openapi` fails here."""

from __future__ import annotations

from serving.spec import SPEC_PATH, openapi_yaml


def test_the_committed_spec_matches_the_app() -> None:
    assert SPEC_PATH.read_text() == openapi_yaml(), (
        "serving/openapi.yaml is stale: run `make openapi` and commit it"
    )


def test_the_spec_documents_every_route_and_error() -> None:
    import yaml

    spec = yaml.safe_load(SPEC_PATH.read_text())
    assert set(spec["paths"]) == {
        "/v1/recommendations/personalized",
        "/v1/recommendations/related",
        "/v1/recommendations/ranking",
        "/v1/events",
        "/v1/health",
    }
    events = spec["paths"]["/v1/events"]["post"]["responses"]
    assert {"202", "400", "413", "415"} <= set(events)
    ranking = spec["paths"]["/v1/recommendations/ranking"]["post"]
    assert ranking["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RankingRequest"
    }
    assert (
        spec["components"]["schemas"]["RankingRequest"]["properties"]["itemIds"]["maxItems"] == 500
    )
    k = next(
        p
        for p in spec["paths"]["/v1/recommendations/personalized"]["get"]["parameters"]
        if p["name"] == "k"
    )
    assert (k["schema"]["minimum"], k["schema"]["maximum"], k["schema"]["default"]) == (1, 100, 5)
