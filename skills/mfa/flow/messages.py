"""Every sentence the tools hand the model, in one place.

The model reads these and says something like them to the caller, so they are
short, speakable, and never contain the code, the request id, a full number or
any exception text. Keeping them together makes that easy to review and test.
"""

from __future__ import annotations

from collections.abc import Callable

from skills.mfa.phone import spoken_digits


def code_sent(last4: str, valid_minutes: int) -> str:
    return (
        f"A code was texted to the phone number ending in {spoken_digits(last4)}. "
        f"It is good for {valid_minutes} minutes. Ask the caller to read it out "
        "or type it on the keypad followed by the pound key."
    )


def verified() -> str:
    return "The code is correct: the caller is verified. Tell them, then ask what else you can do."


def verified_transferring() -> str:
    return (
        "The code is correct: the caller is verified. In one short sentence, tell them so and "
        "that you are transferring them now. The transfer follows your sentence."
    )


def cannot_verify_goodbye() -> str:
    return (
        "That code can no longer be used and no new code can be sent on this call, so the "
        "caller cannot be verified now. Apologise briefly and say a polite goodbye in one "
        "short sentence. The call ends after your sentence."
    )


def cannot_verify_transferring() -> str:
    return (
        "That code can no longer be used and no new code can be sent on this call, so the "
        "caller cannot be verified here. In one short sentence, tell them you are "
        "transferring them to a colleague who can help. The transfer follows your sentence."
    )


def wrong_code(tries_left: int) -> str:
    if tries_left <= 0:
        return (
            "That code is not correct and there are no tries left for it. Offer to text a new code."
        )
    plural = "try" if tries_left == 1 else "tries"
    return (
        f"That code is not correct. The caller has {tries_left} {plural} left. "
        "Ask them to check the text message and read the code again."
    )


def code_gone() -> str:
    return (
        "That code has expired, was already used, or ran out of tries. "
        "Nothing was verified. Offer to text a new code."
    )


def malformed_code(token_length: int) -> str:
    return (
        f"I did not catch a {token_length}-digit code there, so nothing was checked and no try "
        f"was used. Ask the caller to say the {token_length} digits again, one at a time, "
        "or to type them on the keypad followed by pound."
    )


def no_code_sent() -> str:
    return "No code has been sent on this call yet. Offer to text one to the caller's phone."


def earlier_code_unusable() -> str:
    return (
        "No code was sent just now. Apologise and offer to text a new code to the caller's "
        "phone; if they agree, send it."
    )


def no_caller_number() -> str:
    return (
        "I cannot see a phone number that can receive a text on this call, so no code was sent. "
        "Apologise and explain that verification needs a call from a mobile phone."
    )


def other_number_refused() -> str:
    return (
        "For security, a code can only be texted to the phone number the caller is calling "
        "from. No code was sent. Offer to text the calling number instead."
    )


def invalid_number() -> str:
    return "That does not look like a phone number that can receive texts. No code was sent."


def provider_unavailable() -> str:
    return (
        "The verification service did not answer in time, so nothing changed. "
        "Apologise briefly and offer to try again in a moment."
    )


def send_failed_maybe_sent() -> str:
    return (
        "The verification service did not confirm the text. A code may still arrive; if it "
        "does not within a minute, offer to send a new one."
    )


def send_unconfirmed() -> str:
    return (
        "The verification service did not confirm the text, so there is no code to check on "
        "this call. If a text arrives anyway, its code will not work here: tell the caller to "
        "ignore it, and offer to send a new one."
    )


def sent_after_unconfirmed(sent_text: Callable[[str, int], str]) -> Callable[[str, int], str]:
    """``sent_text`` after a send that took a second try: the first text may arrive too."""

    def text(last4: str, valid_minutes: int) -> str:
        return (
            sent_text(last4, valid_minutes)
            + " The first try was not confirmed, so the caller may get two texts: only the "
            "code in the newest one works."
        )

    return text


def provider_misconfigured() -> str:
    return (
        "The verification service is not available right now because of a setup problem on "
        "our side. Apologise and tell the caller they can try again later."
    )


def number_refused_by_provider() -> str:
    return (
        "The text could not be sent to that number. Nothing was sent. Apologise and ask if "
        "there is anything else you can help with."
    )


def unexpected_failure() -> str:
    return (
        "Something went wrong on our side and nothing was changed. Apologise and offer to "
        "try again."
    )


