"""Speech: what a caller said, read as digits, and numbers masked in free text.

``spoken_code`` reads one code (or account number) from an utterance, strictly, with
``spoken_tokens`` (cutting it into words) and ``spoken_lexicon`` (the words of each
configured language; ``number_words`` has Spanish's and German's). ``spoken_redaction``
masks anything that reads as a number, in every shipped language. Pure functions: no
I/O, no logging (their input usually holds a code).
"""
