"""A Spanish-speaking caller over real HTTP: the agent on loopback, SignalWire faked on
loopback (its ``texts`` is the phone side). The account number and the code are read
back in Spanish; what reaches SignalWire is checked against the request it received."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.calls import new_call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CALLER = "+15557770001"
ON_FILE = "+12025550199"
EN_TEXT = "From {company}: only say this code on the call you made to us. Your code:"
ES_TEXT = "De {company}: diga este codigo solo en la llamada que usted nos hizo. Su codigo:"
SPANISH_DIGITS = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]


def bilingual(tmp_path: Path, **extra) -> dict:
    return {
        "company_name": "ACME",
        "languages": [
            {"code": "en", "name": "English", "voice": "rime.spore"},
            {"code": "es", "name": "Spanish", "voice": "rime.luna"},
        ],
        "code": {"message": {"en": EN_TEXT, "es": ES_TEXT}},
        **extra,
    }


@pytest.fixture
def served(fake_signalwire, make_settings, serve_agent, tmp_path):
    def serve(**extra) -> str:
        _, sw_url = fake_signalwire
        return serve_agent(
            make_settings(signalwire_url=sw_url, config=bilingual(tmp_path, **extra))
        )

    return serve


async def test_a_spanish_caller_is_texted_in_spanish_and_verified_in_spanish(
    fake_signalwire, served
):
    fake, _ = fake_signalwire
    url = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        reply = await call.invoke("send_mfa", language="es")
        assert "A code was texted" in reply.response
        code = fake.last_code_for(CALLER)
        (text,) = fake.texts
        assert text["body"] == ES_TEXT.replace("{company}", "ACME") + " " + code
        # A wrong length read in Spanish: nothing upstream, no try spent.
        short = " ".join(SPANISH_DIGITS[int(d)] for d in code[:5])
        reply = await call.invoke("verify_mfa", token=f"eh, {short}")
        assert "nothing was checked and no try was used" in reply.response
        assert not [r for r in fake.requests if r["path"].endswith("/verify")]
        words = " ".join(SPANISH_DIGITS[int(d)] for d in code)
        reply = await call.invoke("verify_mfa", token=f"a ver, mi código es {words}, creo")
        assert "caller is verified" in reply.response
        assert call.global_data["mfa_verified"] is True


async def test_an_english_send_keeps_the_english_text(fake_signalwire, served):
    fake, _ = fake_signalwire
    url = served()
    async with httpx.AsyncClient(timeout=15) as http:
        await (await new_call(http, url, caller=CALLER)).invoke("send_mfa")
        other = await new_call(http, url, caller="+15557770002")
        await other.invoke("send_mfa", language="fr")  # not configured: the first language's
    english = EN_TEXT.replace("{company}", "ACME")
    assert [t["body"].rsplit(" ", 1)[0] for t in fake.texts] == [english] * 2


async def test_an_account_number_read_in_spanish_finds_the_number_on_file(
    fake_signalwire, served, tmp_path
):
    fake, _ = fake_signalwire
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(f"account_number,phone_number\n12345678,{ON_FILE}\n")
    url = served(directory={"path": str(accounts), "neutral_answer_seconds": 0})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        reply = await call.invoke(
            "send_mfa",
            account_number="doce, treinta y cuatro, cincuenta y seis, setenta y ocho",
            language="es",
        )
        assert "texted" in reply.response
    assert [t["to"] for t in fake.texts] == [ON_FILE]
    assert fake.texts[0]["body"].startswith(ES_TEXT.replace("{company}", "ACME") + " ")
