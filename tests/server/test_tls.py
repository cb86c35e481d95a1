"""The server's TLS set-up: a matching certificate and key serve wss://; every way they can be wrong is one
sentence naming the file (real PEM files made by openssl)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.exceptions import InvalidMessage

from pianorhythm.server.tls import TLSConfigError, server_context
from tests.fixtures.server import TestClient, start_test_server
from tests.fixtures.tls import SelfSigned, make_self_signed


def test_a_matching_pair_loads(tls_cert: SelfSigned) -> None:
    assert isinstance(server_context(tls_cert.cert, tls_cert.key), ssl.SSLContext)


def _refusal(cert: Path, key: Path) -> str:
    with pytest.raises(TLSConfigError) as caught:
        server_context(cert, key)
    return str(caught.value)


def test_a_missing_file_is_named(tls_cert: SelfSigned, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    assert _refusal(missing, tls_cert.key) == f"cannot read --certfile {missing}: No such file or directory."
    assert _refusal(tls_cert.cert, missing) == f"cannot read --keyfile {missing}: No such file or directory."


def test_files_of_the_wrong_kind_are_named(tls_cert: SelfSigned, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert _refusal(junk, tls_cert.key) == f"--certfile {junk} does not hold a PEM certificate."
    assert (
        _refusal(tls_cert.cert, tls_cert.cert)
        == f"--keyfile {tls_cert.cert} does not hold a PEM private key."
    )


def test_a_key_of_another_certificate_is_refused(tls_cert: SelfSigned, tmp_path: Path) -> None:
    other = make_self_signed(tmp_path, "other")
    assert _refusal(tls_cert.cert, other.key) == (
        f"--keyfile {other.key} is not the private key of the certificate in --certfile {tls_cert.cert}."
    )


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(
    tls_cert: SelfSigned, tmp_path: Path
) -> None:
    encrypted = tmp_path / "encrypted-key.pem"
    command = [
        "openssl",
        "pkey",
        "-in",
        str(tls_cert.key),
        "-aes128",
        "-passout",
        "pass:x",
        "-out",
        str(encrypted),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    assert _refusal(tls_cert.cert, encrypted).startswith(
        f"--keyfile {encrypted} is encrypted; give an unencrypted"
    )


async def test_one_of_the_pair_alone_is_refused(tls_cert: SelfSigned, tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match="--certfile and --keyfile go together"):
        await start_test_server(tmp_path / "server.db", certfile=tls_cert.cert)


async def test_an_in_process_server_serves_wss(tls_cert: SelfSigned, tmp_path: Path) -> None:
    server = await start_test_server(tmp_path / "server.db", certfile=tls_cert.cert, keyfile=tls_cert.key)
    try:
        assert server.url == f"wss://127.0.0.1:{server.port}/api/websocket"
        client = await TestClient.connect(server.url, ssl=tls_cert.client_context())
        welcome = await client.hello("ann")
        assert welcome.user.name == "ann"
        await client.close()
        with pytest.raises(InvalidMessage):  # plain ws:// gets no WebSocket from a TLS port
            await TestClient.connect(server.url.replace("wss://", "ws://"), open_timeout=5)
    finally:
        await server.close()
