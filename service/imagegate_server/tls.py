"""Server TLS and mTLS with certificate rotation, and the caller's certificate identity.

gRPC asks :meth:`ServerCertificates.fetch` for the certificate configuration on
every new TLS handshake (``grpc.dynamic_ssl_server_credentials``), so rotated files
are presented from the next connection on, without a restart; connections already
open keep their session. The fetcher runs on gRPC's handshake path, so it stays
O(1): at most every ``reload_s`` seconds it ``stat``s the files, and only when one
changed does it read and check them. A new set that does not load (a key that does
not match its certificate, half-written files) keeps the old one and logs one error
for that version of the files.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import grpc

from imagegate_server.errors import StartupError
from imagegate_server.settings import Settings

log = logging.getLogger(__name__)

_FileSignature = tuple[int, int, int, int] | None
_Signature = tuple[_FileSignature, ...]


class TlsFilesError(Exception):
    """The certificate files cannot be used; ``str()`` is one line without file content."""


class _Unsettled(Exception):
    """The files changed while being read: try again at the next check."""


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise _EncryptedKey


def _stat(path: Path) -> _FileSignature:
    try:
        stat = os.stat(path)  # follows symlinks (Kubernetes' ..data swap)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ServerCertificates:
    """The server's certificate chain and key, and optionally the client CA bundle.

    Construction reads and checks the files; it raises :class:`TlsFilesError`.
    """

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        client_ca_file: Path | None = None,
        *,
        reload_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.reload_s = reload_s
        self._clock = clock
        self._lock = threading.Lock()
        signature = self._signature()
        try:
            self._initial = self._read()
        except _Unsettled:
            raise TlsFilesError("the certificate files changed while being read") from None
        self._loaded = signature
        self._rejected: _Signature | None = None
        self._next_check = clock() + reload_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerCertificates | None:
        """The configured certificates, or None for a plaintext server.

        Raises :class:`StartupError` (one line) for an incomplete or unusable setup.
        """
        cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        if cert is None and key is None:
            if ca is not None:
                raise StartupError(
                    "IMAGEGATE_TLS_CLIENT_CA_FILE needs IMAGEGATE_TLS_CERT_FILE and "
                    "IMAGEGATE_TLS_KEY_FILE: client certificates are checked in a TLS handshake"
                )
            return None
        if cert is None or key is None:
            raise StartupError(
                "IMAGEGATE_TLS_CERT_FILE and IMAGEGATE_TLS_KEY_FILE go together: "
                "set both or neither"
            )
        try:
            return cls(cert, key, ca, reload_s=settings.tls_reload_s)
        except TlsFilesError as exc:
            raise StartupError(str(exc)) from None

    @property
    def requires_client_certificates(self) -> bool:
        return self.client_ca_file is not None

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``server.add_secure_port`` that follow file changes."""
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            # grpc-stubs says the fetcher returns a configuration; None ("keep the
            # current one") is what grpc documents and does.
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=self.requires_client_certificates,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake callback: a new configuration, or None to keep the current."""
        try:
            now = self._clock()
            if now < self._next_check or not self._lock.acquire(blocking=False):
                return None
            try:
                self._next_check = now + self.reload_s
                return self._reload_if_changed()
            finally:
                self._lock.release()
        except Exception:
            # An exception here would fail the handshake; keep serving the old files.
            log.exception("TLS certificate check failed")
            return None

    def _reload_if_changed(self) -> grpc.ServerCertificateConfiguration | None:
        signature = self._signature()
        if signature == self._loaded or signature == self._rejected:
            return None
        try:
            config = self._read()
        except _Unsettled:
            return None
        except TlsFilesError as exc:
            self._rejected = signature
            log.error(f"TLS certificates not reloaded, keeping the previous ones: {exc}")
            return None
        self._loaded, self._rejected = signature, None
        log.info("TLS certificates reloaded", extra={"tls_cert_file": str(self.cert_file)})
        return config

    def _signature(self) -> _Signature:
        files = (self.cert_file, self.key_file, self.client_ca_file)
        return tuple(_stat(path) for path in files if path is not None)

    def _read(self) -> grpc.ServerCertificateConfiguration:
        chain = _read_file("IMAGEGATE_TLS_CERT_FILE", self.cert_file)
        key = _read_file("IMAGEGATE_TLS_KEY_FILE", self.key_file)
        ca = None
        if self.client_ca_file is not None:
            ca = _read_file("IMAGEGATE_TLS_CLIENT_CA_FILE", self.client_ca_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # OpenSSL checks that the chain is PEM and that the key belongs to it.
            context.load_cert_chain(self.cert_file, self.key_file, password=_refuse_password)
        except _EncryptedKey:
            raise TlsFilesError(
                "IMAGEGATE_TLS_KEY_FILE: the key is encrypted; gRPC needs an unencrypted PEM key"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or "not usable"
            raise TlsFilesError(
                "IMAGEGATE_TLS_CERT_FILE and IMAGEGATE_TLS_KEY_FILE must be a PEM certificate "
                f"chain and its unencrypted private key ({reason})"
            ) from None
        if ca is not None:
            try:
                context.load_verify_locations(cadata=ca.decode("ascii"))
            except (ssl.SSLError, UnicodeDecodeError, ValueError):
                shown = _shown(self.client_ca_file)
                raise TlsFilesError(
                    f"IMAGEGATE_TLS_CLIENT_CA_FILE: no PEM certificate in {shown}"
                ) from None
        # The check above read the files again: make sure it saw the same bytes.
        if chain != _read_file("IMAGEGATE_TLS_CERT_FILE", self.cert_file) or key != _read_file(
            "IMAGEGATE_TLS_KEY_FILE", self.key_file
        ):
            raise _Unsettled
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)


def _shown(path: Path | None) -> str:
    return repr(str(path)[:200])


def _read_file(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFilesError(
            f"{setting}: cannot read {_shown(path)} ({exc.strerror or 'I/O error'})"
        ) from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (and, with a client CA, mTLS) credentials from the settings, or None for
    plaintext. Raises :class:`StartupError` with one line when the files are unusable."""
    certificates = ServerCertificates.from_settings(settings)
    return None if certificates is None else certificates.credentials()


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The caller's certificate identity from ``context.auth_context()``, or None.

    The SPIFFE ID when there is one (gRPC sets ``peer_spiffe_id`` only for a
    certificate with exactly one URI SAN, as the SPIFFE spec requires), else the
    first DNS SAN (``peer_dns``). The subject CN is never used: SANs are what a
    certificate authority vouches for.
    """
    spiffe_ids = list(auth_context.get("peer_spiffe_id", ()))
    if len(spiffe_ids) == 1:
        spiffe_id = _text(spiffe_ids[0])
        if spiffe_id is not None:
            return spiffe_id
    for name in auth_context.get("peer_dns", ()):
        dns_name = _text(name)
        if dns_name is not None:
            return dns_name
    return None


def _text(value: bytes) -> str | None:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text or None
