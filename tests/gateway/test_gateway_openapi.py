"""The gateway's OpenAPI document: generated from the models it validates with, and exactly what
the running gateway serves."""

from __future__ import annotations

import httpx
import jsonschema
import pytest
from gpulab.hub.field_errors import FieldError
from gpulab.hub.jobs.gateway.listing import JobListPage, JobListQuery
from gpulab.hub.jobs.gateway.openapi import openapi
from gpulab.hub.jobs.spec import JobSpec, SpecError, parse_job_spec

from gpulab.wire.jobs import JOB_STATES

PREFIX = "/services/jobs-gateway/"


def _spec_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(openapi(PREFIX)["components"]["schemas"]["JobSpec"])


def test_job_spec_schema_is_the_model_s() -> None:
    served = openapi(PREFIX)["components"]["schemas"]["JobSpec"]
    generated = JobSpec.model_json_schema()
    assert set(served["properties"]) == set(generated["properties"])
    for name, prop in served["properties"].items():
        # the same schema, with the API's own words for what each field accepts
        assert {k: v for k, v in prop.items() if k != "description"} == {
            k: v for k, v in generated["properties"][name].items() if k != "description"
        }
    assert served["required"] == ["name"] and served["additionalProperties"] is False


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "train", "command": ["python", "train.py"]},
        {"name": "nb", "notebook": "a.ipynb", "parameters": {"lr": 0.1}, "gpus": 1},
        {"name": "q", "command": ["true"], "cpu": 2, "memory": "8Gi", "max_runtime": "2h"},
        {"name": "r", "command": ["true"], "cpu": "500m", "max_runtime": 3600, "retries": 2},
    ],
)
def test_what_the_gateway_accepts_the_schema_accepts(spec: dict) -> None:
    parse_job_spec(spec)  # the gateway accepts it ...
    _spec_validator().validate(spec)  # ... and so does a client checking the document


@pytest.mark.parametrize(
    "spec",
    [
        {"command": ["true"]},  # no name
        {"name": "x", "command": ["true"], "owner": "bob"},  # unknown key
        {"name": "x", "command": ["true"], "gpus": 65},
        {"name": "x", "command": ["true"], "retries": -1},
    ],
)
def test_what_the_schema_refuses_the_gateway_refuses(spec: dict) -> None:
    assert list(_spec_validator().iter_errors(spec))
    with pytest.raises(SpecError):
        parse_job_spec(spec)


def test_states_and_problems_come_from_the_shared_types() -> None:
    doc = openapi(PREFIX)
    schemas = doc["components"]["schemas"]
    assert schemas["Job"]["properties"]["state"]["enum"] == list(JOB_STATES)
    params = {p["name"]: p for p in doc["paths"]["/jobs"]["get"]["parameters"]}
    assert params["state"]["schema"]["enum"] == list(JOB_STATES)
    problem = FieldError("gpus", "too many", "0..4", "policy").as_dict()
    jsonschema.Draft202012Validator(schemas["FieldError"]).validate(problem)
    assert schemas["Error"]["properties"]["problems"]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }


def test_the_list_parameters_and_page_are_the_models() -> None:
    doc = openapi(PREFIX)
    params = {p["name"]: p for p in doc["paths"]["/jobs"]["get"]["parameters"]}
    query = JobListQuery.model_json_schema(by_alias=True)["properties"]
    assert set(params) == set(query)
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500} | {
        "default": 50
    }
    page = doc["components"]["schemas"]["JobList"]
    assert set(page["properties"]) == set(
        JobListPage.model_json_schema(by_alias=True)["properties"]
    )
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Job"}


@pytest.mark.e2e
@pytest.mark.ceph
def test_the_gateway_serves_the_generated_document(gw) -> None:
    expected = openapi(PREFIX)
    for url in (gw.platform.hub_url + PREFIX + "openapi.json", gw.base + "/openapi.json"):
        r = httpx.get(url, timeout=60)
        assert r.status_code == 200, url
        assert r.json() == expected, url
