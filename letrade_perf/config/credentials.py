"""API credentials: loading (key file or environment variables), validation and signing.

Sources, first match wins:

1. ``key_file`` — YAML or JSON, mode 0600 (no group/other bits)::

       api_key: <64 letters/digits>
       secret: <HMAC secret>            # or: private_key_file: ed25519.pem (mode 0600; relative to the key file)
       env: testnet                     # optional: production | testnet | sim — refused for another env

2. environment variables — production: ``BINANCE_API_KEY`` with ``BINANCE_API_SECRET`` (HMAC) or
   ``BINANCE_PRIVATE_KEY_FILE`` (Ed25519); testnet: ``BINANCE_TESTNET_API_KEY`` with
   ``BINANCE_TESTNET_SECRET`` / ``BINANCE_TESTNET_PRIVATE_KEY_FILE`` first, then the production
   names; sim: ``BINANCE_SIM_API_KEY`` with ``BINANCE_SIM_API_SECRET`` / ``BINANCE_SIM_PRIVATE_KEY_FILE``
   (never the production variables: real keys are not sent to a simulator).
3. env ``sim`` only: the simulator's demo HMAC key.

Every secret loaded is registered for masking (:mod:`.secrets`).
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote

from ..binance import signing
from ..core import strict
from ..core.errors import ConfigError
from ..core.secrets import Secret, mask_api_key, register_secret
from .environments import Environment

KEY_TYPES = ("HMAC", "ED25519")
_API_KEY = re.compile(r"^[A-Za-z0-9]{64}$")
_KEY_FILE_KEYS = ("api_key", "secret", "private_key_file", "key_type", "env")


@dataclass(frozen=True)
class Credentials:
    """An API key and how to sign with it. For ``ED25519`` the secret is the private key PEM."""

    api_key: str
    """The key id sent as ``X-MBX-APIKEY`` (or ``apiKey`` on the WebSocket API)."""
    key_type: str
    """``HMAC`` or ``ED25519``."""
    secret: Secret
    """HMAC secret, or the Ed25519 private key PEM; prints as ``***``."""
    source: str = ""
    """Where the credentials came from (variable names or file path), for messages."""
    _private_key: Any = field(default=None, init=False, repr=False, compare=False)
    if TYPE_CHECKING:   # set in __post_init__ for HMAC only; declared for the type checker, not a runtime field
        _hmac_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.key_type not in KEY_TYPES:
            raise ConfigError(f"{self.source or 'credentials'}: key_type must be HMAC or ED25519, got {self.key_type!r}")
        if not isinstance(self.secret, Secret):
            object.__setattr__(self, "secret", Secret(self.secret))
        register_secret(self.secret)
        if self.key_type == "HMAC":   # the key bytes once, not per signature
            object.__setattr__(self, "_hmac_key", self.secret.reveal().encode())
        if self.key_type == "ED25519":
            try:
                object.__setattr__(self, "_private_key", signing.load_ed25519_private(self.secret.reveal()))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{self.source or 'credentials'}: not a usable unencrypted Ed25519 private key PEM "
                                  f"({type(e).__name__})") from None

    def sign(self, payload: str) -> str:
        """Signature of ``payload``: HMAC → lower-case hex; Ed25519 → base64 (not percent-encoded)."""
        if self.key_type == "HMAC":
            return signing.hmac_sha256(self._hmac_key, payload)
        return signing.ed25519_sign(self._private_key, payload)

    def signed_query(self, params: Mapping[str, object]) -> str:
        """``params`` URL-encoded in order, with ``&signature=`` (percent-encoded) appended."""
        payload = signing.encode_params(params)
        sig = self.sign(payload)
        return f"{payload}&signature={sig if self.key_type == 'HMAC' else quote(sig, safe='')}"

    def __repr__(self) -> str:
        return (f"Credentials(api_key='{mask_api_key(self.api_key)}', key_type='{self.key_type}', "
                f"secret=***, source='{self.source}')")

    __str__ = __repr__


def load_credentials(env: Environment, *, key_file: str | None = None,
                     environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for ``env`` from ``key_file``, else environment variables, else (sim) the demo key.

    Returns None when nothing is configured for testnet/production. Raises :class:`ConfigError`
    naming the file or variable for anything malformed or unsafe.
    """
    environ = os.environ if environ is None else environ
    if key_file:
        return _from_key_file(env, key_file)
    creds = _from_environ(env, environ)
    if creds is None and env.name == "sim":
        from ..sim.config import DEMO_API_KEY, DEMO_SECRET
        creds = Credentials(DEMO_API_KEY, "HMAC", Secret(DEMO_SECRET), "simulator demo key")
    return creds