def calling_with_code(last4: str, valid_minutes: int) -> str:
    return (
        f"Texts cannot reach the number on file, so a voice call is reading the code to the "
        f"number on file ending in {spoken_digits(last4)}. Tell the caller: I'll call you on "
        f"the number on file ending in {spoken_digits(last4)} and read you the code. It is "
        f"good for {valid_minutes} minutes. Ask them to answer that phone, listen to the code, "
        "then read it out here or type it on the keypad followed by the pound key."
    )


def recalled_with_code(last4: str, valid_minutes: int) -> str:
    return (
        calling_with_code(last4, valid_minutes)
        + " This new code replaces the earlier one, which no longer works."
    )


def landline_cannot_text() -> str:
    return (
        "The phone the caller is calling from is a landline, and text messages cannot reach "
        "it, so no code was sent. Say so plainly: verification needs a code texted to a "
        "mobile phone."
    )


def landline_goodbye() -> str:
    return (
        "The phone the caller is calling from is a landline, and text messages cannot reach "
        "it, so no code was sent and the caller cannot be verified on this call. Say so "
        "plainly, apologise and say a polite goodbye in one short sentence. The call ends "
        "after your sentence."
    )


def landline_transferring() -> str:
    return (
        "The phone the caller is calling from is a landline, and text messages cannot reach "
        "it, so no code was sent. Say so plainly in one short sentence and that you are "
        "transferring them to someone who can help. The transfer follows your sentence."
    )


def landline_on_file_cannot_text() -> str:
    return (
        "The number on file is a landline, and text messages cannot reach it, so no code was "
        "sent. Say so plainly and suggest updating the number on file with the business."
    )


def line_type_refused() -> str:
    return (
        "Codes cannot be sent to that kind of phone line, so no code was sent. Apologise and "
        "explain that verification needs a mobile phone."
    )


def resent(last4: str, valid_minutes: int) -> str:
    return (
        code_sent(last4, valid_minutes)
        + " This new code replaces the earlier one, which no longer works."
    )


def wait_before_resend(seconds: int) -> str:
    return (
        f"A code was sent moments ago and texts can take a little while, so no new code was "
        f"sent yet. Tell the caller a new code can be sent in about {max(1, seconds)} seconds, "
        "ask them to check their messages meanwhile, and offer to send a new one once that "
        "time has passed."
    )


def too_many_sends_this_call() -> str:
    return (
        "That is as many codes as can be sent on one call, so no new code was sent. Ask the "
        "caller to use the latest code they received, or to call back later."
    )


def too_many_sends_to_number() -> str:
    return (
        "Too many codes have gone to this phone number recently, so no code was sent. Apologise "
        "and ask the caller to try again later."
    )


def agent_busy() -> str:
    return (
        "The verification service is very busy right now, so no code was sent. Apologise and "
        "ask the caller to try again in a few minutes."
    )


def country_not_supported() -> str:
    return (
        "Codes cannot be texted to phone numbers in that country, so no code was sent. "
        "Apologise and ask if there is anything else you can help with."
    )


def number_cannot_receive_texts() -> str:
    return (
        "That phone number cannot receive text messages, so no code was sent. Apologise and "
        "explain that verification needs a mobile phone."
    )


# -- the account path (a directory names the number on file) ----------------------------


def account_required() -> str:
    return (
        "Codes go to the phone number on file for the caller's account. Ask the caller for "
        "their account number, then call send_mfa with it."
    )


def account_unclear() -> str:
    return (
        "I did not catch an account number there, so nothing was looked up. Ask the caller to "
        "say their account number again, one digit at a time."
    )


def account_not_sent() -> str:
    # The same words whether the account is unknown or its send was refused: which
    # accounts exist is not the caller's to learn.
    return (
        "No code was sent for that account number. Do not say whether the account exists. "
        "If a code was already sent on this call, ask the caller to use it; otherwise ask "
        "them to check their account number."
    )


def account_lookups_ended() -> str:
    return (
        "No more account numbers can be looked up on this call, so no code was sent. "
        "Apologise and suggest the caller calls back with their account number at hand."
    )


def code_finished() -> str:
    # A verify on a code that already reached its final outcome: nothing is checked.
    return (
        "No code is waiting to be checked on this call: the last one was already used up. "
        "Nothing was verified. Offer to text a new code."
    )


def older_code() -> str:
    return (
        "That was an earlier code: a newer one was texted since, and only the newest code "
        "counts. Nothing was checked. Ask the caller for the code in the most recent text."
    )
