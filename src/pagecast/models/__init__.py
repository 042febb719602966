"""SQLAlchemy 2 models and the status enums, one module per area. Migrations in
`migrations/` must match them; importing this package registers every table on
`Base.metadata` (what Alembic's autogenerate compares)."""

from pagecast.models.base import (
    Base,
    CampaignStatus,
    DeliveryStatus,
    ImportState,
    MessagingType,
    PageStatus,
    Priority,
    Role,
    SyncState,
    UTCDateTime,
    utcnow,
)
from pagecast.models.campaigns import Campaign, Delivery, Template
from pagecast.models.inbound import ContactImport, PageSync, WebhookEvent
from pagecast.models.outbound import (
    OutboundAttempt,
    OutboundDelivery,
    OutboundEvent,
    WebhookEndpoint,
)
from pagecast.models.pages import Contact, MessageAttachment, Page, Tag, contact_tags
from pagecast.models.segments import Segment
from pagecast.models.series import Series, SeriesMode, SeriesStatus
from pagecast.models.users import (
    ApiToken,
    AuditLog,
    FacebookLogin,
    LoginAttempt,
    LoginSession,
    User,
)

__all__ = [
    "ApiToken",
    "AuditLog",
    "Base",
    "Campaign",
    "CampaignStatus",
    "Contact",
    "ContactImport",
    "Delivery",
    "DeliveryStatus",
    "FacebookLogin",
    "ImportState",
    "LoginAttempt",
    "LoginSession",
    "MessageAttachment",
    "MessagingType",
    "OutboundAttempt",
    "OutboundDelivery",
    "OutboundEvent",
    "Page",
    "PageStatus",
    "PageSync",
    "Priority",
    "Role",
    "Segment",
    "Series",
    "SeriesMode",
    "SeriesStatus",
    "SyncState",
    "Tag",
    "Template",
    "UTCDateTime",
    "User",
    "WebhookEndpoint",
    "WebhookEvent",
    "contact_tags",
    "utcnow",
]
