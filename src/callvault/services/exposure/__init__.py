"""Exposure checks: the scanner for web servers, directories and buckets (R25), and
``doctor``, the check of a vault's own deployment."""
