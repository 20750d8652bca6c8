"""Cards for the Gmail add-on, built from small typed parts (Card v2, `GoogleAppsCardV1*`)
and the HTTP runtime's answers around them: a card for a trigger, navigation (push,
update, pop) and a notification for an action, text put into the open draft.

Views say what a card holds; this module alone knows the JSON's spelling.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

MAX_TEXT = 2000  # a decorated text or paragraph longer than this is cut (cards stay small)


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _plain(text: str, limit: int = MAX_TEXT) -> str:
    """Text shown as written: Gmail reads tags in card text (<b>, <a>, <font>), and a
    subject or a name must not become one."""
    return html.escape(_cut(text, limit), quote=False)


@dataclass(frozen=True)
class Action:
    """A call back to one of our /addon/ endpoints (its full URL) with parameters."""

    url: str
    parameters: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # inputs that must be filled before it runs

    def json(self) -> dict:
        out: dict = {"function": self.url,
                     "parameters": [{"key": k, "value": str(v)}
                                    for k, v in self.parameters.items()],
                     "loadIndicator": "SPINNER"}
        if self.required:
            out["requiredWidgets"] = list(self.required)
        return out


@dataclass(frozen=True)
class Link:
    """Opens a page of the web app (in a new tab)."""

    url: str

    def json(self) -> dict:
        return {"url": self.url, "openAs": "FULL_SIZE", "onClose": "NOTHING"}


def _on_click(target: Action | Link) -> dict:
    return {"action": target.json()} if isinstance(target, Action) else {
        "openLink": target.json()}


@dataclass(frozen=True)
class Button:
    text: str
    on_click: Action | Link
    filled: bool = False

    def json(self) -> dict:
        out = {"text": _cut(self.text, 40), "onClick": _on_click(self.on_click)}
        if self.filled:
            out["type"] = "FILLED"
        return out


class Widget:
    """One widget of a section."""

    def json(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Widget):
    """A line of text, with optional labels above and below it and a button beside it."""

    text: str
    top: str | None = None
    bottom: str | None = None
    button: Button | None = None

    def json(self) -> dict:
        out: dict = {"text": _plain(self.text), "wrapText": True}
        if self.top:
            out["topLabel"] = _plain(self.top, 200)
        if self.bottom:
            out["bottomLabel"] = _plain(self.bottom, 200)
        if self.button is not None:
            out["button"] = self.button.json()
        return {"decoratedText": out}


@dataclass(frozen=True)
class Paragraph(Widget):
    text: str

    def json(self) -> dict:
        return {"textParagraph": {"text": _plain(self.text)}}


@dataclass(frozen=True)
class Buttons(Widget):
    buttons: tuple[Button, ...]

    def json(self) -> dict:
        return {"buttonList": {"buttons": [b.json() for b in self.buttons]}}


@dataclass(frozen=True)
class TextInput(Widget):
    name: str
    label: str
    value: str = ""
    hint: str | None = None
    multiline: bool = False

    def json(self) -> dict:
        out: dict = {"name": self.name, "label": self.label,
                     "type": "MULTIPLE_LINE" if self.multiline else "SINGLE_LINE"}
        if self.value:
            out["value"] = self.value
        if self.hint:
            out["hintText"] = self.hint
        return {"textInput": out}


@dataclass(frozen=True)
class Choice(Widget):
    """A dropdown (or radio buttons, or a switch list)."""

    name: str
    label: str
    items: tuple[tuple[str, str], ...]  # (shown, value)
    selected: str | None = None
    kind: str = "DROPDOWN"

    def json(self) -> dict:
        return {"selectionInput": {
            "name": self.name, "label": self.label, "type": self.kind,
            "items": [{"text": _cut(text, 200), "value": value,
                       "selected": value == self.selected} for text, value in self.items]}}


@dataclass(frozen=True)
class DateTime(Widget):
    name: str
    label: str
    value_ms: int | None = None
    offset_minutes: int | None = None  # shown in this zone (default the user's)

    def json(self) -> dict:
        out: dict = {"name": self.name, "label": self.label, "type": "DATE_AND_TIME"}
        if self.value_ms is not None:
            out["valueMsEpoch"] = str(self.value_ms)
        if self.offset_minutes is not None:
            out["timezoneOffsetDate"] = self.offset_minutes
        return {"dateTimePicker": out}


@dataclass(frozen=True)
class Divider(Widget):
    def json(self) -> dict:
        return {"divider": {}}


@dataclass(frozen=True)
class Section:
    widgets: tuple[Widget, ...]
    header: str | None = None
    collapsible: bool = False

    def json(self) -> dict:
        out: dict = {"widgets": [w.json() for w in self.widgets]}
        if self.header:
            out["header"] = _cut(self.header, 200)
        if self.collapsible and len(self.widgets) > 3:
            out["collapsible"] = True
            out["uncollapsibleWidgetsCount"] = 3
        return out


@dataclass(frozen=True)
class Card:
    title: str
    sections: tuple[Section, ...]
    subtitle: str | None = None
    name: str | None = None  # for popToCard

    def json(self) -> dict:
        header: dict = {"title": _cut(self.title, 200)}
        if self.subtitle:
            header["subtitle"] = _cut(self.subtitle, 200)
        out: dict = {"header": header,
                     "sections": [s.json() for s in self.sections if s.widgets]}
        if self.name:
            out["name"] = self.name
        return out


# -- the HTTP runtime's answers ---------------------------------------------------------

def show(card: Card) -> dict:
    """The answer to a trigger (homepage, an opened message, compose): this card."""
    return {"action": {"navigations": [{"pushCard": card.json()}]}}


def navigate(*, push: Card | None = None, update: Card | None = None, pop: bool = False,
             notify: str | None = None) -> dict:
    """The answer to a card's action: change the card stack and/or say something."""
    navigations: list[dict] = []
    if pop:
        navigations.append({"pop": True})
    if update is not None:
        navigations.append({"updateCard": update.json()})
    if push is not None:
        navigations.append({"pushCard": push.json()})
    action: dict = {}
    if navigations:
        action["navigations"] = navigations
    if notify:
        action["notification"] = {"text": _cut(notify, 300)}
    return {"renderActions": {"action": action}}


def insert_into_draft(html: str) -> dict:
    """The answer of a compose action: `html` put into the draft where the cursor is."""
    return {"renderActions": {"hostAppAction": {"gmailAction": {"updateDraftActionMarkup": {
        "updateBody": {"insertContents": [{"content": html, "contentType": "MUTABLE_HTML"}],
                       "type": "IN_PLACE_INSERT"}}}}}}
