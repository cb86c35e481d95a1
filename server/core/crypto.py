"""Hashing for resume tokens and room passwords (hashlib only; randomness is passed in).

Password hashing is deliberately slow, so the shell runs `hash_password` and `check_password` on a worker
thread (hashlib releases the GIL while it works), never on the event loop; the core only asks for it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

# scrypt's "interactive" parameters (RFC 7914 section 2; N=2^14, r=8, p=1): ~16 MiB and ~30-60 ms per hash.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
PENDING_PREFIX: Final = "pending$"  # a password being hashed: it locks the room and matches nothing


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored` (scrypt, or the PBKDF2 hashes of databases made before it)."""
    try:
        scheme, *fields = stored.split("$")
        if scheme == "scrypt":
            n, r, p, salt, digest = fields
            actual = hashlib.scrypt(
                password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), maxmem=2**26
            )
        elif scheme == "pbkdf2":
            iterations, salt, digest = fields
            actual = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def pending_hash(version: int) -> str:
    return f"{PENDING_PREFIX}{version}"
