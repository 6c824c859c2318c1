"""A small Docker token server (the "realm") for the test bed's token-auth registry.

This module does I/O: run as a program it listens on 127.0.0.1 and serves HTTP until it is
terminated. It implements the token protocol of
https://distribution.github.io/distribution/spec/auth/token/ as far as registry clients
use it::

    GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]
        Authorization: Basic ...   (optional: without it the token carries no access)

and answers ``{"token", "access_token", "expires_in", "issued_at"}``. A wrong password is
401. Tokens are RS256 JWTs whose header carries the signing certificate in ``x5c``, which
is what Distribution 2.8.2 verifies against its ``rootcertbundle``. They are signed with the
standard library alone (RSASSA-PKCS1-v1_5 over SHA-256 with Python integers), so the bed
needs no crypto package.

Admin endpoints for tests (loopback only, no auth, never use this outside a test bed):

- ``GET /_stats``: counters (``issued``, ``anonymous``, ``denied``, ``by_user``) and the
  last tokens' subjects and granted access (never the tokens themselves);
- ``GET /_config`` and ``POST /_config`` with JSON ``{"expires_in": 2, "grant": ["pull"]}``:
  token lifetime in seconds, and a cap on the actions any token may grant (``null``: none);
- ``POST /_reset``: counters and config back to their start values.

Distribution adds 60 s of leeway to ``exp`` (``Leeway`` in registry/auth/token/token.go), so
a token stamped ``exp = iat + 2`` keeps working for a minute. To make ``expires_in`` the time
after which the registry really answers 401, the issuer stamps ``exp`` that leeway earlier
(``--registry-leeway``, 60 by default; 0 gives textbook claims).

Run by ``tests/testbed.py``::

    python tests/tokenissuer.py --config DIR/issuer.json --ready-file DIR/port

``issuer.json`` holds ``service``, ``issuer``, ``key`` and ``cert`` (PEM paths), ``users``
(``{name: password}``, which is why it is a file and not argv: argv is visible to every
process) and optionally ``expires_in`` and ``registry_leeway``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import secrets
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from httpbase import MAX_REQUEST_BODY, Handler, LoopbackServer

#: Actions a token may carry; Distribution checks for the exact action or ``*``.
KNOWN_ACTIONS = ("pull", "push", "delete", "*")
#: Distribution 2.8.2's ``token.Leeway``: it accepts a token up to this long after ``exp``.
DISTRIBUTION_LEEWAY_S = 60
DEFAULT_EXPIRES_IN_S = 300
#: Keep the stats answer small however long the issuer runs.
RECENT_TOKENS = 200
#: A scope is ``type[(class)]:name:actions``. Repository names never contain ``:`` (a
#: registry's host:port is not part of the name), so the three parts split cleanly.
_SCOPE_RE = re.compile(
    r"^(?P<type>[a-z0-9]+)(?:\((?P<cls>[a-z0-9]+)\))?:(?P<name>[^:]+):(?P<actions>.*)$"
)

# DigestInfo prefix of SHA-256 for EMSA-PKCS1-v1_5 (RFC 8017, section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


# --------------------------------------------------------------------------- RSA and JWT


@dataclass(frozen=True)
class RsaKey:
    """The numbers of an RSA private key, enough for CRT signing."""

    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @property
    def size_bytes(self) -> int:
        return (self.n.bit_length() + 7) // 8


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, value, position after it)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, data[pos : pos + length], pos + length


def _der_sequence(data: bytes) -> list[tuple[int, bytes]]:
    tag, body, _ = _der_read(data, 0)
    if tag != 0x30:
        raise ValueError("expected a DER SEQUENCE")
    items = []
    pos = 0
    while pos < len(body):
        item_tag, value, pos = _der_read(body, pos)
        items.append((item_tag, value))
    return items


def _pem_body(text: str, label: str) -> bytes:
    match = re.search(rf"-----BEGIN {label}-----(.+?)-----END {label}-----", text, re.S)
    if match is None:
        raise ValueError(f"no PEM block {label}")
    return base64.b64decode("".join(match.group(1).split()))


def load_rsa_key(pem: str) -> RsaKey:
    """Parse a PKCS#8 (``BEGIN PRIVATE KEY``, what openssl 3 writes) or PKCS#1
    (``BEGIN RSA PRIVATE KEY``) unencrypted RSA key."""
    if "BEGIN RSA PRIVATE KEY" in pem:
        der = _pem_body(pem, "RSA PRIVATE KEY")
    else:
        # PrivateKeyInfo: version, AlgorithmIdentifier, OCTET STRING(RSAPrivateKey).
        outer = _der_sequence(_pem_body(pem, "PRIVATE KEY"))
        if (
            len(outer) < 3
            or outer[2][0] != 0x04
            or b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01" not in outer[1][1]
        ):
            raise ValueError("not an RSA PKCS#8 key")
        der = outer[2][1]
    fields = [int.from_bytes(value, "big") for tag, value in _der_sequence(der) if tag == 0x02]
    if len(fields) < 9:
        raise ValueError("truncated RSAPrivateKey")
    _version, n, e, d, p, q, dp, dq, qinv = fields[:9]
    return RsaKey(n=n, e=e, d=d, p=p, q=q, dp=dp, dq=dq, qinv=qinv)


def rs256_sign(key: RsaKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (JWS ``RS256``), the same bytes ``openssl dgst
    -sha256 -sign`` writes: the padding is deterministic."""
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    k = key.size_bytes
    encoded = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
    m = int.from_bytes(encoded, "big")
    # Chinese remainder theorem: ~4x faster than pow(m, d, n) and the textbook way to sign.
    s1 = pow(m, key.dp, key.p)
    s2 = pow(m, key.dq, key.q)
    h = (key.qinv * (s1 - s2)) % key.p
    s = s2 + h * key.q
    # A wrong key parse or a CRT fault would give a bad signature the registry rejects with
    # a bare 401; checking here turns that into a clear error in the issuer's log.
    if pow(s, key.e, key.n) != m:
        raise RuntimeError("RSA signature self-check failed")
    return s.to_bytes(k, "big")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(key: RsaKey, cert_der: bytes, claims: dict[str, Any]) -> str:
    # x5c uses standard base64 with padding (RFC 7515, section 4.1.6), not base64url.
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(cert_der).decode()]}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return f"{signing_input}.{b64url(rs256_sign(key, signing_input.encode()))}"


