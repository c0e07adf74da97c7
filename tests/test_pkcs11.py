"""The PKCS#11 provider on a real SoftHSM2 token (one fresh token per test)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from callvault.adapters.keys.pkcs11 import Pkcs11Provider, open_from_url
from callvault.core.errors import (
    AlreadyExists,
    ConfigError,
    InsecureKeyFile,
    InvalidInput,
    KeyUnavailable,
)
from callvault.core.ports import KeyProvider
from callvault.testing import softhsm
from callvault.testing.keys import AD, SECRET, KeyProviderConformance
from callvault.testing.softhsm import SoftHsmToken, softhsm_token


@pytest.fixture
def token(tmp_path: Path) -> Iterator[SoftHsmToken]:
    with softhsm_token(tmp_path) as made:
        yield made


@pytest.fixture
def opened(token: SoftHsmToken) -> Iterator[list[Pkcs11Provider]]:
    """Providers to close before the token goes away."""
    providers: list[Pkcs11Provider] = []
    yield providers
    for provider in providers:
        provider.close()


@pytest.fixture
def make(token: SoftHsmToken, opened: list[Pkcs11Provider]) -> Callable[..., Pkcs11Provider]:
    def make_one(
        prefix: str = "callvault-root", *, create: bool = True, **kw: Any
    ) -> Pkcs11Provider:
        args = {
            "module_path": token.module_path,
            "token_label": token.label,
            "user_pin": token.user_pin,
            "key_label_prefix": prefix,
            **kw,
        }
        provider = Pkcs11Provider.create(**args) if create else Pkcs11Provider.open(**args)
        opened.append(provider)
        return provider

    return make_one


@pytest.fixture
def raw_session(token: SoftHsmToken) -> Iterator[Any]:
    """A plain session on the token; it shares a provider's login while one is open."""
    session = pkcs11.lib(token.module_path).get_token(token_label=token.label).open(rw=True)
    yield session
    session.close()


class TestPkcs11Conformance(KeyProviderConformance):
    @pytest.fixture
    def make_provider(self, make: Callable[..., Pkcs11Provider]) -> Callable[[], KeyProvider]:
        counter = itertools.count(1)
        return lambda: make(f"conformance{next(counter)}")

    @pytest.fixture
    def reopen(self, make: Callable[..., Pkcs11Provider]) -> Callable[[KeyProvider], KeyProvider]:
        def again(provider: KeyProvider) -> KeyProvider:
            assert isinstance(provider, Pkcs11Provider)
            provider.close()
            return make(provider.key_label_prefix, create=False)

        return again


def _object(session: Any, label: str) -> Any:
    (obj,) = list(session.get_objects({Attribute.LABEL: label}))
    return obj


