"""The server's TLS context from `--certfile`/`--keyfile`, with every way they can be wrong said in words."""

from __future__ import annotations

import ssl
from pathlib import Path


class TLSConfigError(Exception):
    """The certificate or key cannot be used; the message is one sentence saying which and why."""


class _EncryptedKey(Exception):
    pass


def server_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server-side context serving the PEM certificate chain in `certfile` with the key in `keyfile`."""
    _check_pem(certfile, "--certfile", "CERTIFICATE-----", "a PEM certificate")
    _check_pem(keyfile, "--keyfile", "PRIVATE KEY-----", "a PEM private key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # OpenSSL would ask on the terminal for an encrypted key's passphrase; the callback refuses.
        context.load_cert_chain(certfile, keyfile, password=_refuse_passphrase)
    except _EncryptedKey:
        raise TLSConfigError(
            f"--keyfile {keyfile} is encrypted; give an unencrypted key "
            f"(openssl pkey -in {keyfile} -out plain-key.pem)."
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSConfigError(
                f"--keyfile {keyfile} is not the private key of the certificate in --certfile {certfile}."
            ) from None
        raise TLSConfigError(
            f"--certfile {certfile} and --keyfile {keyfile} could not be loaded as a PEM certificate chain "
            f"and its private key ({exc.reason or exc})."
        ) from None
    except OSError as exc:  # the files changed between the check and the load
        raise TLSConfigError(f"cannot read the certificate or key: {exc}.") from None
    return context


def _check_pem(path: Path, flag: str, marker: str, kind: str) -> None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise TLSConfigError(f"cannot read {flag} {path}: {exc.strerror or exc}.") from None
    if marker not in text:
        raise TLSConfigError(f"{flag} {path} does not hold {kind}.")


def _refuse_passphrase() -> bytes:
    raise _EncryptedKey
