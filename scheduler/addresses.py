"""The one address rule for every input: messages, contacts (JSON and CSV), campaigns,
events, invitations, thread replies and aliases.

Gmail's API takes RFC 5322 headers, and the product does not send SMTPUTF8 mail: an
address is stored and sent in its ASCII form. An internationalized domain becomes IDNA
(`jose@exämple.org` → `jose@xn--exmple-cua.org`); a non-ASCII local part (`josé@...`) is
refused with the field named, before anything is queued.
"""
from __future__ import annotations

from email.headerregistry import Address
from email.utils import getaddresses, parseaddr

from email_validator import EmailNotValidError, validate_email

from scheduler.errors import InvalidInput


class AddressError(ValueError):
    """Why a text is not an address we can send to."""


def ascii_address(text: str) -> str:
    """`local@domain` checked and in its ASCII (IDNA) form; AddressError otherwise."""
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    if checked.ascii_email is None:  # defensive: allow_smtputf8=False should ensure it
        raise AddressError("the address cannot be written in ASCII")
    return checked.ascii_email


def normalize_email(value) -> str:
    """A bare address (as contacts store it): checked, ASCII, lower case."""
    if not isinstance(value, str) or not value.strip():
        raise AddressError("email is missing")
    text = value.strip()
    if any(c in text for c in "\r\n<>,;"):
        raise AddressError(f"email is not a single address: {text!r}")
    try:
        return ascii_address(text).lower()
    except AddressError as exc:
        raise AddressError(f"email {text!r} is not valid: {exc}") from None


def parse_address(value, field: str) -> Address:
    """`addr` or `Name <addr>` as an Address in ASCII form; InvalidInput naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be an email address", field=field)
    if "\r" in value or "\n" in value:
        raise InvalidInput(f"{field} must be on one line", field=field)
    if len(getaddresses([value])) > 1:
        raise InvalidInput(f"{field} must be one address: a message goes to one recipient "
                           f"(send one message each, or use a campaign)", field=field)
    name, addr = parseaddr(value.strip())
    if not addr or "@" not in addr:
        raise InvalidInput(f"{field} is not an email address: {value!r}", field=field)
    try:
        local, _, domain = ascii_address(addr).rpartition("@")
    except AddressError as exc:
        raise InvalidInput(f"{field} is not a valid address: {exc}", field=field) from None
    return Address(display_name=name, username=local, domain=domain)
