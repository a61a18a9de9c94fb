"""The server's /openapi.json (generated from engine.mt5.spec) says what docs/mt5_rest_api.md says: the
same routes, the same parameters and body fields, the same split between the routes shared with the
quant-server bridge and this contract's additions, and the record shapes of engine.mt5.contract."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from engine.mt5 import contract
from engine.mt5.sim.embedded import Simulator

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mt5_rest_api.md"
ROW = re.compile(r"^\| `(GET|POST) (/[^`]*)` \| (.*?) \| .*? \| (yes|no) \|$")
NAME = re.compile(r"`(\w+)`( \(ours[;)])?")


def _documented() -> dict[tuple[str, str], dict[str, Any]]:
    """The routes table of the docs: (method, path) -> {names: {name: shared}, shared}."""
    table = {}
    for line in DOCS.read_text().splitlines():
        m = ROW.match(line)
        if m:
            method, path, cell, shared = m.groups()
            cell = re.sub(r"\(`\{[^)]*\}`\)|\(`[A-Z]+`(, `\w+`)*\)", "", cell)  # drop value examples
            names = {n: not ours for n, ours in NAME.findall(cell)}
            table[(method, path)] = {"names": names, "shared": shared == "yes"}
    return table


@pytest.fixture
def openapi(simulator: Simulator) -> dict[str, Any]:
    r = requests.get(simulator.url + "/openapi.json", timeout=10)  # open, like /health
    assert r.status_code == 200
    return r.json()


def test_the_docs_table_lists_every_route(openapi: dict[str, Any]) -> None:
    documented = _documented()
    served = {(m.upper(), path) for path, ops in openapi["paths"].items() for m in ops}
    assert len(documented) >= 20
    assert set(documented) == served


def test_parameters_bodies_and_sharing_match_the_docs(openapi: dict[str, Any]) -> None:
    for (method, path), doc in _documented().items():
        op = openapi["paths"][path][method.lower()]
        assert op["x-shared"] is doc["shared"], (method, path)
        served = {p["name"]: p["x-shared"] for p in op.get("parameters", []) if p["in"] in ("query", "path")
                  and p["name"] != contract.IDEMPOTENCY_HEADER}
        if method == "POST":
            headers = [p["name"] for p in op["parameters"] if p["in"] == "header"]
            assert headers == [contract.IDEMPOTENCY_HEADER], path
            body = op["requestBody"]["content"]["application/json"]["schema"]["properties"]
            assert set(body) == set(doc["names"]), path
            continue
        if doc["shared"]:  # which parameters the other bridge reads too
            assert served == doc["names"], (method, path)
        assert set(served) == set(doc["names"]), (method, path)


def test_answers_and_auth_are_documented(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name, fields in (("Bar", contract.BAR_FIELDS), ("Position", contract.POSITION_FIELDS),
                         ("Deal", contract.DEAL_FIELDS), ("OrderResult", contract.RESULT_FIELDS),
                         ("SymbolInfo", contract.SYMBOL_FIELDS)):
        assert schemas[name]["required"] == list(fields), name
    docs = DOCS.read_text()
    for field in ("trade_tick_size", "trade_tick_value", "time_update", "retcode_external"):
        assert field in docs
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            statuses = set(op["responses"])
            assert "422" not in statuses or method == "post", (method, path)  # invalid input is a 400 here
            assert ("401" in statuses) is (path != "/health"), (method, path)
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
