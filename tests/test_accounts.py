"""People, sign-in, sessions, throttling and API tokens at the service level (R7, R11, R13)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert

from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.accounts import encode_grant_units
from callvault.adapters.db.schema import emergency_grants
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import ANY, Principal, Role
from callvault.core.audit import AuditEvent
from callvault.core.errors import (
    AccessDenied,
    AlreadyExists,
    IntegrityError,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from callvault.core.passwords import check_password
from callvault.services import accounts, credentials, sessions, tokens
from callvault.services.context import Vault
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    OPERATOR,
    TEST_PASSWORD,
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    ensure_care_units,
)

if TYPE_CHECKING:
    from conftest import CliVault

T0 = dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=dt.UTC)
CLIENT = "192.0.2.10"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def vault(tmp_path: Path, clock: FakeClock) -> Iterator[Vault]:
    for sub in ("data", "keys"):
        (tmp_path / sub).mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        tmp_path / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    opened = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'data' / 'vault.db'}"),
        blobs=open_blobstore("memory:"),
        keys=keys,
        clock=clock,
        probe=None,  # type: ignore[arg-type]
        origin="callvault.test/accounts",
    )
    with cheap_password_hashing():
        yield opened
    opened.close()


def db_bytes(tmp_path: Path) -> bytes:
    """Everything the database wrote: main file and write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted((tmp_path / "data").glob("vault.db*")))


def audit_events(vault: Vault) -> list[AuditEvent]:
    return [AuditEvent.from_canonical(r.body) for r in vault.store.iter_audit()]


def sign_in(vault: Vault, account: TestAccount, client: str = CLIENT) -> sessions.SignedIn:
    pending = sessions.login(
        vault, username=account.username, password=account.password, client=client
    )
    factor = account.second_factor(vault.now())
    return sessions.second_factor(vault, session_token=pending, client=client, **factor)


def use(vault: Vault, token: str, method: str = "GET", csrf: str | None = None) -> Principal:
    return accounts.resolve(
        vault, session_token=token, authorization=None, csrf_token=csrf, method=method, client=None
    )


@pytest.fixture
def nurse(vault: Vault) -> TestAccount:
    return enrolled_account(vault, "nurse.a", role="call_handler", care_units=["unit-a"])


# --- password policy -----------------------------------------------------------------


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_passwords_shorter_than_twelve_characters_are_refused(password: str) -> None:
    with pytest.raises(InvalidInput, match="at least 12"):
        check_password(password, "nurse.a")


@pytest.mark.parametrize(
    "password",
    [
        "123qweasdzxc",  # listed as is
        "qwerty123456",
        "Password2024!",  # listed word padded with digits and symbols
        "!!dragon12345",
        "FOOTBALL12345678",
    ],
)
def test_common_passwords_and_padded_variants_are_refused(password: str) -> None:
    with pytest.raises(InvalidInput, match="too common"):
        check_password(password, "nurse.a")


@pytest.mark.parametrize(
    "password", ["abcabcabcabc", "zzzzzzzzzzzzzz", "121212121212", "qwertyuiopas", "098765432109"]
)
def test_repetitive_and_keyboard_walk_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidInput, match=r"repetitive|sequence"):
        check_password(password, "nurse.a")


def test_passwords_containing_the_user_name_are_refused() -> None:
    with pytest.raises(InvalidInput, match="user name"):
        check_password("my name is Nurse.A, ok?", "nurse.a")
    with pytest.raises(InvalidInput, match="user name"):
        check_password("a.esrun likes tea", "nurse.a")  # reversed


def test_a_long_uncommon_passphrase_is_accepted_and_normalised() -> None:
    assert check_password(TEST_PASSWORD, "nurse.a") == TEST_PASSWORD
    decomposed = "kaffe pa\u0301 ma\u030arga timmar"
    assert check_password(decomposed, "nurse.a") == "kaffe pá mårga timmar"


def test_the_bundled_common_password_list_is_the_pinned_zxcvbn_top_ten_thousand() -> None:
    try:
        from callvault.testing.common_passwords import TARGET, build
    except ImportError as exc:  # pragma: no cover - a broken dev install
        pytest.fail(f"zxcvbn (a pinned dev dependency) is needed to check the list: {exc}")
    text = TARGET.read_text(encoding="ascii")
    assert text == build()
    assert len([line for line in text.splitlines() if not line.startswith("#")]) == 10_000


