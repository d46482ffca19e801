"""The relay's low-level publish carries exactly the properties of `build_message` (one wire format)."""

from __future__ import annotations

import uuid

import pytest

from shared.messaging.envelope import build_message, publish_properties


@pytest.mark.parametrize("correlation_id", ["corr-1", None])
def test_publish_properties_equal_build_messages(correlation_id: str | None) -> None:
    event_id = uuid.uuid4()
    built = build_message(
        event_id=event_id, event_type="order.placed", payload_json="{}", correlation_id=correlation_id
    ).properties
    direct = publish_properties(event_id=event_id, event_type="order.placed", correlation_id=correlation_id)

    fields = [name for name in built.__slots__ if not name.startswith("_")]
    assert fields
    assert {f: getattr(direct, f) for f in fields} == {f: getattr(built, f) for f in fields}
    assert direct.message_id == str(event_id)
    assert direct.delivery_mode == 2
