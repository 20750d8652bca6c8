"""The add-on's card builder and the event reader: every part is Card v2, text is shown as
written, and odd event objects read as empty inputs instead of failing."""
from __future__ import annotations

from app.addon import cards as c
from app.addon.events import read_event
from sandbox.cards import answer_problems, card_problems

EVERY_PART = c.Card("Title <b>", (c.Section((
    c.Text("Subject <a href='https://evil.example'>x</a>", top="to", bottom="when",
           button=c.Button("Cancel", c.Action("https://app.example/addon/action/cancel",
                                              {"id": "m1"}))),
    c.Paragraph("A & B"),
    c.Buttons((c.Button("Open", c.Link("https://app.example/queue"), filled=True),)),
    c.TextInput("days", "Days", "3", hint="1 to 60"),
    c.TextInput("body", "Message", multiline=True),
    c.Choice("template_id", "Template", (("One", "1"), ("Two", "2")), "2"),
    c.DateTime("when", "When", 1_900_000_000_000, 60),
    c.Divider()), header="Everything", collapsible=True),), subtitle="sub", name="home")


def test_every_part_the_builder_makes_is_card_v2_in_every_answer():
    assert card_problems(EVERY_PART.json()) == []
    for answer in (c.show(EVERY_PART), c.navigate(push=EVERY_PART),
                   c.navigate(update=EVERY_PART, pop=True, notify="Done."),
                   c.insert_into_draft("<p>Hi</p>")):
        assert answer_problems(answer) == [], answer


def test_the_schema_check_catches_what_gmail_would_refuse():
    broken = EVERY_PART.json()
    broken["sections"][0]["widgets"][0]["decoratedText"]["colour"] = "red"
    broken["sections"][0]["widgets"][5]["selectionInput"]["type"] = "SLIDER"
    broken["header"]["title"] = 7
    problems = card_problems(broken)
    assert len(problems) == 3 and any("colour" in p for p in problems)
    assert answer_problems({"action": {"navigations": [{"jump": {}}]}})
    assert answer_problems({"renderActions": {"hostAppAction": {"gmailAction": {}}}})


def test_text_is_shown_as_written_not_read_as_markup():
    widget = EVERY_PART.json()["sections"][0]["widgets"][0]["decoratedText"]
    assert widget["text"] == "Subject &lt;a href='https://evil.example'&gt;x&lt;/a&gt;"
    assert EVERY_PART.json()["sections"][0]["widgets"][1]["textParagraph"]["text"] == \
        "A &amp; B"
    long = c.Text("x" * 5000).json()["decoratedText"]["text"]
    assert len(long) == c.MAX_TEXT


def test_odd_event_objects_read_as_empty_inputs():
    event = read_event({"commonEventObject": {
        "formInputs": {"a": {"stringInputs": "nope"}, "b": {"stringInputs": {"value": 5}},
                       "when": {"dateTimeInput": {"msSinceEpoch": "soon"}},
                       "ok": {"stringInputs": {"value": ["  yes "]}}},
        "timeZone": {"id": "Mars/Olympus"}}})
    assert (event.text("a"), event.text("b"), event.text("ok")) == ("", "", "yes")
    assert event.moment("when") is None and str(event.zone) == "UTC"
    assert read_event(["not", "an", "object"]) is None
    assert read_event({"commonEventObject": {"parameters": {"x": {"deep": 1}}}}) is None
