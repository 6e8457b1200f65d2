"""Who is rating: reviewers sign in before the review page writes anything.

Two mechanisms, documented in docs/review.md:

- **An identity provider** (OIDC): Streamlit's built-in ``st.login()``, configured in
  ``.streamlit/secrets.toml`` (``[auth]``); the reviewer is the provider's e-mail or name.
- **A local users file** (``review.users_file`` in ``params.yaml``, default
  ``data/review/users.json``, never committed): user names with salted scrypt hashes of their
  passwords, managed with ``dermeval review add-user``. Passwords are never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from dermeval.formats.common import atomic_open

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
MIN_PASSWORD = 8


class AuthError(ValueError):
    pass


def _hash(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT).hex()


def load_users(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AuthError(f"cannot read the users file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise AuthError(f"the users file {path} must hold an object of users")
    return data


def add_user(path: Path, name: str, password: str) -> None:
    """Add or replace ``name`` with a salted scrypt hash of ``password`` (the file is created 0600)."""
    if not NAME.match(name):
        raise AuthError("user name: 1-100 letters, digits, '.', '_', '@' or '-'")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password: at least {MIN_PASSWORD} characters")
    users = load_users(path)
    salt = secrets.token_bytes(16)
    users[name] = {"salt": salt.hex(), "scrypt": _hash(password, salt)}
    with atomic_open(path) as fh:
        fh.write(json.dumps(users, indent=2, sort_keys=True) + "\n")
    os.chmod(path, 0o600)


def verify(path: Path, name: str, password: str) -> bool:
    """True when ``name`` is in the users file and ``password`` matches (constant-time compare)."""
    user = load_users(path).get(name)
    if not user:
        _hash(password, b"0" * 16)  # the same work for an unknown name: no timing hint
        return False
    return hmac.compare_digest(_hash(password, bytes.fromhex(user["salt"])), user["scrypt"])
