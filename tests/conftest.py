"""Shared fixtures. Real-service fixtures (relay server, jackd, redis) live in tests/fixtures/ as plugins."""

pytest_plugins: list[str] = [
    "tests.fixtures.jack",
    "tests.fixtures.proxy",
    "tests.fixtures.server",
    "tests.fixtures.tls",
]
