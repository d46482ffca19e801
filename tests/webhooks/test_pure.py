"""Signing, the SSRF classification and the retry schedule: pure functions, no services."""

from __future__ import annotations

import ipaddress
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.net.guard import forbidden_reason, parse_host_ip
from shared.net.networks import parse_networks
from shared.settings import Settings
from shared.webhooks import signing
from shared.webhooks.schedule import Verdict, decide, parse_retry_after
from shared.webhooks.secretbox import SecretBox, SecretBoxError
from tests.support.webhooks import spec_verify

# --- signing ---------------------------------------------------------------------------------------------------


def test_secret_format() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert 24 <= len(signing.secret_bytes(secret)) <= 64
    assert signing.generate_secret() != secret


def test_signature_matches_an_independent_implementation_of_the_spec() -> None:
    secret = signing.generate_secret()
    body = b'{"type":"order.completed","data":{"order":1}}'
    headers = signing.sign_headers([secret], "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", body)
    assert spec_verify(secret, headers, body)
    assert not spec_verify(secret, headers, body + b" ")
    assert not spec_verify(signing.generate_secret(), headers, body)


def test_known_vector_from_the_standard_webhooks_reference() -> None:
    # The example of the Standard Webhooks reference libraries' test suites.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_helper_accepts_rotation_and_refuses_tampering_and_stale_messages() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    body = b'{"a":1}'
    headers = signing.sign_headers([new, old], "evt-1", body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    signing.verify(new, headers, body)
    signing.verify(old, headers, body)
    assert spec_verify(old, headers, body)
    assert spec_verify(new, headers, body)
    with pytest.raises(signing.VerificationError):
        signing.verify(signing.generate_secret(), headers, body)
    with pytest.raises(signing.VerificationError):
        signing.verify(new, headers, b'{"a":2}')
    with pytest.raises(signing.VerificationError, match="timestamp"):
        signing.verify(new, headers, body, now=time.time() + 301)
    with pytest.raises(signing.VerificationError, match="missing"):
        signing.verify(new, {}, body)


def test_secret_box_round_trip_and_key_rotation() -> None:
    from cryptography.fernet import Fernet

    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    box1 = SecretBox(Settings(webhook_secret_key=k1))
    token = box1.encrypt("whsec_abc")
    assert "whsec_abc" not in token
    assert SecretBox(Settings(webhook_secret_key=f"{k2},{k1}")).decrypt(token) == "whsec_abc"
    with pytest.raises(SecretBoxError):
        SecretBox(Settings(webhook_secret_key=k2)).decrypt(token)
    with pytest.raises(SecretBoxError):
        SecretBox(Settings(webhook_secret_key="not-a-key"))


# --- SSRF classification ---------------------------------------------------------------------------------------

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.254", "cgnat"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("64:ff9b::7f00:1", "nat64"),
    ("2002:7f00:1::1", "6to4"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
    ("169.254.169.254", "cloud-metadata"),
    ("fd00:ec2::254", "cloud-metadata"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud-metadata"),
    ("::ffff:10.0.0.1", "private"),
]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN)
def test_every_non_public_class_is_refused(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "017700000001", "127.0.0.1.", "[::ffff:7f00:1]"],
)
def test_odd_ipv4_notations_are_read_as_the_address_they_denote(host: str) -> None:
    ip = parse_host_ip(host)
    assert ip is not None
    assert forbidden_reason(ip) == "loopback"


@pytest.mark.parametrize("host", ["example.com", "1e100.net", "0x7g.1", "256.1.1.1.1", "08.1.1.1"])
def test_hostnames_are_not_mistaken_for_addresses(host: str) -> None:
    assert parse_host_ip(host) is None


def test_allowed_networks_open_named_networks_but_never_metadata() -> None:
    allowed = parse_networks("127.0.0.2/32, 169.254.0.0/16")
    assert forbidden_reason(ipaddress.ip_address("127.0.0.2"), allowed) is None
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1"), allowed) == "loopback"
    assert forbidden_reason(ipaddress.ip_address("169.254.169.254"), allowed) == "cloud-metadata"


# --- retry schedule --------------------------------------------------------------------------------------------


def test_schedule_runs_its_course_with_jitter_bounds_then_fails() -> None:
    settings = Settings()
    schedule = settings.webhook_retry_schedule_s
    assert schedule == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    rng = random.Random(7)
    step = 0
    seen_low = seen_high = False
    for expected in schedule:
        delays = []
        for _ in range(200):
            d = decide(settings, step=step, status_code=500, rng=rng)
            assert d.verdict is Verdict.RETRY
            assert d.step == step + 1
            assert d.delay_s is not None
            delays.append(d.delay_s)
        assert all(expected * 0.8 <= x <= expected * 1.2 for x in delays)
        seen_low |= min(delays) < expected * 0.9
        seen_high |= max(delays) > expected * 1.1
        step += 1
    assert seen_low
    assert seen_high
    assert decide(settings, step=step, status_code=500).verdict is Verdict.FAILED
    assert decide(settings, step=step, status_code=None).verdict is Verdict.FAILED


def test_schedule_is_configurable() -> None:
    settings = Settings(webhook_retry_schedule_s=[0.1, 0.2], webhook_retry_jitter=0.0)
    assert decide(settings, step=0, status_code=None).delay_s == pytest.approx(0.1)
    assert decide(settings, step=1, status_code=502).delay_s == pytest.approx(0.2)
    assert decide(settings, step=2, status_code=502).verdict is Verdict.FAILED


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (200, "succeeded"),
        (204, "succeeded"),
        (299, "succeeded"),
        (301, "retry"),
        (302, "retry"),
        (307, "retry"),
        (400, "retry"),
        (410, "gone"),
        (500, "retry"),
        (None, "retry"),
    ],
)
def test_only_2xx_succeeds(code: int | None, verdict: str) -> None:
    assert decide(Settings(), step=0, status_code=code).verdict == verdict


def test_retry_after_is_honoured_for_429_and_503_within_bounds() -> None:
    settings = Settings(webhook_retry_after_min_s=2, webhook_retry_after_max_s=3600, webhook_retry_jitter=0)
    assert decide(settings, step=0, status_code=429, retry_after="120").delay_s == 120
    assert decide(settings, step=0, status_code=503, retry_after="0").delay_s == 2
    assert decide(settings, step=0, status_code=503, retry_after="999999").delay_s == 3600
    assert decide(settings, step=0, status_code=500, retry_after="120").delay_s == 5  # only 429/503
    assert decide(settings, step=0, status_code=429, retry_after="soon").delay_s == 5
    when = datetime.now(UTC) + timedelta(seconds=600)
    assert parse_retry_after(format_datetime(when, usegmt=True)) == pytest.approx(600, abs=2)
