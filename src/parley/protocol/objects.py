"""Request-side shapes shared by both sides: scopes, properties, events, pagination.

msgspec Structs reject unknown fields and wrong types; the checks msgspec cannot express
(size limits that answer `entity_too_large`, name patterns inside free-form maps) live in
`check_*` functions below, called by `decode`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
import orjson

from parley.protocol import limits
from parley.protocol.errors import too_large, validation

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
GroupId = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
ShortText = Annotated[str, msgspec.Meta(max_length=1024)]
Url = Annotated[str, msgspec.Meta(max_length=8192)]
CustomId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

Namespaced = dict[str, dict[str, Any]]

_NAME = re.compile(limits.NAME_PATTERN)


class Base(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Scopes(Base):
    groups: Annotated[list[GroupId], msgspec.Meta(max_length=100)]


class EventIn(Base, tag_field="type", kw_only=True):
    custom_id: CustomId | None = None
    recipients: Literal["all", "agents"] = "all"
    properties: Namespaced | None = None


class MessageIn(EventIn, tag="message"):
    text: str


class SystemMessageIn(EventIn, tag="system_message"):
    text: str = ""
    system_message_type: str | None = None


class FormField(Base):
    type: ShortText
    name: ShortText
    label: ShortText = ""
    value: Any = None


class FilledFormIn(EventIn, tag="filled_form"):
    fields: Annotated[list[FormField], msgspec.Meta(min_length=1, max_length=100)]


class FileIn(EventIn, tag="file"):
    url: Url
    name: ShortText | None = None
    content_type: ShortText | None = None
    size: NonNegInt | None = None


class CustomIn(EventIn, tag="custom"):
    content: dict[str, Any]


Event = MessageIn | SystemMessageIn | FilledFormIn | FileIn | CustomIn


class Page(Base):
    url: Url | None = None
    title: ShortText | None = None
    referrer: Url | None = None


class Monitoring(Base):
    page: Page | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CustomerFields(Base):
    name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")] | None = None
    monitoring: Monitoring | None = None
    properties: dict[str, str] | None = None


def encoded_size(value: Any) -> int:
    return len(orjson.dumps(value))


def check_name(name: str, where: str) -> None:
    if not _NAME.fullmatch(name):
        raise validation(f"`{where}` name {name!r} must match {limits.NAME_PATTERN}")


def check_properties(props: Namespaced | None, field: str = "properties", *, allow_null: bool = True) -> None:
    """Namespaced chat/thread/event properties (SPEC §4)."""
    if props is None:
        return
    for namespace, values in props.items():
        check_name(namespace, f"{field}")
        if not isinstance(values, dict):
            raise validation(f"`{field}.{namespace}` must be an object of name: value")
        for name, value in values.items():
            check_name(name, f"{field}.{namespace}")
            if value is None and not allow_null:
                raise validation(f"`{field}.{namespace}.{name}` must not be null here")
            if encoded_size(value) > limits.PROPERTY_VALUE_MAX_BYTES:
                raise too_large(f"{field}.{namespace}.{name}", "4 KiB encoded")


def check_customer_properties(props: dict[str, str] | None, field: str = "customer.properties") -> None:
    """The seed's flat customer map (SPEC §4: ≤ 100 keys, values ≤ 4 KiB)."""
    if props is None:
        return
    if len(props) > limits.CUSTOMER_PROPERTIES_MAX:
        raise validation(f"`{field}` has more than {limits.CUSTOMER_PROPERTIES_MAX} keys")
    for key, value in props.items():
        check_name(key, field)
        if len(value.encode()) > limits.PROPERTY_VALUE_MAX_BYTES:
            raise too_large(f"{field}.{key}", "4 KiB")


def check_event(event: Event, field: str = "event") -> None:
    check_properties(event.properties, f"{field}.properties", allow_null=False)
    if isinstance(event, MessageIn):
        if not event.text:
            raise validation(f"`{field}.text` must not be empty")
        if len(event.text.encode()) > limits.MESSAGE_TEXT_MAX_BYTES:
            raise too_large(f"{field}.text", "16 KiB")
    elif isinstance(event, FilledFormIn):
        for i, form_field in enumerate(event.fields):
            if encoded_size(form_field.value) > limits.PROPERTY_VALUE_MAX_BYTES:
                raise too_large(f"{field}.fields[{i}].value", "4 KiB encoded")
    elif isinstance(event, CustomIn) and encoded_size(event.content) > limits.MESSAGE_TEXT_MAX_BYTES:
        raise too_large(f"{field}.content", "16 KiB encoded")


def check_scopes(scopes: Scopes | None, field: str) -> None:
    if scopes is not None and len(set(scopes.groups)) != len(scopes.groups):
        raise validation(f"`{field}.groups` has a repeated group")