# --------------------------------------------------------------------------- scopes


def parse_scopes(values: list[str]) -> list[dict[str, Any]]:
    """``scope`` query values (repeatable, each possibly space-separated) to requested
    access entries; malformed scopes are ignored, as token servers do."""
    wanted: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for scope in value.split():
            match = _SCOPE_RE.match(scope)
            if match is None:
                continue
            actions = wanted.setdefault((match["type"], match["name"]), [])
            for action in match["actions"].split(","):
                if action and action not in actions:
                    actions.append(action)
    return [
        {"type": kind, "name": name, "actions": actions} for (kind, name), actions in wanted.items()
    ]


def grant(requested: list[dict[str, Any]], allowed: list[str] | None) -> list[dict[str, Any]]:
    """The access a valid user gets: what was asked for, limited to known actions and to
    ``allowed`` when that is set. Entries left without actions are dropped."""
    granted = []
    for entry in requested:
        actions = [a for a in entry["actions"] if a in KNOWN_ACTIONS]
        if allowed is not None:
            actions = [a for a in actions if a in allowed]
        if actions:
            granted.append({**entry, "actions": actions})
    return granted


# --------------------------------------------------------------------------- the server


@dataclass
class IssuerState:
    service: str
    issuer: str
    key: RsaKey
    cert_der: bytes
    users: dict[str, str]
    expires_in: int = DEFAULT_EXPIRES_IN_S
    registry_leeway: int = DISTRIBUTION_LEEWAY_S
    allowed: list[str] | None = None
    issued: int = 0
    anonymous: int = 0
    denied: int = 0
    by_user: collections.Counter[str] = field(default_factory=collections.Counter)
    recent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_TOKENS)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)
    defaults: dict[str, Any] = field(default_factory=dict)

    def snapshot_config(self) -> dict[str, Any]:
        return {
            "expires_in": self.expires_in,
            "grant": self.allowed,
            "registry_leeway": self.registry_leeway,
            "service": self.service,
            "issuer": self.issuer,
        }


