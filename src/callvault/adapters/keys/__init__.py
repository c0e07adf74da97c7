"""KeyProvider adapters, chosen by the ``CALLVAULT_KEYS_URL`` scheme.

- ``keyfile:///abs/path`` -> :class:`callvault.adapters.keys.keyfile.KeyfileProvider`
  (passphrase-sealed file; the embedded default)
- ``pkcs11:...`` -> :class:`callvault.adapters.keys.pkcs11.Pkcs11Provider`
  (root keys generated and kept inside a PKCS#11 token)

The submodules are imported by name, not from here, so choosing one never
loads the other's driver.
"""
