"""The composer's sequence of up to 3 messages (issue 19) without a browser: the form's
messages as the API body, "Add a message" and "Remove", the preview's blocks and problems
named by message, and editing a saved sequence."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.datastructures import FormData

from factories import connected_page, create_user, session_cookie
from pagecast.db import Database
from pagecast.models import CampaignStatus, Contact, Role, utcnow
from pagecast.permissions import Actor
from pagecast.schemas import CampaignCreate
from pagecast.services import campaigns
from pagecast.web.dashboard import composer, message_form
from pagecast.web.dashboard.composer import fields_from
from pagecast.web.deps import SESSION_COOKIE

BASE = [("name", "Seq"), ("page_id", "3"), ("audience_type", "all")]
IMAGE = [("message_kind", "media"), ("attachment_type", "image")]
IMAGE += [("attachment_url", "https://example.com/shoe.png")]
TEXT_2 = [("m2_message_kind", "text"), ("m2_text", "Like it?"), ("m2_button0_title", "Shop")]
TEXT_2 += [("m2_button0_target", "https://example.com/shop")]


def test_one_message_is_content_as_before() -> None:
    fields = fields_from(FormData([*BASE, ("message_count", "1"), ("text", "Hi")]))
    assert fields["content"] == {"text": "Hi"} and "messages" not in fields


def test_two_and_three_messages_become_the_messages_list_in_order() -> None:
    two = fields_from(FormData([*BASE, ("message_count", "2"), *IMAGE, *TEXT_2]))
    assert "content" not in two
    body = CampaignCreate.model_validate(two)
    assert body.messages is not None and len(body.messages) == 2
    assert body.messages[0].attachment is not None
    assert body.messages[1].text == "Like it?"
    assert body.messages[1].buttons is not None and body.messages[1].buttons[0].title == "Shop"
    three = [*BASE, ("message_count", "3"), *IMAGE, *TEXT_2, ("m3_text", "Bye")]
    assert [m.get("text") for m in fields_from(FormData(three))["messages"]] == [
        None,
        "Like it?",
        "Bye",
    ]
    # Fields of a message beyond the count are not read, and the count is at most 3.
    assert "messages" not in fields_from(FormData([*BASE, ("text", "Hi"), ("m2_text", "x")]))
    assert len(fields_from(FormData([*BASE, ("message_count", "9")]))["messages"]) == 3


def test_add_a_message_and_remove_one_move_the_later_messages_up() -> None:
    form = FormData([*BASE, ("message_count", "2"), ("text", "one"), ("m2_text", "two")])
    added = message_form.resequence(FormData([*form.multi_items(), ("sequence", "add")]))
    assert added is not None and added["message_count"] == 3 and added["m2_text"] == "two"
    three = [*form.multi_items(), ("m3_text", "three"), ("m3_message_kind", "text")]
    three = [(k, "3" if k == "message_count" else v) for k, v in three]
    removed = message_form.resequence(FormData([*three, ("sequence", "remove-2")]))
    assert removed is not None and removed["message_count"] == 2
    assert removed["text"] == "one" and removed["m2_text"] == "three"
    assert not any(name.startswith("m3_") for name in removed)
    assert message_form.resequence(form) is None  # Save: not a sequence action


def test_a_stored_sequence_becomes_the_form_values() -> None:
    values = message_form.sequence_values([{"text": "a"}, {"cards": [{"title": "T"}]}])
    assert values["message_count"] == 2
    assert values["text"] == "a" and values["m2_message_kind"] == "cards"
    assert values["m2_card0_title"] == "T"
    assert message_form.count_of(values) == 2


async def _client(app: Any, db: Database) -> tuple[httpx.AsyncClient, str]:
    user, _ = await create_user(db, Role.MANAGER, email="seq@example.com")
    cookie = await session_cookie(db, user)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        cookies={SESSION_COOKIE: cookie},
    )
    return client, app.state.context.vault.csrf_token(cookie)


async def test_the_add_button_renders_message_2_and_remove_takes_it_away(
    app: Any, db: Database
) -> None:
    client, csrf = await _client(app, db)
    async with client:
        form = {"csrf_token": csrf, "name": "", "text": "one", "sequence": "add"}
        answer = await client.post("/campaigns/new", data=form)
        assert answer.status_code == 200, answer.text
        assert "Message 2 of 2" in answer.text and 'name="m2_text"' in answer.text
        assert 'name="message_count" value="2"' in answer.text
        assert 'value="remove-2"' in answer.text and ">one</textarea>" in answer.text
        form = {"csrf_token": csrf, "message_count": "2", "text": "one", "m2_text": "two"}
        gone = await client.post("/campaigns/new", data=form | {"sequence": "remove-2"})
        assert gone.status_code == 200 and 'name="m2_text"' not in gone.text
        assert "Message 2 of" not in gone.text


async def test_the_preview_shows_each_message_and_names_the_wrong_one(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        session.add(Contact(page_id=page.id, psid="p1", first_name="Ana", last_inbound_at=utcnow()))
    client, csrf = await _client(app, db)
    base = {"csrf_token": csrf, "name": "Seq", "page_id": str(page.id), "audience_type": "all"}
    async with client:
        good = base | dict(IMAGE) | dict(TEXT_2) | {"message_count": "2"}
        shown = await client.post("/campaigns/preview", data=good)
        assert shown.status_code == 200, shown.text
        assert 'id="preview-message"' in shown.text and 'id="preview-message-2"' in shown.text
        assert "Message 1 of 2" in shown.text and "Message 2 of 2" in shown.text
        assert shown.text.index("shoe.png") < shown.text.index("Like it?")
        assert "Save would refuse" not in shown.text
        bad = good | {"m2_button0_title": "A title longer than twenty"}
        refused = await client.post("/campaigns/preview", data=bad)
        assert 'data-problem="messages[1]"' in refused.text
        assert "messages[1].buttons[0].title" in refused.text
        assert 'id="preview-message-2"' not in refused.text  # not shown while wrong
        assert 'id="preview-message"' in refused.text
        empty = await client.post(
            "/campaigns/preview", data=base | {"message_count": "2", "text": "x"}
        )
        assert 'data-problem="messages[1]"' in empty.text and "remove the message" in empty.text
        unknown = good | {"m2_text": "Hi {{city}}"}
        named = await client.post("/campaigns/preview", data=unknown)
        assert 'data-problem="messages[1]"' in named.text and "city" in named.text


async def test_saving_and_editing_a_sequence_keeps_every_message(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    client, csrf = await _client(app, db)
    base = {"csrf_token": csrf, "name": "Seq", "page_id": str(page.id), "audience_type": "all"}
    async with client:
        form = base | dict(IMAGE) | dict(TEXT_2) | {"message_count": "2"}
        saved = await client.post("/campaigns/new", data=form)
        assert saved.status_code == 303, saved.text
        campaign_id = int(saved.headers["location"].rsplit("/", 1)[-1])
        edit = await client.get(f"/campaigns/{campaign_id}/edit")
        assert "Message 2 of 2" in edit.text and ">Like it?</textarea>" in edit.text
        assert 'value="https://example.com/shoe.png"' in edit.text
        wrong = await client.post(
            f"/campaigns/{campaign_id}/edit", data=form | {"m2_text": "x" * 700}
        )
        assert wrong.status_code == 422 and 'id="err-messages[1]"' in wrong.text
        single = base | {"message_count": "1", "text": "Only this"}
        assert (await client.post(f"/campaigns/{campaign_id}/edit", data=single)).status_code == 303
    async with db.transaction() as session:
        campaign = await campaigns.get(session, campaign_id)
        assert campaign.content == {"text": "Only this"} and not campaign.messages


async def _paused_sequence(
    db: Database,
    page_id: int,
    messages: list[dict[str, Any]],
    status: CampaignStatus = CampaignStatus.PAUSED,
) -> int:
    """A started (paused) campaign sending `messages`, as the dashboard's edit form gets it
    (or one in another `status`)."""
    async with db.transaction() as session:
        campaign = await campaigns.create(
            session,
            Actor.system(),
            CampaignCreate.model_validate(
                {"name": "Started", "page_id": page_id, "messages": messages}
            ),
        )
        campaign.status = status
        return campaign.id


async def test_a_started_campaign_keeps_its_page_and_offers_no_add_or_remove(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _paused_sequence(db, page.id, [{"text": "one"}, {"text": "two"}])
    client, _ = await _client(app, db)
    async with client:
        edit = await client.get(f"/campaigns/{campaign_id}/edit")
        assert edit.status_code == 200, edit.text
        assert "Message 2 of 2" in edit.text
        assert 'id="add-message"' not in edit.text and 'value="remove-2"' not in edit.text
        assert 'id="fixed-count"' in edit.text
        assert ">Save changes</button>" in edit.text and "Save draft" not in edit.text
        # The disabled select is not sent: a hidden page_id keeps the Page for the preview.
        assert f'<option value="{page.id}" selected>' in edit.text
        assert f'<input type="hidden" name="page_id" value="{page.id}">' in edit.text


async def test_an_error_no_field_shows_is_listed_at_the_top_of_the_form(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    campaign_id = await _paused_sequence(db, page.id, [{"text": "one"}, {"text": "two"}])
    client, csrf = await _client(app, db)
    form = {"csrf_token": csrf, "name": "Started", "page_id": str(page.id)}
    async with client:
        # A third message (posted by hand: the form offers no Add) is refused on `messages`.
        three = form | {"message_count": "3", "text": "one", "m2_text": "two", "m3_text": "3"}
        refused = await client.post(f"/campaigns/{campaign_id}/edit", data=three)
        assert refused.status_code == 422
        assert 'id="err-form"' in refused.text
        assert "can be edited but not added or removed" in refused.text
        assert f'<option value="{page.id}" selected>' in refused.text
    assert composer.general_errors({"messages": "m", "name": "n", "content": "c"}, 1) == ["m"]
    assert composer.general_errors({"content": "c", "messages[1]": "x"}, 2) == ["c"]


CARD = {
    "title": "Red shoe",
    "subtitle": "Now 20% off",
    "image_url": "https://example.com/red.png",
    "buttons": [{"type": "web_url", "title": "Shop", "url": "https://example.com/shop"}],
}
UPLOADED = {"attachment": {"type": "file", "attachment_id": "1234567"}}


async def test_the_campaign_page_shows_cards_and_a_file_uploaded_once(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        body = {"name": "Cards", "page_id": page.id, "messages": [{"cards": [CARD]}, UPLOADED]}
        campaign = await campaigns.create(
            session, Actor.system(), CampaignCreate.model_validate(body)
        )
    client, _ = await _client(app, db)
    async with client:
        shown = await client.get(f"/campaigns/{campaign.id}")
    assert shown.status_code == 200, shown.text
    messages = shown.text[shown.text.index('id="messages"') :]
    for part in ("Red shoe", "Now 20% off", "https://example.com/red.png", ">Shop</span>"):
        assert part in messages
    assert "File</strong>: attachment 1234567" in messages
    assert "None" not in messages


async def test_the_edit_form_shows_the_id_of_a_file_uploaded_once_read_only(
    app: Any, db: Database, vault: Any
) -> None:
    page = await connected_page(db, vault)
    async with db.transaction() as session:
        body = {"name": "File", "page_id": page.id, "content": UPLOADED}
        campaign = await campaigns.create(
            session, Actor.system(), CampaignCreate.model_validate(body)
        )
    client, _ = await _client(app, db)
    async with client:
        edit = await client.get(f"/campaigns/{campaign.id}/edit")
    assert 'name="attachment_id" readonly value="1234567"' in edit.text
    assert "Uploaded once to the Page: every person gets attachment 1234567" in edit.text
    # Saved as it is, the id is sent; a URL typed replaces it.
    form = [("message_kind", "media"), ("attachment_type", "file"), ("attachment_id", "1234567")]
    assert message_form.content_from(FormData(form)) == UPLOADED
    new = [*form, ("attachment_url", "https://example.com/new.pdf")]
    assert message_form.content_from(FormData(new))["attachment"] == {
        "type": "file",
        "url": "https://example.com/new.pdf",
    }


async def test_a_scheduled_sequence_can_still_gain_or_lose_a_message(
    app: Any, db: Database, vault: Any
) -> None:
    """Not started yet (no delivery counts its messages): the composer offers Add and Remove
    as the service allows them (`campaigns.keeps_its_message_count`, one rule for both)."""
    page = await connected_page(db, vault)
    campaign_id = await _paused_sequence(
        db, page.id, [{"text": "one"}, {"text": "two"}], CampaignStatus.SCHEDULED
    )
    client, _ = await _client(app, db)
    async with client:
        edit = await client.get(f"/campaigns/{campaign_id}/edit")
        assert edit.status_code == 200, edit.text
        assert 'id="add-message"' in edit.text and 'value="remove-2"' in edit.text
        assert 'id="fixed-count"' not in edit.text
