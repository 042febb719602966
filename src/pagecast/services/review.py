"""A campaign's review before it is sent: the message for a real person, the audience in
words, who is eligible now and why the rest are not, the Page, the rate and how long it takes.

The numbers are the audience preview's (`audience.preview`: the rule a start applies) and the
rate is the one the worker sends at (`pacing.rate_within`); the duration counts with what the
Page's limiter lets that rate send (`pacing.sendable_rate`), so the review says what Start does.
Takes a session and never commits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pagecast.models import Campaign, MessagingType, Page
from pagecast.services import audience, campaigns, content, message_lengths, pacing, pages

__all__ = ["Review", "audience_words", "duration_words", "get", "people"]


@dataclass(frozen=True)
class Review:
    """What a draft (or scheduled) campaign would do if it started now."""

    campaign: Campaign
    page: Page
    preview: audience.Preview
    # The Send API `message` of each of the campaign's messages (a sequence: up to 3, in
    # order) for `preview.sample`; empty without a sample.
    messages: list[dict[str, Any]]
    rate: float  # messages per second: the campaign's own rate within its Page's
    # eligible × messages each / the rate the limiter allows (`pacing.sendable_rate`),
    # rounded up
    expected_seconds: int

    @property
    def sequence(self) -> list[tuple[str, dict[str, Any]]]:
        """Each message with the field that holds it (`messages[1]`), for the preview."""
        count = len(self.messages)
        return [(message_lengths.message_field(i, count), m) for i, m in enumerate(self.messages)]

    @property
    def rules(self) -> str:
        return audience_words(self.campaign.audience, self.campaign.messaging_type, self.page.name)

    @property
    def duration(self) -> str:
        return duration_words(self.expected_seconds)

    @property
    def excluded_words(self) -> list[str]:
        """The excluded by reason, as people read them ("2 opted out"), leaving out zeros."""
        return [
            f"{number} {audience.reason_words(why, self.campaign.messaging_type)}"
            for why, number in self.preview.excluded.items()
            if number
        ]


async def get(session: AsyncSession, campaign_id: int) -> Review:
    """The review of the campaign as it stands now."""
    campaign = await campaigns.get(session, campaign_id)
    page = await pages.get(session, campaign.page_id)
    found = await audience.preview(session, campaign)
    each = await campaigns.effective_messages(session, campaign)
    messages = []
    if found.sample is not None:
        sample = {"first_name": found.sample.first_name, "last_name": found.sample.last_name}
        messages = [content.to_message(m, sample) for m in each]
    rate = pacing.rate_within(page.send_rate, campaign.send_rate)
    # Each message of a sequence is a Send call of its own, paced like any other.
    calls = found.eligible * len(each)
    return Review(
        campaign=campaign,
        page=page,
        preview=found,
        messages=messages,
        rate=rate,
        expected_seconds=math.ceil(calls / pacing.sendable_rate(rate)) if calls else 0,
    )


def people(number: int) -> str:
    """ "1 person", "488 people"."""
    return f"{number:,} {'person' if number == 1 else 'people'}"


def _names(tags: list[str], joiner: str) -> str:
    quoted = [f'"{t}"' for t in tags]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {joiner} {quoted[-1]}"


def audience_words(target: dict[str, Any], messaging_type: MessagingType, page_name: str) -> str:
    """The audience rules in a sentence: who is chosen and which of them may be messaged."""
    kind = target.get("type")
    if kind == "tags":
        include, exclude = list(target.get("include") or []), list(target.get("exclude") or [])
        who = (
            f"Contacts of {page_name} tagged {_names(include, 'or')}"
            if include
            else f"Everyone who messaged {page_name}"
        )
        if exclude:
            who += f", except those tagged {_names(exclude, 'or')}"
    elif kind == "contacts":
        chosen = len(target.get("psids") or target.get("ids") or [])
        who = f"{chosen:,} chosen contact{'s' if chosen != 1 else ''} of {page_name}"
    elif kind == "segment":
        named = f" “{target['name']}”" if target.get("name") else ""
        who = f"Contacts of {page_name} in segment {target.get('segment_id')}{named} when it starts"
    elif kind == "filter":
        who = f"Contacts of {page_name} matching a filter when it starts"
    else:
        who = f"Everyone who messaged {page_name}"
    window = audience.window_words(messaging_type)
    return (
        f"{who}; of them, only those who messaged the Page within the {window} messaging "
        f"window and have not opted out or become unreachable ({messaging_type.value})."
    )


def duration_words(seconds: int) -> str:
    """An expected duration as people say it: "about 25 seconds", "about 4 minutes",
    "about 2 hours 5 minutes" ("nothing to send" for 0)."""
    if seconds <= 1:
        return "nothing to send" if seconds <= 0 else "about 1 second"
    if seconds < 60:
        return f"about {seconds} seconds"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    said = f"about {hours} hour{'s' if hours != 1 else ''}"
    return f"{said} {rest} minute{'s' if rest != 1 else ''}" if rest else said