def test_production_password_hashes_are_argon2id_at_rfc9106_cost() -> None:
    assert credentials.PASSWORD_HASHER.type.name == "ID"
    assert credentials.PASSWORD_HASHER.memory_cost == 65536
    assert credentials.PASSWORD_HASHER.time_cost == 3


# --- enrolment -------------------------------------------------------------------------


def test_enrolment_link_works_once(vault: Vault) -> None:
    ensure_care_units(vault, ["unit-a"])
    link = accounts.create_user(vault, OPERATOR, "nurse.b", "call_handler", ["unit-a"])
    from callvault.testing.http import enrol

    enrol(vault, link.username, link.token)
    with pytest.raises(Unauthenticated):
        accounts.start_enrolment(vault, link.token)


def test_enrolment_link_expires_after_24_hours(vault: Vault, clock: FakeClock) -> None:
    link = accounts.create_admin(vault, OPERATOR, "admin.a")
    assert link.expires_at == T0 + dt.timedelta(hours=24)
    clock.advance(hours=24)
    with pytest.raises(Unauthenticated):
        accounts.start_enrolment(vault, link.token)


def test_enrolment_token_and_totp_secret_are_not_in_the_database(
    vault: Vault, tmp_path: Path
) -> None:
    link = accounts.create_admin(vault, OPERATOR, "admin.a")
    from callvault.testing.http import enrol

    account = enrol(vault, link.username, link.token)
    stored = db_bytes(tmp_path)
    assert link.token.encode() not in stored
    assert account.totp_secret.encode() not in stored
    for code in account.recovery_codes:
        assert code.encode() not in stored


def test_a_refused_password_leaves_the_link_usable(vault: Vault) -> None:
    link = accounts.create_admin(vault, OPERATOR, "admin.a")
    started = accounts.start_enrolment(vault, link.token)
    assert started.qr_svg.startswith("<svg") and "<script" not in started.qr_svg
    with pytest.raises(InvalidInput, match="too common"):
        accounts.finish_enrolment(vault, link.token, "password1234", "000000")
    from callvault.testing.http import enrol

    assert enrol(vault, link.username, link.token).recovery_codes


def test_a_sealed_totp_secret_opens_only_for_its_own_user(vault: Vault) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    sealed = credentials.seal_totp(vault, alice, "JBSWY3DPEHPK3PXPJBSWY3DP")
    assert credentials.open_totp(vault, alice, sealed) == "JBSWY3DPEHPK3PXPJBSWY3DP"
    with pytest.raises(IntegrityError):
        credentials.open_totp(vault, bob, sealed)
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(IntegrityError):
        credentials.open_totp(vault, alice, flipped)


@pytest.mark.parametrize(
    ("username", "role", "units", "error"),
    [
        ("rec.one", "recorder", [], InvalidInput),
        ("op.one", "operator", [], InvalidInput),
        ("nurse.c", "call_handler", [], InvalidInput),
        ("nurse.c", "call_handler", ["no-such-unit"], NotFound),
        ("nurse19121212", "call_handler", ["unit-a"], InvalidInput),
        ("anonymous", "log_reviewer", [], InvalidInput),
        ("nurse.a", "supervisor", ["unit-a"], AlreadyExists),
    ],
)
def test_create_user_refuses_bad_accounts(
    vault: Vault, nurse: TestAccount, username: str, role: str, units: list[str], error: type
) -> None:
    before = len(audit_events(vault))
    with pytest.raises(error):
        accounts.create_user(vault, OPERATOR, username, role, units)
    assert len(audit_events(vault)) == before


# --- sign-in ---------------------------------------------------------------------------


def test_password_then_totp_signs_in_with_the_users_role_and_units(
    vault: Vault, nurse: TestAccount
) -> None:
    done = sign_in(vault, nurse)
    principal = use(vault, done.session_token)
    assert (principal.name, principal.role, principal.care_units) == (
        "nurse.a",
        Role.CALL_HANDLER,
        frozenset({"unit-a"}),
    )
    assert len(principal.session) == 16 and principal.emergency is None