class _BadCredentials(Exception):
    """Credentials were sent and are wrong: 401, unlike no credentials (anonymous)."""


class TokenHandler(Handler):
    server: TokenServer
    server_version = "imgtag-testbed-tokenissuer/1"
    # An idle keep-alive client must not hold a handler thread for ever.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds path and scopes only; credentials are in a header.
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send(status, {"Content-Type": "application/json", **(headers or {})}, data)

    def _read_body(self) -> bytes:
        if int(self.headers.get("Content-Length") or 0) > MAX_REQUEST_BODY:
            raise ValueError("body too large")
        return self.read_body()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        state = self.server.state
        if url.path == "/token":
            self._token(urllib.parse.parse_qs(url.query))
        elif url.path == "/_stats":
            with state.lock:
                stats = {
                    "issued": state.issued,
                    "anonymous": state.anonymous,
                    "denied": state.denied,
                    "by_user": dict(state.by_user),
                    "recent": list(state.recent),
                    "config": state.snapshot_config(),
                }
            self._send_json(200, stats)
        elif url.path == "/_config":
            with state.lock:
                self._send_json(200, state.snapshot_config())
        elif url.path == "/healthz":
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = json.loads(self._read_body() or b"{}")
        except ValueError as exc:
            self._send_json(400, {"error": f"bad JSON: {exc}"})
            return
        if path == "/_config":
            error = _apply_config(state, body)
            if error:
                self._send_json(400, {"error": error})
                return
            with state.lock:
                self._send_json(200, state.snapshot_config())
        elif path == "/_reset":
            with state.lock:
                state.issued = state.anonymous = state.denied = 0
                state.by_user.clear()
                state.recent.clear()
            _apply_config(state, state.defaults)
            with state.lock:
                self._send_json(200, state.snapshot_config())
        else:
            # The OAuth2 POST form of the realm (spec/auth/oauth.md) is not implemented:
            # clients fall back to GET when they get no refresh token, which we never issue.
            self._send_json(404, {"error": "not found"})

    def _token(self, query: dict[str, list[str]]) -> None:
        state = self.server.state
        service = (query.get("service") or [""])[0]
        if service != state.service:
            self._send_json(
                400, {"errors": [{"code": "invalid_request", "message": "unknown service"}]}
            )
            return
        try:
            user = self._authenticate()
        except _BadCredentials:
            with state.lock:
                state.denied += 1
            self._send_json(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                {"WWW-Authenticate": 'Basic realm="imgtag-testbed-token"'},
            )
            return
        requested = parse_scopes(query.get("scope", []))
        now_s = time.time()
        now = int(now_s)
        with state.lock:
            expires_in = state.expires_in
            leeway = state.registry_leeway
            # Anonymous: a valid token without access, as Docker Hub gives for private
            # repositories; the registry then answers 401 insufficient_scope.
            access = grant(requested, state.allowed) if user else []
        claims = {
            "iss": state.issuer,
            "sub": user or "",
            "aud": state.service,  # a string: Distribution 2.8.2's ClaimSet has `aud string`
            # Rounded up, so that the registry accepts the token for at least expires_in
            # seconds (and less than one more): a client that trusts expires_in never
            # meets a 401 before it expected one.
            "exp": math.ceil(now_s) + expires_in - leeway,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = make_jwt(state.key, state.cert_der, claims)
        issued_at = dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z")
        with state.lock:
            state.issued += 1
            if user:
                state.by_user[user] += 1
            else:
                state.anonymous += 1
            state.recent.append(
                {"sub": claims["sub"], "access": access, "iat": now, "expires_in": expires_in}
            )
        self._send_json(
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": expires_in,
                "issued_at": issued_at,
            },
            {"Cache-Control": "no-store"},
        )

    def _authenticate(self) -> str | None:
        """The user name, or None when anonymous; raises _BadCredentials."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise _BadCredentials
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise _BadCredentials from None
        expected = self.server.state.users.get(user)
        # Constant time, as a real server must; it costs nothing here.
        if (
            not sep
            or expected is None
            or not hmac.compare_digest(password.encode(), expected.encode())
        ):
            raise _BadCredentials
        return user


def _apply_config(state: IssuerState, body: Any) -> str | None:
    if not isinstance(body, dict):
        return "config must be a JSON object"
    unknown = set(body) - {"expires_in", "grant", "registry_leeway"}
    if unknown:
        return f"unknown keys: {sorted(unknown)}"
    with state.lock:
        if "expires_in" in body:
            value = body["expires_in"]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 86400:
                return "expires_in must be an integer number of seconds in 1..86400"
            state.expires_in = value
        if "registry_leeway" in body:
            value = body["registry_leeway"]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3600:
                return "registry_leeway must be an integer in 0..3600"
            state.registry_leeway = value
        if "grant" in body:
            value = body["grant"]
            if value is not None and (
                not isinstance(value, list) or any(a not in KNOWN_ACTIONS for a in value)
            ):
                return f"grant must be null or a list of {list(KNOWN_ACTIONS)}"
            state.allowed = list(value) if value is not None else None
    return None


class TokenServer(LoopbackServer):
    def __init__(self, port: int, state: IssuerState) -> None:
        super().__init__(TokenHandler, port=port)
        self.state = state


def load_state(config_file: Path) -> IssuerState:
    config = json.loads(config_file.read_text())
    cert_pem = Path(config["cert"]).read_text()
    state = IssuerState(
        service=str(config["service"]),
        issuer=str(config["issuer"]),
        key=load_rsa_key(Path(config["key"]).read_text()),
        cert_der=_pem_body(cert_pem, "CERTIFICATE"),
        users={str(k): str(v) for k, v in config["users"].items()},
    )
    defaults = {
        "expires_in": int(config.get("expires_in", DEFAULT_EXPIRES_IN_S)),
        "registry_leeway": int(config.get("registry_leeway", DISTRIBUTION_LEEWAY_S)),
        "grant": config.get("grant"),
    }
    error = _apply_config(state, defaults)
    if error:
        raise ValueError(f"{config_file}: {error}")
    state.defaults = defaults
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, required=True, help="issuer.json (see above)")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    parser.add_argument("--ready-file", type=Path, help="write the port here once listening")
    parser.add_argument("--expires-in", type=int, help="token lifetime in seconds")
    parser.add_argument("--registry-leeway", type=int, help="seconds to take off exp (60)")
    args = parser.parse_args(argv)

    state = load_state(args.config)
    overrides = {
        key: value
        for key, value in (
            ("expires_in", args.expires_in),
            ("registry_leeway", args.registry_leeway),
        )
        if value is not None
    }
    if overrides:
        error = _apply_config(state, overrides)
        if error:
            parser.error(error)
        state.defaults.update(overrides)
    # Only loopback: this server hands out tokens to anyone who knows the test password.
    server = TokenServer(args.port, state)
    port = server.server_address[1]
    if args.ready_file is not None:
        # Written atomically, so that the bed never reads half a port number.
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(args.ready_file)
    sys.stderr.write(f"token issuer listening on http://127.0.0.1:{port}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    # SIGTERM (what the bed sends) ends the process at once; nothing here needs cleanup.
    sys.exit(main())
