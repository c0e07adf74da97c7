"""callvault: an encrypted, audited vault for recorded calls of healthcare advice lines."""

__version__ = "0.1.0"