def test_a_session_waiting_for_its_second_factor_can_do_nothing(
    vault: Vault, nurse: TestAccount
) -> None:
    pending = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    with pytest.raises(Unauthenticated):
        use(vault, pending)


def test_the_second_factor_gives_the_session_a_new_id(vault: Vault, nurse: TestAccount) -> None:
    pending = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    done = sessions.second_factor(
        vault, session_token=pending, code=nurse.code(vault.now()), client=CLIENT
    )
    assert done.session_token != pending
    use(vault, done.session_token)
    with pytest.raises(Unauthenticated):
        use(vault, pending)
    with pytest.raises(Unauthenticated):  # nor can the old id be completed again
        sessions.second_factor(
            vault, session_token=pending, client=CLIENT, **nurse.second_factor(vault.now())
        )


def test_wrong_password_unknown_user_and_unenrolled_user_fail_alike(
    vault: Vault, nurse: TestAccount
) -> None:
    accounts.create_admin(vault, OPERATOR, "admin.new")
    errors = []
    for name, password in [("nurse.a", "wrong " + TEST_PASSWORD), ("nobody", TEST_PASSWORD),
                           ("admin.new", TEST_PASSWORD)]:  # fmt: skip
        with pytest.raises(Unauthenticated) as caught:
            sessions.login(vault, username=name, password=password, client=CLIENT)
        errors.append((type(caught.value), caught.value.message))
    assert len(set(errors)) == 1
    failed = [e for e in audit_events(vault) if e.action == "auth:login_failed"]
    assert [e.actor for e in failed] == ["nurse.a", "anonymous", "admin.new"]
    assert all(TEST_PASSWORD not in e.canonical_bytes().decode() for e in audit_events(vault))


def test_a_totp_code_is_accepted_once(vault: Vault, nurse: TestAccount) -> None:
    code = nurse.code(vault.now())
    first = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    sessions.second_factor(vault, session_token=first, code=code, client=CLIENT)
    again = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    with pytest.raises(Unauthenticated):
        sessions.second_factor(vault, session_token=again, code=code, client=CLIENT)
    last = audit_events(vault)[-1]
    assert (last.action, dict(last.detail)["why"]) == ("auth:totp_failed", "replayed")


def test_a_recovery_code_is_accepted_once(vault: Vault, nurse: TestAccount) -> None:
    code = nurse.recovery_codes[3]
    pending = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    done = sessions.second_factor(
        vault, session_token=pending, recovery_code=code.upper(), client=CLIENT
    )
    use(vault, done.session_token)
    assert dict(audit_events(vault)[-1].detail)["recovery_codes_left"] == 9
    pending = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    with pytest.raises(Unauthenticated):
        sessions.second_factor(vault, session_token=pending, recovery_code=code, client=CLIENT)


