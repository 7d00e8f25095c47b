"""Account directories: the number on file for an account (see ``base.py``)."""

from skills.mfa.flow.directory.base import (
    Directory,
    DirectoryRejected,
    DirectoryUnavailable,
    spoken_account,
)
from skills.mfa.phone import mask_account

__all__ = [
    "Directory",
    "DirectoryRejected",
    "DirectoryUnavailable",
    "mask_account",
    "spoken_account",
]
