"""What counts as an automatic answer (never a reply that stops a follow-up)."""
from __future__ import annotations

import pytest

from scheduler.engine.threads import is_automatic


@pytest.mark.parametrize("headers", [
    {"auto-submitted": "auto-replied"},
    {"auto-submitted": "auto-generated", "subject": "Re: your offer"},
    {"x-autoreply": "yes"},
    {"x-autorespond": "1"},
    {"precedence": "auto_reply"},
    {"precedence": "bulk"},
    {"subject": "Out of Office: your offer"},
    {"subject": "Automatic reply: Re: your offer"},
    {"subject": "Auto: Re: your offer"},
    {"subject": "Abwesenheitsnotiz: Ihr Angebot"},
    {"subject": "Automatische Antwort: Ihr Angebot"},
    {"subject": "Réponse automatique : votre offre"},
    {"subject": "Absence du bureau"},
    {"subject": "Respuesta automática: su oferta"},
    {"subject": "Fuera de la oficina"},
], ids=lambda h: next(iter(h.values()))[:24])
def test_automatic_answers_are_recognised(headers):
    assert is_automatic(headers)


@pytest.mark.parametrize("headers", [
    {"subject": "Re: your offer"},
    {"subject": "Re: Out of office pricing?", "auto-submitted": "no"},
    {"subject": "AW: Ihr Angebot"},
    {"subject": "RE: votre offre"},
    {"precedence": "list", "subject": "Re: question"},
    {},
], ids=lambda h: h.get("subject", "none")[:24])
def test_a_person_s_answer_is_a_reply(headers):
    assert not is_automatic(headers)
