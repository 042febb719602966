"""`verify_signature`: X-Hub-Signature-256 over the raw webhook bytes (docs/graph-api.md,
"A webhook POST"; docs/simulator.md, "End-to-end scenarios" 11)."""

from __future__ import annotations

import hashlib
import hmac
import json

from pagecast.graph import appsecret_proof, verify_signature

SECRET = "webhook-app-secret"
EVENT = {
    "object": "page",
    "entry": [{"id": "1", "messaging": [{"message": {"text": "Grüße 👋 https://x.y/z"}}]}],
}


def _meta_bytes(obj: object) -> bytes:
    # What Meta sends: ASCII-only escapes and `\/` (docs/simulator.md, "Webhooks").
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def _sign(body: bytes, algorithm: str = "sha256") -> str:
    digest = hmac.new(SECRET.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def test_valid_signature_over_raw_escaped_bytes() -> None:
    raw = _meta_bytes(EVENT)
    assert b"\\u00fc" in raw and b"\\/" in raw
    assert verify_signature(SECRET, raw, _sign(raw))


def test_reserialised_json_does_not_verify() -> None:
    raw = _meta_bytes(EVENT)
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert not verify_signature(SECRET, reserialised, _sign(raw))


def test_uppercase_hex_is_accepted() -> None:
    raw = _meta_bytes(EVENT)
    algorithm, digest = _sign(raw).split("=")
    assert verify_signature(SECRET, raw, f"{algorithm}={digest.upper()}")


def test_sha1_is_refused_even_when_correct() -> None:
    # docs/webhooks.md: only HMAC-SHA256 authenticates a webhook; a correct SHA-1 (the legacy
    # `X-Hub-Signature` value, or `sha1=` put into X-Hub-Signature-256) does not.
    raw = _meta_bytes(EVENT)
    assert not verify_signature(SECRET, raw, _sign(raw, "sha1"))
    assert not verify_signature(SECRET, raw, _sign(raw, "sha1").upper())


def test_rejections() -> None:
    raw = _meta_bytes(EVENT)
    good = _sign(raw)
    assert not verify_signature("other-secret", raw, good)
    assert not verify_signature(SECRET, raw + b" ", good)
    for header in (
        None,
        "",
        "sha256",
        "sha256=",
        "md5=" + good[7:],
        good[:-1],
        "sha256=zz" + good[9:],
        "sha256=\u00e9" + good[8:],
    ):
        assert not verify_signature(SECRET, raw, header)
    assert not verify_signature("", raw, good)


def test_appsecret_proof_matches_graph_recipe() -> None:
    expected = hmac.new(b"s3cret", b"TOKEN", hashlib.sha256).hexdigest()
    assert appsecret_proof("TOKEN", "s3cret") == expected