class TestRootKeysStayInTheToken:
    def test_root_key_value_cannot_be_read(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        make("vault")
        root = _object(raw_session, "vault-v1")
        with pytest.raises(p11.AttributeSensitive):
            root[Attribute.VALUE]
        assert root[Attribute.EXTRACTABLE] is False
        assert root[Attribute.NEVER_EXTRACTABLE] is True
        assert root[Attribute.SENSITIVE] is True
        assert root[Attribute.ALWAYS_SENSITIVE] is True
        assert root[Attribute.TOKEN] is True
        assert root[Attribute.PRIVATE] is True
        assert root[Attribute.WRAP] is False

    def test_root_key_cannot_be_wrapped_out_by_another_key(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        make("vault")
        root = _object(raw_session, "vault-v1")
        wrapper = raw_session.generate_key(
            KeyType.AES,
            256,
            label="wrapper",
            capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        )
        with pytest.raises(p11.KeyUnextractable):
            wrapper.wrap_key(root)

    def test_rotated_root_keys_are_just_as_locked(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        provider = make("vault")
        version = provider.rotate()
        with pytest.raises(p11.AttributeSensitive):
            _object(raw_session, f"vault-v{version}")[Attribute.VALUE]

    def test_retire_destroys_the_object_in_the_token(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        provider = make("vault")
        provider.rotate()
        provider.retire(1)
        assert list(raw_session.get_objects({Attribute.LABEL: "vault-v1"})) == []

    def test_index_key_and_audit_seed_are_the_token_objects(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        provider = make("vault")
        assert _object(raw_session, "vault-index-key")[Attribute.VALUE] == provider.index_key()
        assert (
            _object(raw_session, "vault-audit-seed")[Attribute.VALUE]
            == provider.audit_signing_seed()
        )

    def test_extractable_root_key_is_refused_on_open(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        make("vault")
        raw_session.generate_key(
            KeyType.AES,
            256,
            label="planted-v1",
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.EXTRACTABLE: True,
                Attribute.SENSITIVE: False,
                Attribute.TOKEN: True,
            },
        )
        with pytest.raises(KeyUnavailable, match="extractable"):
            make("planted", create=False)

    def test_duplicate_root_label_is_refused(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        provider = make("vault")
        raw_session.generate_key(
            KeyType.AES,
            256,
            label="vault-v1",
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={Attribute.EXTRACTABLE: False, Attribute.TOKEN: True},
        )
        with pytest.raises(KeyUnavailable, match="two root KEKs"):
            provider.wrap(SECRET, AD)


class TestOpenAndLogin:
    def test_open_without_created_keys_raises_key_unavailable(
        self, make: Callable[..., Pkcs11Provider]
    ) -> None:
        with pytest.raises(KeyUnavailable, match="no root KEK"):
            make("never-created", create=False)

    def test_create_twice_raises_already_exists(self, make: Callable[..., Pkcs11Provider]) -> None:
        make("vault")
        with pytest.raises(AlreadyExists):
            make("vault")

    def test_interrupted_create_is_completed_and_keeps_the_made_secret(
        self, make: Callable[..., Pkcs11Provider], raw_session: Any
    ) -> None:
        make("other")  # holds the login so the raw session may write private objects
        raw_session.generate_key(
            KeyType.GENERIC_SECRET,
            256,
            label="vault-index-key",
            store=True,
            capabilities=MechanismFlag(0),
            template={
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.TOKEN: True,
            },
        )
        made = _object(raw_session, "vault-index-key")[Attribute.VALUE]
        assert make("vault").index_key() == made

    def test_wrong_pin_raises_key_unavailable(self, make: Callable[..., Pkcs11Provider]) -> None:
        with pytest.raises(KeyUnavailable, match="refused the PIN"):
            make("vault", user_pin="00000000")

    def test_wrong_pin_is_refused_while_another_provider_holds_the_login(
        self, make: Callable[..., Pkcs11Provider], token: SoftHsmToken
    ) -> None:
        make("vault")
        with pytest.raises(KeyUnavailable, match="refused the PIN"):
            make("vault", create=False, user_pin=token.user_pin + "0")

    def test_empty_pin_and_bad_prefix_are_refused(
        self, make: Callable[..., Pkcs11Provider]
    ) -> None:
        with pytest.raises(InvalidInput):
            make("vault", user_pin="")
        with pytest.raises(InvalidInput):
            make("bad prefix/with slash")

    def test_unknown_token_raises_key_unavailable(
        self, make: Callable[..., Pkcs11Provider]
    ) -> None:
        with pytest.raises(KeyUnavailable, match="no PKCS#11 token"):
            make("vault", token_label="no-such-token")

    def test_missing_module_raises_key_unavailable(
        self, make: Callable[..., Pkcs11Provider], tmp_path: Path
    ) -> None:
        with pytest.raises(KeyUnavailable, match="cannot load"):
            make("vault", module_path=str(tmp_path / "libnothing.so"))

    def test_two_providers_share_the_login_and_see_each_others_rotation(
        self, make: Callable[..., Pkcs11Provider]
    ) -> None:
        first = make("vault")
        second = make("vault", create=False)
        version = first.rotate()
        assert second.current_version() == version
        first.close()
        assert second.wrap(SECRET, AD)[0] == version  # still logged in

    def test_closed_provider_raises_key_unavailable(
        self, make: Callable[..., Pkcs11Provider]
    ) -> None:
        provider = make("vault")
        provider.close()
        provider.close()  # idempotent
        with pytest.raises(KeyUnavailable, match="closed"):
            provider.wrap(SECRET, AD)

    def test_last_close_logs_out_of_the_token(
        self, make: Callable[..., Pkcs11Provider], token: SoftHsmToken
    ) -> None:
        make("vault").close()
        session = pkcs11.lib(token.module_path).get_token(token_label=token.label).open()
        try:
            assert list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})) == []
        finally:
            session.close()


class TestOpenFromUrl:
    @pytest.fixture
    def url(self, token: SoftHsmToken) -> str:
        return f"pkcs11:token={token.label};module-path={token.module_path};object=from-url"

    @pytest.fixture
    def pin_env(self, token: SoftHsmToken, tmp_path: Path) -> dict[str, str]:
        pin_file = tmp_path / "pin"
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, token.user_pin.encode() + b"\n")
        os.close(fd)
        return {"CALLVAULT_PKCS11_PIN_FILE": str(pin_file)}

    def test_create_then_open_through_the_url_with_a_pin_file(
        self, url: str, pin_env: dict[str, str], opened: list[Pkcs11Provider]
    ) -> None:
        created = open_from_url(url, pin_env, create=True)
        opened.append(created)
        assert created.key_label_prefix == "from-url"
        version, blob = created.wrap(SECRET, AD)
        created.close()
        reopened = open_from_url(url, pin_env)
        opened.append(reopened)
        assert reopened.unwrap(version, blob, AD) == SECRET

    def test_module_path_may_sit_in_the_query_and_prefix_defaults(
        self, token: SoftHsmToken, opened: list[Pkcs11Provider]
    ) -> None:
        url = f"pkcs11:token={token.label}?module-path={token.module_path}"
        provider = open_from_url(url, {"CALLVAULT_PKCS11_PIN": token.user_pin}, create=True)
        opened.append(provider)
        assert provider.key_label_prefix == "callvault-root"

    @pytest.mark.parametrize(
        "url",
        [
            "pkcs11:token=t;module-path=/m.so;pin-value=1234",
            "pkcs11:token=t;module-path=/m.so?pin-source=file:/p",
            "pkcs11:module-path=/m.so",
            "pkcs11:token=t",
            "pkcs11:token=t;token=u;module-path=/m.so",
            "pkcs12:token=t;module-path=/m.so",
        ],
    )
    def test_malformed_urls_and_pins_in_urls_are_refused(self, url: str) -> None:
        with pytest.raises(ConfigError) as caught:
            open_from_url(url, {"CALLVAULT_PKCS11_PIN": "1234"})
        assert "1234" not in str(caught.value)

    def test_missing_pin_raises_key_unavailable_naming_the_setting(self, url: str) -> None:
        with pytest.raises(KeyUnavailable, match="CALLVAULT_PKCS11_PIN_FILE"):
            open_from_url(url, {})

    def test_pin_file_others_can_read_is_refused(self, url: str, pin_env: dict[str, str]) -> None:
        Path(pin_env["CALLVAULT_PKCS11_PIN_FILE"]).chmod(0o644)
        with pytest.raises(InsecureKeyFile):
            open_from_url(url, pin_env)


class TestSoftHsmHelper:
    def test_missing_softhsm2_util_fails_loudly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("shutil.which", lambda _name: None)
        with pytest.raises(ConfigError, match="apt-get install softhsm2"):
            softhsm.find_softhsm()

    def test_missing_module_fails_loudly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(softhsm, "MODULE_CANDIDATES", ("/nonexistent/libsofthsm2.so",))
        with pytest.raises(ConfigError, match=r"libsofthsm2\.so not found"):
            softhsm.find_softhsm()

    def test_token_lives_under_the_given_directory(
        self, token: SoftHsmToken, tmp_path: Path
    ) -> None:
        assert token.token_dir.is_relative_to(tmp_path)
        assert any(token.token_dir.iterdir())
        assert token.user_pin not in repr(token)