def test_a_pending_session_expires_after_five_minutes(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    pending = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    clock.advance(minutes=5)
    with pytest.raises(Unauthenticated):
        sessions.second_factor(
            vault, session_token=pending, code=nurse.code(vault.now()), client=CLIENT
        )


# --- throttling ----------------------------------------------------------------------------


def fail_login(vault: Vault, username: str, client: str = CLIENT) -> None:
    with pytest.raises(Unauthenticated):
        sessions.login(vault, username=username, password="not the password", client=client)


def test_five_failures_lock_the_account_for_fifteen_minutes(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    for i in range(5):
        fail_login(vault, "nurse.a", client=f"192.0.2.{i}")  # addresses differ: the account locks
    with pytest.raises(RateLimited) as caught:
        sessions.login(vault, username="nurse.a", password=nurse.password, client="192.0.2.99")
    assert caught.value.params["retry_after"] == 15 * 60
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(RateLimited):
        sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    clock.advance(seconds=1)
    use(vault, sign_in(vault, nurse).session_token)


def test_wrong_totp_codes_count_towards_the_lock(vault: Vault, nurse: TestAccount) -> None:
    pending = sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            sessions.second_factor(vault, session_token=pending, code="000000", client=CLIENT)
    with pytest.raises(RateLimited):
        sessions.second_factor(
            vault, session_token=pending, code=nurse.code(vault.now()), client=CLIENT
        )


def test_unknown_user_names_lock_exactly_like_real_ones(vault: Vault) -> None:
    for i in range(5):
        fail_login(vault, "no.such.person", client=f"192.0.2.{i}")
    with pytest.raises(RateLimited) as caught:
        sessions.login(vault, username="no.such.person", password="x" * 12, client="192.0.2.99")
    assert caught.value.params["retry_after"] == 15 * 60


def test_one_address_is_held_back_exponentially_after_ten_failures(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    for i in range(10):
        fail_login(vault, f"guess{i}")  # one address, ten different accounts
    fail_login(vault, "guess10")  # the 11th failure: 1 s
    waits = []
    for i in range(3):
        with pytest.raises(RateLimited) as caught:
            sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
        waits.append(caught.value.params["retry_after"])
        clock.advance(seconds=waits[-1])
        fail_login(vault, f"guess{11 + i}")
    assert waits == [1, 2, 4]
    # Another address is not held back.
    sessions.login(vault, username="nurse.a", password=nurse.password, client="192.0.2.200")


def test_throttle_rows_hold_no_address_or_user_name(
    vault: Vault, nurse: TestAccount, tmp_path: Path
) -> None:
    fail_login(vault, "nurse.a", client="198.51.100.77")
    stored = db_bytes(tmp_path)
    assert b"198.51.100.77" not in stored
    assert all("198.51.100.77" not in e.canonical_bytes().decode() for e in audit_events(vault))


# --- sessions ---------------------------------------------------------------------------------


def test_a_session_ends_after_fifteen_idle_minutes(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    token = sign_in(vault, nurse).session_token
    clock.advance(minutes=14)
    use(vault, token)
    clock.advance(minutes=14, seconds=59)
    use(vault, token)  # activity keeps it alive
    clock.advance(minutes=15)
    with pytest.raises(Unauthenticated):
        use(vault, token)


def test_a_busy_session_still_ends_eight_hours_after_sign_in(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    token = sign_in(vault, nurse).session_token
    for _ in range(8 * 6 - 1):
        clock.advance(minutes=10)
        use(vault, token)
    clock.advance(minutes=10)
    with pytest.raises(Unauthenticated):
        use(vault, token)


def test_logout_ends_the_session_on_the_server(vault: Vault, nurse: TestAccount) -> None:
    done = sign_in(vault, nurse)
    principal = use(vault, done.session_token, "POST", done.csrf_token)
    sessions.logout(vault, principal, done.session_token)
    with pytest.raises(Unauthenticated):
        use(vault, done.session_token)


def test_state_changes_with_a_session_need_its_csrf_token(vault: Vault, nurse: TestAccount) -> None:
    done = sign_in(vault, nurse)
    other = sign_in(vault, nurse)
    use(vault, done.session_token, "GET")
    use(vault, done.session_token, "HEAD")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for csrf in (None, "", other.csrf_token):
            with pytest.raises(AccessDenied):
                use(vault, done.session_token, method, csrf)
    assert use(vault, done.session_token, "POST", done.csrf_token).name == "nurse.a"
    denied = [e for e in audit_events(vault) if e.action == "access:denied"]
    assert len(denied) == 12


def test_the_emergency_grant_in_force_comes_with_the_principal(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    token = sign_in(vault, nurse).session_token
    user = _user_id(vault, "nurse.a")
    with vault.store.transaction() as tx:
        tx._c.execute(  # type: ignore[attr-defined]
            insert(emergency_grants).values(
                id=uuid.uuid4(),
                user_id=user,
                care_units=encode_grant_units(None),
                reason="caller rang back about an earlier call",
                opened_at=T0,
                expires_at=T0 + dt.timedelta(hours=1),
            )
        )
    grant = use(vault, token).emergency
    assert grant is not None and grant.care_units is ANY
    clock.advance(hours=1)
    token = sign_in(vault, nurse).session_token
    assert use(vault, token).emergency is None


def _user_id(vault: Vault, username: str) -> uuid.UUID:
    with vault.store.transaction() as tx:
        user = tx.accounts.user_by_name(username)
    assert user is not None
    return user.id


def test_disabling_a_user_ends_their_sessions_and_sign_in(vault: Vault, nurse: TestAccount) -> None:
    token = sign_in(vault, nurse).session_token
    accounts.disable_user(vault, OPERATOR, "nurse.a")
    with pytest.raises(Unauthenticated):
        use(vault, token)
    with pytest.raises(Unauthenticated):
        sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)


def test_reset_ends_sessions_and_issues_a_new_link(vault: Vault, nurse: TestAccount) -> None:
    token = sign_in(vault, nurse).session_token
    link = accounts.reset_user(vault, OPERATOR, "nurse.a")
    with pytest.raises(Unauthenticated):
        use(vault, token)
    with pytest.raises(Unauthenticated):
        sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
    from callvault.testing.http import enrol

    renewed = enrol(vault, "nurse.a", link.token, password="a brand new passphrase here")
    use(vault, sign_in(vault, renewed).session_token)


# --- API tokens ------------------------------------------------------------------------------


def bearer(vault: Vault, token: str, method: str = "POST") -> Principal:
    return accounts.resolve(
        vault,
        session_token=None,
        authorization=f"Bearer {token}",
        csrf_token=None,
        method=method,
        client=None,
    )


def test_api_tokens_are_hashed_at_rest_shown_once_and_dead_once_revoked(
    vault: Vault, tmp_path: Path
) -> None:
    ensure_care_units(vault, ["unit-a"])
    made = tokens.create(vault, OPERATOR, "recorder-1", "unit-a")
    assert made.token.startswith("cvt_") and len(made.token) == 47
    assert made.token.encode() not in db_bytes(tmp_path)
    listed = tokens.list_tokens(vault, OPERATOR)
    assert [t.name for t in listed] == ["recorder-1"]
    assert made.token not in repr(listed)
    principal = bearer(vault, made.token)  # POST without CSRF: bearer tokens need none
    assert (principal.name, principal.role, principal.care_units) == (
        "token:recorder-1",
        Role.RECORDER,
        frozenset({"unit-a"}),
    )
    assert tokens.list_tokens(vault, OPERATOR)[0].last_used_at == T0
    tokens.revoke(vault, OPERATOR, made.info.id)
    with pytest.raises(Unauthenticated):
        bearer(vault, made.token)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer cvt_short", "Basic dXNlcjpwYXNz", "Bearer " + "cvt_" + "A" * 43, "cvt_" + "A" * 43],
)
def test_malformed_or_unknown_bearer_tokens_are_unauthenticated(
    vault: Vault, authorization: str
) -> None:
    with pytest.raises(Unauthenticated):
        accounts.resolve(vault, session_token=None, authorization=authorization,
                         csrf_token=None, method="GET", client=None)  # fmt: skip


def test_a_cookie_and_a_token_together_are_refused(vault: Vault, nurse: TestAccount) -> None:
    ensure_care_units(vault, ["unit-a"])
    made = tokens.create(vault, OPERATOR, "recorder-1", "unit-a")
    done = sign_in(vault, nurse)
    with pytest.raises(Unauthenticated):
        accounts.resolve(vault, session_token=done.session_token,
                         authorization=f"Bearer {made.token}", csrf_token=done.csrf_token,
                         method="GET", client=None)  # fmt: skip


def test_token_names_are_unique_for_good(vault: Vault) -> None:
    ensure_care_units(vault, ["unit-a"])
    made = tokens.create(vault, OPERATOR, "recorder-1", "unit-a")
    tokens.revoke(vault, OPERATOR, made.info.id)
    with pytest.raises(AlreadyExists):
        tokens.create(vault, OPERATOR, "recorder-1", "unit-a")


# --- authorisation and audit --------------------------------------------------------------------


def test_only_administrators_manage_accounts_units_and_tokens(
    vault: Vault, nurse: TestAccount
) -> None:
    principal = use(vault, sign_in(vault, nurse).session_token)
    calls: list[Callable[[], object]] = [
        lambda: accounts.create_user(vault, principal, "x.user", "log_reviewer"),
        lambda: accounts.list_users(vault, principal),
        lambda: accounts.reset_user(vault, principal, "nurse.a"),
        lambda: accounts.disable_user(vault, principal, "nurse.a"),
        lambda: accounts.create_care_unit(vault, principal, "unit-b", "B"),
        lambda: accounts.list_care_units(vault, principal),
        lambda: tokens.create(vault, principal, "r1", "unit-a"),
        lambda: tokens.list_tokens(vault, principal),
        lambda: tokens.revoke(vault, principal, uuid.uuid4()),
    ]
    for call in calls:
        before = len(audit_events(vault))
        with pytest.raises(AccessDenied):
            call()
        (entry,) = audit_events(vault)[before:]
        assert (entry.action, entry.actor) == ("access:denied", "nurse.a")


def test_every_account_action_writes_exactly_one_entry(vault: Vault) -> None:
    admin = enrolled_account(vault, "admin.a", role="administrator")
    steps: list[tuple[str, Callable[[Principal], object]]] = [
        ("unit:create", lambda p: accounts.create_care_unit(vault, p, "unit-z", "Z")),
        ("user:create", lambda p: accounts.create_user(vault, p, "sup.z", "supervisor", ["unit-z"])),  # noqa: E501
        ("user:list", lambda p: accounts.list_users(vault, p)),
        ("unit:list", lambda p: accounts.list_care_units(vault, p)),
        ("user:reset", lambda p: accounts.reset_user(vault, p, "sup.z")),
        ("user:disable", lambda p: accounts.disable_user(vault, p, "sup.z")),
        ("token:create", lambda p: tokens.create(vault, p, "rec-z", "unit-z")),
        ("token:list", lambda p: tokens.list_tokens(vault, p)),
    ]  # fmt: skip
    signed = sign_in(vault, admin)
    principal = use(vault, signed.session_token)
    for action, step in steps:
        before = len(audit_events(vault))
        step(principal)
        assert [e.action for e in audit_events(vault)[before:]] == [action]
    before = len(audit_events(vault))
    sessions.logout(vault, principal, signed.session_token)
    assert [e.action for e in audit_events(vault)[before:]] == ["auth:logout"]


# --- the command line ---------------------------------------------------------------------------


def test_the_operator_creates_the_first_administrator_with_an_enrolment_link(
    cli_vault: Callable[[], CliVault],
) -> None:
    cli = cli_vault()
    out = cli.run("users", "create-admin", "Admin.First").stdout
    (link,) = re.findall(r"https://\S+", out)
    assert re.fullmatch(r"https://127\.0\.0\.1:8443/enrol#[A-Za-z0-9_-]{43}", link)
    listed = cli.run("users", "list").stdout.splitlines()
    assert [line.split()[:3] for line in listed] == [["admin.first", "administrator", "not"]]


# --- the same SQL on PostgreSQL ------------------------------------------------------------------


def test_accounts_sessions_throttles_and_tokens_work_on_postgresql(
    tmp_path: Path, clock: FakeClock
) -> None:
    from callvault.testing import postgres

    with postgres.throwaway_database() as url, cheap_password_hashing():
        vault = Vault(
            store=SqlMetadataStore.open(url),
            blobs=open_blobstore("memory:"),
            keys=KeyfileProvider.create(
                tmp_path / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
            ),
            clock=clock,
            probe=None,  # type: ignore[arg-type]
            origin="callvault.test/accounts-pg",
        )
        try:
            nurse = enrolled_account(vault, "nurse.a", role="call_handler", care_units=["unit-a"])
            done = sign_in(vault, nurse)
            assert use(vault, done.session_token, "POST", done.csrf_token).name == "nurse.a"
            code = nurse.recovery_codes[0]
            for expected in (True, False):  # a recovery code works once
                pending = sessions.login(
                    vault, username="nurse.a", password=nurse.password, client=CLIENT
                )
                if expected:
                    sessions.second_factor(
                        vault, session_token=pending, recovery_code=code, client=CLIENT
                    )
                else:
                    with pytest.raises(Unauthenticated):
                        sessions.second_factor(
                            vault, session_token=pending, recovery_code=code, client=CLIENT
                        )
            for _ in range(4):
                fail_login(vault, "nurse.a")
            with pytest.raises(RateLimited):
                sessions.login(vault, username="nurse.a", password=nurse.password, client=CLIENT)
            made = tokens.create(vault, OPERATOR, "recorder-1", "unit-a")
            assert bearer(vault, made.token).name == "token:recorder-1"
            tokens.revoke(vault, OPERATOR, made.info.id)
            with pytest.raises(Unauthenticated):
                bearer(vault, made.token)
            accounts.reset_user(vault, OPERATOR, "nurse.a")
            with pytest.raises(Unauthenticated):
                use(vault, done.session_token)
        finally:
            vault.close()