def missing_credentials_hint(env_name: str) -> str:
    """What to set when no credentials are configured for ``env_name`` (for error messages)."""
    if env_name == "testnet":
        return ("set BINANCE_TESTNET_API_KEY and BINANCE_TESTNET_SECRET (Ed25519: BINANCE_TESTNET_PRIVATE_KEY_FILE), "
                "or pass --key-file FILE")
    if env_name == "sim":
        return "set BINANCE_SIM_API_KEY and BINANCE_SIM_API_SECRET, or pass --key-file FILE"
    return "set BINANCE_API_KEY and BINANCE_API_SECRET (Ed25519: BINANCE_PRIVATE_KEY_FILE), or pass --key-file FILE"


# -- environment variables ----------------------------------------------------------------------

def _from_environ(env: Environment, environ: Mapping[str, str]) -> Credentials | None:
    def get(name: str) -> str | None:
        value = environ.get(name)
        return value.strip() if value and value.strip() else None

    if env.name == "sim":
        names = [("BINANCE_SIM_API_KEY", "BINANCE_SIM_API_SECRET", "BINANCE_SIM_PRIVATE_KEY_FILE")]
    elif env.name == "testnet":
        names = [("BINANCE_TESTNET_API_KEY", "BINANCE_TESTNET_SECRET", "BINANCE_TESTNET_PRIVATE_KEY_FILE"),
                 ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE")]
    else:
        names = [("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE")]
    if env.name in ("testnet", "production"):
        prod_key, test_key = get("BINANCE_API_KEY"), get("BINANCE_TESTNET_API_KEY")
        prod_secret, test_secret = get("BINANCE_API_SECRET"), get("BINANCE_TESTNET_SECRET")
        if (prod_key and prod_key == test_key) or (prod_secret and prod_secret == test_secret):
            raise ConfigError("BINANCE_API_KEY/BINANCE_API_SECRET and BINANCE_TESTNET_API_KEY/BINANCE_TESTNET_SECRET "
                              "hold the same key: production keys with a testnet URL (or the reverse)? "
                              "Testnet keys come from testnet.binance.vision")
    for key_var, secret_var, pem_var in names:
        api_key, secret, pem_file = get(key_var), get(secret_var), get(pem_var)
        if secret:
            register_secret(secret)
        if not (api_key or secret or pem_file):
            continue
        if not api_key:
            raise ConfigError(f"{secret_var if secret else pem_var} is set but {key_var} is not")
        _check_api_key(api_key, key_var, env)
        if secret and pem_file:
            raise ConfigError(f"set either {secret_var} (HMAC) or {pem_var} (Ed25519), not both")
        if pem_file:
            return _ed25519(api_key, _read_private_key(pem_file, pem_var), f"{key_var} + {pem_var}")
        if not secret:
            raise ConfigError(f"{key_var} is set but {secret_var} (HMAC secret) or {pem_var} (Ed25519) is not")
        return _hmac(api_key, secret, f"{key_var} + {secret_var}", secret_var)
    return None


# -- key file ------------------------------------------------------------------------------------

def _from_key_file(env: Environment, path: str) -> Credentials:
    text = _read_private(path, "key file")
    try:
        # strict: duplicate keys, deep nesting, NaN are errors naming the key and the line (never a value)
        data = strict.parse_yaml(text, f"key file {path}")
    except ConfigError as e:
        if "invalid YAML" in str(e):    # the parser's message may quote the secret
            raise ConfigError(f"key file {path}: invalid YAML/JSON") from None
        raise ConfigError(str(e)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"key file {path}: expected a mapping with api_key and secret (or private_key_file)")
    if isinstance(data.get("secret"), str):
        register_secret(data["secret"])
    unknown = sorted(str(k) for k in data if k not in _KEY_FILE_KEYS)
    if unknown:
        raise ConfigError(f"key file {path}: unknown key '{unknown[0]}' (allowed: {', '.join(_KEY_FILE_KEYS)})")
    marked = data.get("env")
    if marked is not None and marked not in ("production", "testnet", "sim"):
        raise ConfigError(f"key file {path}: env: expected production, testnet or sim, got {marked!r}")
    if marked is not None and marked != env.name:
        hint = " (production keys with a testnet URL)" if marked == "production" and env.name == "testnet" else ""
        raise ConfigError(f"key file {path} is marked env: {marked} but the target environment is {env.name}{hint}")
    api_key = data.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise ConfigError(f"key file {path}: api_key: missing")
    api_key = api_key.strip()
    _check_api_key(api_key, f"key file {path}: api_key", env)
    secret, pem_file = data.get("secret"), data.get("private_key_file")
    if secret is not None and pem_file is not None:
        raise ConfigError(f"key file {path}: give either secret (HMAC) or private_key_file (Ed25519), not both")
    key_type = data.get("key_type")
    if key_type is not None and key_type not in KEY_TYPES:
        raise ConfigError(f"key file {path}: key_type: expected HMAC or ED25519, got {key_type!r}")
    if pem_file is not None:
        if not isinstance(pem_file, str):
            raise ConfigError(f"key file {path}: private_key_file: expected a path")
        if key_type == "HMAC":
            raise ConfigError(f"key file {path}: key_type HMAC needs secret, not private_key_file")
        pem_path = pem_file if os.path.isabs(pem_file) else os.path.join(os.path.dirname(os.path.abspath(path)), pem_file)
        return _ed25519(api_key, _read_private_key(pem_path, f"key file {path}: private_key_file"), f"key file {path}")
    if not isinstance(secret, str) or not secret.strip():
        raise ConfigError(f"key file {path}: secret: missing (or private_key_file for an Ed25519 key)")
    if key_type == "ED25519":
        if not secret.lstrip().startswith("-----BEGIN"):
            raise ConfigError(f"key file {path}: secret: key_type ED25519 needs a private key PEM "
                              "(or use private_key_file)")
        return _ed25519(api_key, secret, f"key file {path}")
    return _hmac(api_key, secret.strip(), f"key file {path}", f"key file {path}: secret")


# -- validation helpers --------------------------------------------------------------------------

def _check_api_key(api_key: str, what: str, env: Environment) -> None:
    if env.name == "sim":
        # the simulator accepts any key its config declares; only reject what cannot be a header value
        if any(c.isspace() for c in api_key) or not api_key.isprintable():
            raise ConfigError(f"{what}: malformed API key (whitespace or control characters)")
        return
    if not _API_KEY.match(api_key):
        raise ConfigError(f"{what}: malformed API key (Binance API keys are 64 letters and digits; "
                          f"got {len(api_key)} characters)")


def _hmac(api_key: str, secret: str, source: str, what: str) -> Credentials:
    register_secret(secret)
    if "-----BEGIN" in secret:
        raise ConfigError(f"{what} looks like a PEM private key, not an HMAC secret "
                          "(for an Ed25519 key use a private key file)")
    if any(c.isspace() for c in secret):
        raise ConfigError(f"{what}: malformed HMAC secret (contains whitespace)")
    return Credentials(api_key, "HMAC", Secret(secret), source)


def _ed25519(api_key: str, pem: str, source: str) -> Credentials:
    return Credentials(api_key, "ED25519", Secret(pem), source)


def _read_private_key(path: str, what: str) -> str:
    text = _read_private(path, what)
    register_secret(text)
    if "-----BEGIN" not in text:
        raise ConfigError(f"{what} ({path}): expected an Ed25519 private key PEM; "
                          "this looks like an HMAC secret (use BINANCE_API_SECRET / secret instead)")
    if "PUBLIC KEY" in text and "PRIVATE KEY" not in text:
        raise ConfigError(f"{what} ({path}): this is a public key; the private key PEM is needed")
    return text


def _read_private(path: str, what: str) -> str:
    """The file's text, refusing files readable by group or others."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {path}: not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(f"{what} {path} has mode {mode:04o}; it holds a secret and must be 0600 "
                          f"(run: chmod 600 {path})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot read: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{what} {path}: not UTF-8 text (line {line}, offset {e.start})") from None
