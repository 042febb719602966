"""Graph batch requests: up to 50 operations, each through the full pipeline
(docs/simulator.md, "Batch requests").

Operations without `depends_on` run in a seeded random order (Graph runs them in parallel);
the answer lists them in request order, `null` where an operation timed out.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from pagecast.simulator import routes
from pagecast.simulator.bodies import FilePart, decode_value
from pagecast.simulator.context import CallContext, GraphRequest, Outcome
from pagecast.simulator.errors import GraphError, RawFault, bad_param
from pagecast.simulator.state import CallRecord, SimState

__all__ = ["MAX_OPERATIONS", "handle_batch"]

MAX_OPERATIONS = 50
_VERSION = re.compile(r"^v\d+\.\d+$")


def handle_batch(state: SimState, req: GraphRequest) -> Outcome:
    try:
        routes.authenticate(state, req, CallContext())
        operations = _operations(req.param("batch"))
    except GraphError as err:
        outcome = routes.error_outcome(state, err)
        state.call_count += 1
        key = str(err.code)
        state.errors_by_code[key] = state.errors_by_code.get(key, 0) + 1
        state.calls.append(
            CallRecord(
                state.clock.now(),
                req.method,
                req.path or "/",
                None,
                None,
                outcome.status,
                err.code,
                err.subcode,
                None,
            )
        )
        return outcome
    except RawFault:  # pragma: no cover - authenticate raises no raw faults
        raise
    include_headers = str(req.param("include_headers") or "true").lower() != "false"
    top_token = req.param("access_token")
    if top_token is None and req.authorization:
        top_token = req.authorization.partition(" ")[2].strip()
    names = {op.get("name"): i for i, op in enumerate(operations) if op.get("name")}
    depended = {op.get("depends_on") for op in operations if op.get("depends_on")}
    order = list(range(len(operations)))
    if state.knobs.batch_shuffle:
        state.rng("batch").shuffle(order)
    results: list[Any] = [None] * len(operations)
    succeeded: dict[int, bool] = {}
    pending = order
    while pending:
        deferred = []
        for index in pending:
            op = operations[index]
            parent = op.get("depends_on")
            if parent:
                parent_index = names.get(parent)
                if parent_index is not None and parent_index not in succeeded:
                    deferred.append(index)
                    continue
                if parent_index is None or not succeeded[parent_index]:
                    succeeded[index] = False
                    results[index] = _element(_dependency_failed(state, parent), include_headers)
                    continue
            outcome = routes.handle(state, _sub_request(req, op, top_token))
            succeeded[index] = outcome.drop is None and outcome.status == 200
            if outcome.drop is not None:
                results[index] = None
                continue
            omit = op.get("omit_response_on_success", op.get("name") in depended)
            if succeeded[index] and op.get("name") and str(omit).lower() != "false" and omit:
                results[index] = None
                continue
            results[index] = _element(outcome, include_headers)
        if len(deferred) == len(pending):  # a dependency cycle: fail what is left
            for index in deferred:
                succeeded[index] = False
                results[index] = _element(
                    _dependency_failed(state, operations[index].get("depends_on")), include_headers
                )
            break
        pending = deferred
    return Outcome(200, results)


def _operations(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        raise bad_param("The parameter batch is required")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise bad_param("The parameter batch must be a JSON array") from exc
    if not isinstance(raw, list) or not all(isinstance(op, dict) for op in raw):
        raise bad_param("The parameter batch must be a JSON array of objects")
    if len(raw) > MAX_OPERATIONS:
        raise bad_param(f"Too many requests in batch. Maximum batch size is {MAX_OPERATIONS}")
    if not raw:
        raise bad_param("The parameter batch must not be empty")
    for op in raw:
        if not isinstance(op.get("relative_url"), str) or not op.get("method"):
            raise bad_param("Each batch operation needs method and relative_url")
    return raw


def _sub_request(req: GraphRequest, op: dict[str, Any], top_token: Any) -> GraphRequest:
    relative = op["relative_url"].lstrip("/")
    path_part, _, query_part = relative.partition("?")
    query = dict(parse_qsl(query_part, keep_blank_values=True))
    segments = tuple(s for s in path_part.split("/") if s)
    version = req.version
    if segments and _VERSION.match(segments[0]):
        version, segments = segments[0], segments[1:]
    params: dict[str, Any] = {}
    body = op.get("body")
    if isinstance(body, dict):
        params = dict(body)
    elif isinstance(body, str) and body:
        params = {k: decode_value(v) for k, v in parse_qsl(body, keep_blank_values=True)}
    attached = op.get("attached_files")
    if isinstance(attached, str) and attached:
        # files of a multipart batch, named by the operation (`attached_files: "file1"`)
        name = attached.split(",")[0].strip()
        if isinstance(req.params.get(name), FilePart):
            params.setdefault("filedata", req.params[name])
    own_token = "access_token" in query or "access_token" in params
    if not own_token and top_token is not None:
        query["access_token"] = str(top_token)
        top_proof = req.param("appsecret_proof")
        if top_proof is not None and "appsecret_proof" not in query:
            query["appsecret_proof"] = str(top_proof)
    return GraphRequest(
        method=str(op["method"]).upper(),
        path="/" + "/".join((version, *segments)),
        version=version,
        segments=segments,
        query=query,
        params=params,
        in_batch=True,
        base_url=req.base_url,
    )


def _dependency_failed(state: SimState, parent: Any) -> Outcome:
    err = bad_param(f'This operation depends on operation "{parent}", which failed')
    return routes.error_outcome(state, err)


def _element(outcome: Outcome, include_headers: bool) -> dict[str, Any]:
    if outcome.raw is not None:
        body = outcome.raw.decode("utf-8", "replace")
        content_type = outcome.content_type
    else:
        body = json.dumps(outcome.body, separators=(",", ":"))
        content_type = "text/javascript; charset=UTF-8"
    element: dict[str, Any] = {"code": outcome.status}
    if include_headers:
        headers = [{"name": "Content-Type", "value": content_type}]
        headers += [{"name": _title(name), "value": value} for name, value in outcome.headers]
        element["headers"] = headers
    element["body"] = body
    return element


def _title(name: str) -> str:
    if name == "www-authenticate":
        return "WWW-Authenticate"
    return name
