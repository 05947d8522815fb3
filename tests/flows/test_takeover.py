"""A browser claim on a contact the CRM knows: it cannot rewrite the contact, move its owner
or account, weaken how it was recognized, or make a company surge (1 and 3 workers)."""

from __future__ import annotations

import pytest

from tests.conftest import T0, envelope, page_view
from tests.flows.test_flow import MINUTE, run_flow

CRM = {"title": "VP Sales", "company": "Acme", "company_size": 800, "owner": "alex"}
ATTACK = {
    "title": "CEO",
    "company": "Evil",
    "company_size": 50000,
    "owner": "sam",
    "budget": "yes",
    "authority": "yes",
    "need": "yes",
    "timeframe": "yes",
}


def _at(minutes: int) -> dict[str, int]:
    return {"ts": T0 + minutes * MINUTE, "received_at": T0 + minutes * MINUTE}


def _attack() -> list:
    crm = envelope(
        type="identify",
        anon_id=None,
        user_id="crm-42",
        email="dana@acme.com",
        account="acc-1",
        name="Dana Ruiz",
        trust="server",
        props=CRM,
        **_at(0),
    )
    form = envelope(
        type="form_submit",
        anon_id="evil-cookie",
        email="dana@acme.com",
        props={"form_id": "demo-request", **ATTACK},
        **_at(10),
    )
    claim = envelope(
        type="identify",
        anon_id="evil-cookie",
        user_id="crm-42",
        email="eve@evil.example",
        name="Eve",
        account="acc-9",
        props=ATTACK,
        **_at(11),
    )
    return [
        crm,
        form,
        claim,
        *(page_view("/pricing", anon_id="evil-cookie", **_at(12 + n)) for n in range(3)),
    ]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_browser_claim_cannot_take_over_a_crm_contact(workers):
    out = run_flow(_attack(), workers)
    dana = out["profiles"]["crm-42"]
    assert (dana["title"], dana["company"], dana["company_size"]) == ("VP Sales", "Acme", 800)
    assert (dana["owner"], dana["account"], dana["name"]) == ("alex", "acc-1", "Dana Ruiz")
    assert dana["email"] == "dana@acme.com", "the address a rep writes to"
    assert dana["recognized_by"] == "server"
    assert "sam" not in {a["owner"] for a in out["alerts"]}, "never the rep the attacker named"
    hers = [a for a in out["alerts"] if a["contact"] == "crm-42"]
    assert hers, "her cookie's activity is still news for her owner"
    assert {a["owner"] for a in hers} == {"alex"}
    assert {a["identity"]["recognized_by"] for a in hers} == {"shared_device"}
    assert all(a["identity"]["verified"] is False for a in hers)


@pytest.mark.parametrize("workers", [1, 3])
def test_invented_browser_contacts_never_make_a_company_surge(workers):
    items = []
    for n in range(4):
        person = f"p{n}@initech.example"
        items.append(envelope(type="identify", anon_id=f"c{n}", email=person, **_at(n)))
        items += [page_view("/pricing", anon_id=f"c{n}", **_at(10 + n * 5 + k)) for k in range(4)]
    out = run_flow(items, workers)
    assert out["profiles"]["p0@initech.example"]["account"] == "initech.example"
    assert [a for a in out["alerts"] if a["kind"] == "account_surge"] == []

    verified = [
        {**item, "trust": "server"} if item["type"] == "identify" else item for item in items
    ]
    surges = [a for a in run_flow(verified, workers)["alerts"] if a["kind"] == "account_surge"]
    assert len(surges) == 1, "the same contacts, named by the CRM, do surge"
