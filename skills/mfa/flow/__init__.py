"""The call flow: the two tools and everything they decide with.

``tools`` holds the SWAIG handlers; ``send_path`` and ``verify_path`` decide each request;
``tool_call`` is the boundary both run inside; ``upstream`` makes the provider's calls as
the tools need them; ``recipient`` and ``directory`` find the number on file for an
account; ``next_step`` adds speech timing, history and the handoff to an answer;
``messages`` and ``sms_template`` are the words; ``policy`` the code's rules.
"""
