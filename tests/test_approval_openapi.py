"""Two-person approval (issue 22) in the OpenAPI document: a campaign's `approval` is a
described model whose states and asks are the service's, and what the API answers fits it."""

from __future__ import annotations

import httpx

from pagecast.services.approval_requests import ASKS, STATES
from pagecast.web.openapi_approvals import ApprovalOut
from test_approval_api import approver  # noqa: F401  (fixture)
from test_sending import (  # noqa: F401  (fixtures)
    add_people,
    admin,
    engine_app,
    manager,
    new_campaign,
    sending_settings,
    setup_page,
)


async def test_the_campaigns_approval_is_a_described_model_that_the_answers_fit(
    admin: httpx.AsyncClient,  # noqa: F811
    manager: httpx.AsyncClient,  # noqa: F811
    approver: httpx.AsyncClient,  # noqa: F811
    sim: httpx.AsyncClient,
) -> None:
    schemas = (await manager.get("/openapi.json")).json()["components"]["schemas"]
    approval = schemas["CampaignOut"]["properties"]["approval"]
    assert {"$ref": "#/components/schemas/ApprovalOut"} in approval["anyOf"]
    shown = schemas["ApprovalOut"]
    assert shown["properties"]["state"]["enum"] == list(STATES)
    assert shown["properties"]["ask"]["enum"] == list(ASKS)
    assert shown["additionalProperties"] is False
    assert all(p.get("description") for p in shown["properties"].values())

    page_id = await setup_page(admin, sim)
    await add_people(sim, manager, page_id, 2)
    await admin.patch(f"/api/pages/{page_id}", json={"approval_threshold": 0})
    campaign_id = await new_campaign(manager, page_id)
    held = (await manager.post(f"/api/campaigns/{campaign_id}/start")).json()["approval"]
    assert ApprovalOut.model_validate(held).state == "pending"
    rejected = await approver.post(f"/api/campaigns/{campaign_id}/reject", json={"comment": "No"})
    assert ApprovalOut.model_validate(rejected.json()["approval"]).comment == "No"
    # A blank comment on an approval is no comment (null), not an empty string.
    second = await new_campaign(manager, page_id, name="Second")
    await manager.post(f"/api/campaigns/{second}/start")
    blank = await approver.post(f"/api/campaigns/{second}/approve", json={"comment": "  "})
    assert blank.status_code == 200, blank.text
    assert ApprovalOut.model_validate(blank.json()["approval"]).comment is None
