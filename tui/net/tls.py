"""TLS for the client: certificates are verified against the system store (or $SSL_CERT_FILE) unless
`--insecure` says not to. `client_context` is what the session connects with (None for ws://),
`insecure_warning` the line the user sees for --insecure, `certificate_failure` why the session gave up.
"""

from __future__ import annotations

import ssl


def is_secure(url: str) -> bool:
    return url.lower().startswith("wss://")


def client_context(url: str, insecure: bool) -> ssl.SSLContext | None:
    """The context for connecting to `url`: verifying (the system store, or $SSL_CERT_FILE), or not at all."""
    if not is_secure(url):
        return None
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def insecure_warning(url: str, insecure: bool) -> str | None:
    """What to tell the user about `--insecure` for this URL (None without it)."""
    if not insecure:
        return None
    if not is_secure(url):
        return f"--insecure changes nothing for {url}: ws:// is not encrypted at all."
    return (
        "--insecure: the server's certificate is not checked, so anyone on the way could read and change "
        "what you send, your resume token included."
    )


def certificate_failure(exc: ssl.SSLCertVerificationError) -> str:
    reason = exc.verify_message or exc.reason or str(exc)
    return (
        f"The server's certificate could not be verified ({reason}); "
        "use --insecure only if you trust this server."
    )
