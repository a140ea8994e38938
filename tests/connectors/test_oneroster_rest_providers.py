"""The oneroster-rest connector against loopback providers that behave as real ones do.

Listings are complete or fail (capped limits without a Link, missing or wrong counts, rows
moving between pages); each collection is read once per run; OAuth 2 tokens expire, get
revoked, and are asked for with HTTP Basic or in the body, with a scope. Whatever the
provider's habits, the replica is the one the same district's CSV export gives.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.replica.records import Record
from gateway.settings import ConnectorSettings, Settings
from gateway.security.keys import write_secret_file

from connectors import registry
from connectors.oneroster_rest import OPTION_KEYS, ProviderError, from_settings
from sync.engine import RunResult, run_sync

from .provider import Provider
from .test_oneroster_rest import CSV_FIXTURE, rest_connector

ROOT = Path(__file__).resolve().parents[2]
USERS_BY_ID = ["A-AIDE", "P-EMEKA", "P-ROSA", "R-IFE", "T-KIM", "T-LEE", "U-ANA", "U-BEN", "U-CAL"]


def user_ids(provider: Provider, instance: Settings, tmp_path: Path, **options: object) -> list[str]:
    connector = rest_connector(provider, instance, tmp_path, **options)
    return [row["sourcedid"] for _, row in connector.source.rows("users")]  # type: ignore[attr-defined]


def user_queries(provider: Provider, name: str = "users") -> list[dict[str, list[str]]]:
    return [query for method, path, query in provider.state.requests if method == "GET" and path.endswith(f"/{name}")]


def rest_entry(provider: Provider, **options: object) -> ConnectorSettings:
    return ConnectorSettings("rostering", "oneroster-rest", "rostering", {
        "base_url": provider.base_url, "version": "1.1", "auth": "oauth2", "client_id": provider.state.client_id,
        "token_url": provider.token_url, "guardian_portal_access": True, "retries": 1, **options})


def sync(instance: Settings, entry: ConnectorSettings, mode: str = "full", secret: str | None = None) -> RunResult:
    settings = dataclasses.replace(instance, connectors=(entry,),
                                   sync=dataclasses.replace(instance.sync, retry_backoff_seconds=0.01))
    if secret is not None:
        write_secret_file(instance.keys_dir / f"source-{entry.name}", secret)
    return run_sync(settings, registry.build(entry, settings), mode)


def replica(settings: Settings) -> set[tuple[str, str, str]]:
    from tests.sync.conftest import replica_state

    return {(table, source_id, row_hash) for table, rows in replica_state(settings).items()
            for source_id, row_hash in rows.items()}


# --- complete listings -----------------------------------------------------------------------

def test_a_provider_that_caps_limit_without_a_link_is_paged_on_by_offset_to_its_total(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.max_limit = 2  # asked for 100, it sends 2 and says nothing but X-Total-Count: 9
    assert user_ids(provider, instance, tmp_path) == USERS_BY_ID
    assert [q["offset"] for q in user_queries(provider)] == [["0"], ["2"], ["4"], ["6"], ["8"]]


def test_without_a_total_or_a_link_paging_goes_on_until_an_empty_page(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.max_limit, provider.state.send_total = 4, False
    assert user_ids(provider, instance, tmp_path) == USERS_BY_ID
    assert [q["offset"] for q in user_queries(provider)] == [["0"], ["4"], ["8"], ["9"]]


def test_a_relative_link_is_followed_on_the_providers_host(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    provider.state.link_paging, provider.state.link_host = True, ""
    assert user_ids(provider, instance, tmp_path, page_size=4) == USERS_BY_ID
    assert [q["offset"] for q in user_queries(provider)] == [["0"], ["4"], ["8"]]


def test_a_link_to_another_host_is_refused_before_the_token_goes_there(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.link_paging, provider.state.link_host = True, "attacker.example:8443"
    with pytest.raises(ProviderError, match=re.escape("the Link header's next page is on another host (attacker.example:8443)")):
        user_ids(provider, instance, tmp_path, page_size=4)
    assert len(user_queries(provider)) == 1


def test_listings_ask_for_rows_sorted_by_sourced_id(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    list(rest_connector(provider, instance, tmp_path, page_size=4).source.rows("users"))  # type: ignore[attr-defined]
    queries = user_queries(provider)
    assert len(queries) == 3
    assert all(q["sort"] == ["sourcedId"] and q["orderBy"] == ["asc"] for q in queries)


def test_a_user_modified_while_users_are_paged_is_neither_skipped_nor_read_twice(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    # Unsorted, this provider lists the last modified last: U-ANA, modified after the first
    # page, would move to the end, pushing U-CAL back onto the page already read.
    provider.state.touch_after_first_page = "U-ANA"
    assert user_ids(provider, instance, tmp_path, page_size=2) == USERS_BY_ID


def test_without_sort_a_row_that_moves_between_pages_fails_the_listing_instead_of_skipping_one(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.touch_after_first_page = "U-ANA"
    with pytest.raises(ProviderError, match="U-ANA came on two pages of users") as caught:
        user_ids(provider, instance, tmp_path, page_size=2, sort=False)
    assert caught.value.retriable  # the next attempt may well read a still listing
    assert "nothing of this listing was applied" in str(caught.value)
    assert "sort" not in user_queries(provider)[0]


def test_a_provider_that_refuses_sort_says_to_turn_it_off_and_is_read_with_it_off(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.refuse_sort = True
    with pytest.raises(ProviderError, match=re.escape("refused the request (400); if it does not take sort=sourcedId, set sort = false")):
        user_ids(provider, instance, tmp_path)
    assert sorted(user_ids(provider, instance, tmp_path, sort=False)) == USERS_BY_ID


@pytest.mark.parametrize(("skew", "message"), [
    (1, "the provider counted 10 users (X-Total-Count) but sent 9"),
    (-1, "the provider counted 8 users (X-Total-Count) but sent 9"),
])
def test_a_listing_that_does_not_add_up_to_its_total_fails(
    provider: Provider, instance: Settings, tmp_path: Path, skew: int, message: str
) -> None:
    provider.state.total_skew["users"] = skew
    with pytest.raises(ProviderError, match=re.escape(message)) as caught:
        user_ids(provider, instance, tmp_path)
    assert f"GET {provider.base_url}/v1p1/users (listing users)" in str(caught.value)


def test_a_provider_that_ignores_offset_fails_on_the_repeated_rows(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.max_limit, provider.state.ignore_offset = 2, True
    with pytest.raises(ProviderError, match="came on two pages of users"):
        user_ids(provider, instance, tmp_path)


def test_a_listing_that_does_not_add_up_fails_the_run_and_applies_nothing(provider: Provider, instance: Settings) -> None:
    assert sync(instance, rest_entry(provider), secret=provider.state.secret).status == "succeeded"
    before = replica(instance)
    # The next export renames a school (read before users) and a student; users miscount.
    orgs, users = provider.state.data["/ims/oneroster/v1p1/orgs"], provider.state.data["/ims/oneroster/v1p1/users"]
    next(org for org in orgs if org["sourcedId"] == "S1")["name"] = "Renamed School"
    next(user for user in users if user["sourcedId"] == "U-BEN")["familyName"] = "Renamed"
    provider.state.total_skew["users"] = 1
    with pytest.raises(ProviderError, match=re.escape("counted 10 users (X-Total-Count) but sent 9")):
        sync(instance, rest_entry(provider), secret=provider.state.secret)
    assert replica(instance) == before
    from tests.sync.test_oneroster_sync import rows

    (error,) = rows(instance, "SELECT error FROM sync_runs WHERE status = 'failed'")[0]
    assert "X-Total-Count" in str(error)
    assert rows(instance, "SELECT name FROM schools WHERE source_id = 'S1'") != [("Renamed School",)]


def test_each_collection_is_read_once_per_run_full_or_incremental(provider: Provider, instance: Settings) -> None:
    assert sync(instance, rest_entry(provider), secret=provider.state.secret).status == "succeeded"
    first_pages = Counter(path.rsplit("/", 1)[1] for method, path, query in provider.state.requests
                          if method == "GET" and query.get("offset") == ["0"])
    assert first_pages == Counter({name: 1 for name in (
        "orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics",
        "categories", "lineItems", "results")})

    provider.state.requests.clear()
    users = provider.state.data["/ims/oneroster/v1p1/users"]
    ben = next(user for user in users if user["sourcedId"] == "U-BEN")
    ben["familyName"], ben["dateLastModified"] = "Okafor-Hale", "2026-11-30T10:00:00Z"
    result = sync(instance, rest_entry(provider), "incremental", provider.state.secret)
    assert result.counts["students"].updated == 1
    user_reads = [query for query in user_queries(provider) if query.get("offset") == ["0"]]
    assert len(user_reads) == 1 and "filter" not in user_reads[0]  # the one full listing serves every users stream


# --- OAuth 2 as providers do it --------------------------------------------------------------

def test_a_token_is_renewed_before_it_expires_during_a_longer_sync(provider: Provider, instance: Settings) -> None:
    provider.state.token_lifetime, provider.state.delay_seconds = 2.0, 0.3
    started = time.monotonic()
    assert sync(instance, rest_entry(provider, page_size=3), secret=provider.state.secret).status == "succeeded"
    assert time.monotonic() - started > 4  # two token lifetimes at least
    assert provider.state.refused == []  # renewed in time, not after a refusal
    assert len([m for m, _, _ in provider.state.requests if m == "POST"]) >= 3


def test_a_401_is_retried_once_with_a_new_token(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    connector = rest_connector(provider, instance, tmp_path)
    provider.revoke_tokens()  # the provider restarted, or rotated its signing key
    schools = [item for item in connector.iter_records("schools", None) if isinstance(item, Record)]
    assert len(schools) == 2
    assert len(provider.state.refused) == 1
    assert [path for method, path, _ in provider.state.requests if method == "POST"] == ["/oauth/token"] * 2


def test_a_new_token_refused_too_is_a_clear_error_naming_the_listing(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    connector = rest_connector(provider, instance, tmp_path)
    provider.state.always_fail["orgs"] = 401
    with pytest.raises(ProviderError) as caught:
        list(connector.iter_records("schools", None))
    assert str(caught.value) == (
        f"connector rostering: GET {provider.base_url}/v1p1/orgs (listing orgs): the provider refused a new token "
        "too (401); the token request succeeded: check that this client may read orgs (its scopes; see scope)")


def test_client_secret_basic_is_the_default_with_id_and_secret_form_urlencoded(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.client_auth = "basic"  # RFC 6749 §2.3.1: the one every server must take
    provider.state.secret = "p+ss:w%rd 7/é"  # '+', ':' and '%' survive only if form-urlencoded before Basic
    schools = [item for item in rest_connector(provider, instance, tmp_path).iter_records("schools", None)
               if isinstance(item, Record)]
    assert len(schools) == 2
    (token_body,) = [body for method, _, body in provider.state.requests if method == "POST"]
    assert token_body == {"grant_type": ["client_credentials"]}  # nothing secret in the body


def test_client_secret_post_sends_the_credentials_in_the_body_when_chosen(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    provider.state.client_auth = "post"
    with pytest.raises(ProviderError, match=re.escape(f"POST {provider.token_url} (the OAuth 2 token request): "
                                                      "cannot get a token: answered 401 invalid_client")) as caught:
        rest_connector(provider, instance, tmp_path)
    assert "client_auth (client_secret_basic or client_secret_post" in str(caught.value)
    connector = rest_connector(provider, instance, tmp_path, client_auth="client_secret_post")
    assert len([item for item in connector.iter_records("schools", None) if isinstance(item, Record)]) == 2


def test_the_configured_scope_is_asked_for(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    scope = "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"
    provider.state.scope = scope
    with pytest.raises(ProviderError, match=re.escape("answered 400 invalid_scope; check scope")):
        rest_connector(provider, instance, tmp_path)
    connector = rest_connector(provider, instance, tmp_path, scope=scope)
    assert len([item for item in connector.iter_records("schools", None) if isinstance(item, Record)]) == 2
    assert [body.get("scope") for method, _, body in provider.state.requests if method == "POST"] == [None, [scope]]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("client_auth", "private_key_jwt", "'private_key_jwt' is not client_secret_basic or client_secret_post"),
    ("scope", ["roster"], "must be a string"),
    ("sort", "yes", "must be true or false"),
])
def test_bad_oauth_and_paging_settings_are_refused_by_name(instance: Settings, key: str, value: object, message: str) -> None:
    entry = ConnectorSettings("rostering", "oneroster-rest", "rostering", {
        "base_url": "https://sis.example.org/ims/oneroster", "version": "1.1", "auth": "oauth2", "client_id": "gateway",
        "token_url": "https://sis.example.org/oauth/token", "guardian_portal_access": True, key: value})
    with pytest.raises(ConfigError, match=re.escape(f"connectors.rostering.{key}: {message}")):
        from_settings(entry, instance)


def test_every_oneroster_rest_setting_is_documented_in_the_example_config_and_the_readme() -> None:
    example = (ROOT / "config" / "gateway.example.toml").read_text(encoding="utf-8")
    block = example[example.index('# kind = "oneroster-rest"'):]
    block = block[:block.find("\n\n") if "\n\n" in block else None]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for key in sorted(OPTION_KEYS):
        assert f"\n# {key} =" in block, f"gateway.example.toml: {key}"
        assert f"`{key}`" in readme, f"README: {key}"


# --- the same replica as the CSV path --------------------------------------------------------

def cap_pages_without_link(provider: Provider) -> None:
    provider.state.max_limit, provider.state.link_paging = 2, False


def short_lived_tokens(provider: Provider) -> None:
    provider.state.token_lifetime, provider.state.delay_seconds = 2.0, 0.3


def basic_client_authentication_only(provider: Provider) -> None:
    provider.state.client_auth = "basic"


@pytest.mark.parametrize("habit", [cap_pages_without_link, short_lived_tokens, basic_client_authentication_only])
def test_a_provider_with_real_habits_gives_the_replica_the_csv_export_gives(
    provider: Provider, instance: Settings, habit: object
) -> None:
    habit(provider)  # type: ignore[operator]
    csv = ConnectorSettings("rostering", "oneroster-csv", "rostering", {"path": str(CSV_FIXTURE), "guardian_portal_access": True})
    assert sync(instance, csv).status == "succeeded"
    from_csv = replica(instance)
    assert ("students", "U-CAL") in {(table, source_id) for table, source_id, _ in from_csv}

    result = sync(instance, rest_entry(provider), secret=provider.state.secret)  # a full run over the same replica: anything different shows
    assert result.status == "succeeded"
    assert replica(instance) == from_csv
    assert all((c.inserted, c.updated, c.deleted) == (0, 0, 0) for c in result.counts.values()), result.counts
