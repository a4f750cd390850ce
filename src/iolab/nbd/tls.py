"""NBD TLS for `iolab serve`: the policy (off, on, require) and the x509 server context.

Certificates come either as a directory in the layout QEMU, nbdkit and libnbd use for x509 credentials
(`ca-cert.pem`, `server-cert.pem`, `server-key.pem`) or as separate files. Every problem with them is a
ValueError whose message names the file and what to do, so the command line reports it in one line.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

TLS_MODES = ("off", "on", "require")
# 1.2 is the version the NBD protocol requires; older ones are refused
MIN_VERSION = ssl.TLSVersion.TLSv1_2
HANDSHAKE_TIMEOUT = 30.0  # seconds for the TLS handshake after NBD_OPT_STARTTLS is acknowledged

DIR_CA = "ca-cert.pem"
DIR_CERT = "server-cert.pem"
DIR_KEY = "server-key.pem"


@dataclass(frozen=True)
class TLSConfig:
    """`mode` is "on" (TLS offered, plaintext allowed) or "require"; "off" is no TLSConfig at all."""

    mode: str
    context: ssl.SSLContext
    cert: str
    key: str
    ca: str | None = None  # set when client certificates are verified

    @property
    def required(self) -> bool:
        return self.mode == "require"

    def describe(self) -> dict[str, object]:
        return {"mode": self.mode, "cert": self.cert, "verify_peer": self.ca is not None}


def _read_pem(path: str, what: str, marker: str, block: str) -> None:
    """Fail with a clear message when `path` is missing, unreadable or holds no `marker` PEM block."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except IsADirectoryError:
        raise ValueError(f"TLS {what} {path}: is a directory, expected a PEM file") from None
    except OSError as exc:
        raise ValueError(f"TLS {what} {path}: {exc.strerror or exc}") from None
    if marker.encode() not in data:
        raise ValueError(f"TLS {what} {path}: no PEM {block} in the file")


def _encrypted_key(path: str) -> str:
    # Without a password callback OpenSSL would prompt on the terminal; a server must not.
    raise ValueError(f"TLS key {path}: the private key is encrypted; give an unencrypted key")


def server_context(cert: str, key: str, ca: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context with this certificate; with `ca`, clients must present a certificate
    signed by it."""
    _read_pem(cert, "certificate", "-----BEGIN CERTIFICATE-----", "certificate")
    _read_pem(key, "key", "PRIVATE KEY-----", "private key")
    if ca is not None:
        _read_pem(ca, "CA certificate", "-----BEGIN CERTIFICATE-----", "certificate")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSION
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # a client could make the server redo handshakes at will
    try:
        ctx.load_cert_chain(cert, key, password=lambda: _encrypted_key(key))
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        hint = " (the key does not belong to the certificate)" if "MISMATCH" in str(reason).upper() else ""
        raise ValueError(f"TLS certificate {cert} with key {key}: {reason}{hint}") from None
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise ValueError(f"TLS CA certificate {ca}: {exc.reason or exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def make_config(
    mode: str | None,
    certs_dir: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    ca: str | None = None,
    verify_peer: bool = False,
) -> TLSConfig | None:
    """The server's TLS settings from the command line options; None when TLS is off.

    With no mode, TLS is off unless certificates are given, and then required: certificates that are
    given but silently unused would leave a user believing the traffic is encrypted.
    """
    given = certs_dir is not None or cert is not None or key is not None or ca is not None or verify_peer
    if mode is None:
        mode = "require" if given else "off"
    if mode not in TLS_MODES:
        raise ValueError(f"--tls={mode}: expected one of {', '.join(TLS_MODES)}")
    if mode == "off":
        if given:
            raise ValueError("--tls=off with TLS certificate options: drop them, or use --tls=on or require")
        return None
    if certs_dir is not None:
        if cert is not None or key is not None or ca is not None:
            raise ValueError("--tls-certs DIR and --tls-cert/--tls-key/--tls-ca: give one or the other")
        if not os.path.isdir(certs_dir):
            why = "is not a directory" if os.path.exists(certs_dir) else "no such directory"
            raise ValueError(f"--tls-certs {certs_dir}: {why}")
        cert = os.path.join(certs_dir, DIR_CERT)
        key = os.path.join(certs_dir, DIR_KEY)
        if verify_peer:
            ca = os.path.join(certs_dir, DIR_CA)
    elif cert is None or key is None:
        raise ValueError(
            f"--tls={mode} needs certificates: --tls-certs DIR ({DIR_CERT}, {DIR_KEY}, and {DIR_CA} "
            "with --tls-verify-peer), or --tls-cert FILE and --tls-key FILE"
        )
    if verify_peer and ca is None:
        raise ValueError("--tls-verify-peer needs the CA that signs client certificates: --tls-ca FILE")
    if ca is not None and not verify_peer:
        raise ValueError("--tls-ca is the CA for client certificates; it needs --tls-verify-peer")
    cert, key = os.path.abspath(cert), os.path.abspath(key)
    ca = os.path.abspath(ca) if ca is not None else None
    return TLSConfig(mode, server_context(cert, key, ca), cert, key, ca)
