"""The oneroster-rest connector against a real loopback provider."""

from __future__ import annotations

import dataclasses
import re
import datetime as dt
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.replica.records import Record, Reject
from gateway.security.keys import write_secret_file
from gateway.settings import ConnectorSettings, Settings

from connectors.oneroster_csv import Bundle
from connectors.oneroster_reader import OneRosterReader
from connectors.oneroster_rest import ProviderError, from_settings

from .provider import Provider

CSV_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster" / "district-1p1"


def rest_connector(provider: Provider, settings: Settings, tmp_path: Path, **options: object) -> OneRosterReader:
    write_secret_file(settings.keys_dir / "source-rostering", provider.state.secret)
    entry = ConnectorSettings("rostering", "oneroster-rest", "rostering", {
        "base_url": provider.base_url, "version": "1.1", "auth": provider.state.auth, "client_id": provider.state.client_id,
        "token_url": provider.token_url, "guardian_portal_access": True, "retries": 2, **options})
    return from_settings(entry, settings)


def everything(connector: OneRosterReader) -> dict[str, list[object]]:
    result: dict[str, list[object]] = {}
    for spec in connector.streams:
        items = list(connector.iter_records(spec.name, None))
        records = sorted((i for i in items if isinstance(i, Record)), key=lambda r: r.source_id)
        reasons = sorted(i.reason for i in items if isinstance(i, Reject))
        result[spec.name] = [*records, *reasons]
    return result


def test_the_same_district_through_csv_and_rest_gives_identical_records(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    from_csv = everything(OneRosterReader("rostering", "rostering", Bundle(CSV_FIXTURE), True))
    from_rest = everything(rest_connector(provider, instance, tmp_path))
    assert set(from_rest) == set(from_csv)
    for stream in from_csv:
        assert from_rest[stream] == from_csv[stream], stream
    assert len(from_rest["students"]) == 3 and len(from_rest["student_guardians"]) == 5  # 4 links + the aide's reject


def test_only_get_is_sent_apart_from_the_token_request(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    everything(rest_connector(provider, instance, tmp_path))
    methods = [(method, path) for method, path, _ in provider.state.requests if method != "GET"]
    assert methods == [("POST", "/oauth/token")]


def test_oauth1_signed_requests_are_accepted(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    provider.state.auth = "oauth1"
    students = everything(rest_connector(provider, instance, tmp_path))["students"]
    assert [s.source_id for s in students] == ["U-ANA", "U-BEN", "U-CAL"]  # type: ignore[attr-defined]
    assert all(method == "GET" for method, _, _ in provider.state.requests)


@pytest.mark.parametrize("link_paging", [False, True])
def test_pages_are_followed_by_offset_or_link_header(provider: Provider, instance: Settings, tmp_path: Path, link_paging: bool) -> None:
    provider.state.link_paging = link_paging
    connector = rest_connector(provider, instance, tmp_path, page_size=2)
    users = [i for i in connector.source.rows("users")]  # asked for sorted by sourcedId
    assert [row["sourcedid"] for _, row in users] == ["A-AIDE", "P-EMEKA", "P-ROSA", "R-IFE", "T-KIM", "T-LEE", "U-ANA", "U-BEN", "U-CAL"]
    offsets = [q.get("offset", ["?"])[0] for m, p, q in provider.state.requests if p.endswith("/users")]
    assert offsets == ["0", "2", "4", "6", "8"]


def test_a_delta_asks_with_a_closed_bound(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    connector = rest_connector(provider, instance, tmp_path)
    since = dt.datetime(2026, 11, 10, 16, tzinfo=dt.timezone.utc)  # exactly R-1's dateLastModified
    scores = [i.source_id for i in connector.iter_records("scores", since) if isinstance(i, Record)]
    assert scores == ["R-1", "R-2", "R-3"]
    (query,) = [q for m, p, q in provider.state.requests if p.endswith("/results")]
    assert query["filter"] == ["dateLastModified>='2026-11-10T16:00:00.000Z'"]


def test_429_and_503_are_retried_honouring_retry_after(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    provider.state.failures["orgs"] = [429, 503]
    provider.state.retry_after = "0"
    schools = [i for i in rest_connector(provider, instance, tmp_path).iter_records("schools", None) if isinstance(i, Record)]
    assert len(schools) == 2
    assert len([p for _, p, _ in provider.state.requests if p.endswith("/orgs")]) == 3


@pytest.mark.parametrize(("status", "message"), [
    (500, "still failing after retries"),
    (403, "not allowed to read this (403)"),
    (404, "not found (404)"),
])
def test_errors_are_clear(provider: Provider, instance: Settings, tmp_path: Path, status: int, message: str) -> None:
    provider.state.always_fail["orgs"] = status
    with pytest.raises(ProviderError, match=re.escape(message)) as caught:
        list(rest_connector(provider, instance, tmp_path).iter_records("schools", None))
    assert "\n" not in str(caught.value) and provider.state.secret not in str(caught.value)


def test_a_page_that_is_not_json_is_a_clear_error(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    provider.state.malformed.add("classes")
    with pytest.raises(ProviderError, match="the answer is not JSON"):
        list(rest_connector(provider, instance, tmp_path).iter_records("sections", None))


def test_a_wrong_secret_is_refused_at_the_token_request(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    provider.state.secret = "the-real-one"
    write_secret_file(instance.keys_dir / "source-rostering", "a-wrong-one")
    entry = ConnectorSettings("rostering", "oneroster-rest", "rostering", {
        "base_url": provider.base_url, "version": "1.1", "auth": "oauth2", "client_id": provider.state.client_id,
        "token_url": provider.token_url, "guardian_portal_access": True})
    with pytest.raises(ProviderError, match="cannot get a token") as caught:
        from_settings(entry, instance)
    assert "a-wrong-one" not in str(caught.value)
    assert f"POST {provider.token_url} (the OAuth 2 token request): cannot get a token: answered 401 invalid_client" in str(caught.value)
    assert "check client_id, the client secret, and client_auth" in str(caught.value)


def test_a_secret_in_the_config_file_is_refused(instance: Settings) -> None:
    entry = ConnectorSettings("rostering", "oneroster-rest", "rostering", {"base_url": "http://x", "client_secret": "s"})
    with pytest.raises(ConfigError, match="GATEWAY_SECRET_SOURCE_ROSTERING"):
        from_settings(entry, instance)


def test_a_provider_failing_mid_run_leaves_the_replica_unchanged(provider: Provider, instance: Settings, tmp_path: Path) -> None:
    from connectors import registry
    from sync.engine import run_sync

    write_secret_file(instance.keys_dir / "source-rostering", provider.state.secret)
    entry = ConnectorSettings("rostering", "oneroster-rest", "rostering", {
        "base_url": provider.base_url, "version": "1.1", "auth": "oauth2", "client_id": provider.state.client_id,
        "token_url": provider.token_url, "guardian_portal_access": True, "retries": 1})
    settings = dataclasses.replace(instance, connectors=(entry,),
                                   sync=dataclasses.replace(instance.sync, retry_backoff_seconds=0.01))
    first = run_sync(settings, registry.build(entry, settings), "full")
    assert first.counts["students"].inserted == 3
    provider.state.always_fail["results"] = 500  # the last stream: everything before it was already applied
    with pytest.raises(ProviderError):
        run_sync(settings, registry.build(entry, settings), "full")
    from tests.sync.conftest import replica_state
    from web import create_app

    assert len(replica_state(settings)["scores"]) == 3
    assert create_app(settings).test_client().get("/healthz").status_code == 200  # the portal still serves


def test_a_1p2_provider_is_read_from_its_rostering_service_with_roles_inside_users(
    provider: Provider, instance: Settings, tmp_path: Path
) -> None:
    connector = rest_connector(provider, instance, tmp_path, version="1.2", gradebook=False)
    records = everything(connector)
    (lia,) = records["students"]
    assert (lia.source_id, lia.preferred_name, lia.school_source_id, lia.birth_date) == (  # type: ignore[attr-defined]
        "U-LIA", "Li", "S9", dt.date(2013, 5, 2))
    (link,) = records["student_guardians"]
    assert (link.source_id, link.relationship) == ("U-LIA:P-JUN", "parent")  # type: ignore[attr-defined]
    (membership,) = records["enrollments"]
    assert (membership.source_id, membership.entry_date) == ("U-LIA@S9", dt.date(2026, 8, 25))  # type: ignore[attr-defined]
    paths = {path for _, path, _ in provider.state.requests}
    assert "/ims/oneroster/rostering/v1p2/users" in paths and not any("v1p1" in p for p in paths)
    assert "Secret-Lia" not in repr(records)
