"""Credentials: sources, validation, signing, and secret masking everywhere they could leak."""
from __future__ import annotations

import io
import json
import logging
import os
from urllib.parse import quote

import pytest

from letrade_perf.binance import signing
from letrade_perf.config.credentials import Credentials, load_credentials
from letrade_perf.config.environments import environment
from letrade_perf.core.errors import ConfigError
from letrade_perf.core.secrets import Secret, install_log_masking, mask, register_secret
from letrade_perf.sim.config import (
    DEMO_API_KEY,
    DEMO_ED25519_API_KEY,
    DEMO_ED25519_PRIVATE_PEM,
    DEMO_ED25519_PUBLIC_PEM,
    DEMO_SECRET,
)

PROD = environment("production")
TESTNET = environment("testnet")
SIM = environment("sim", "http://127.0.0.1:1")
KEY_A = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
KEY_B = "B" * 60 + "1234"
# The HMAC test vector of Binance's docs (reference §3).
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
CANARY = "canarySecretZ9q7XwPLmN3vB5tR8yK2hJ6dF4sA1gQ0eC"


def _file(tmp_path, name, content, mode=0o600):
    p = tmp_path / name
    p.write_text(content)
    os.chmod(p, mode)
    return str(p)


def test_production_hmac_from_env_signs_the_doc_vector():
    c = load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": DOC_SECRET})
    assert c.api_key == KEY_A and c.key_type == "HMAC" and c.secret.reveal() == DOC_SECRET
    assert c.sign(DOC_PAYLOAD) == DOC_SIGNATURE
    params = dict(p.split("=") for p in DOC_PAYLOAD.split("&"))
    assert c.signed_query(params) == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}"
    assert "BINANCE_API_KEY" in c.source


def test_nothing_configured():
    assert load_credentials(PROD, environ={}) is None
    assert load_credentials(TESTNET, environ={}) is None


def test_testnet_prefers_testnet_variables_then_the_generic_pair():
    both = {"BINANCE_TESTNET_API_KEY": KEY_B, "BINANCE_TESTNET_SECRET": "testnetsecret1",
            "BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": "prodsecret1"}
    c = load_credentials(TESTNET, environ=both)
    assert c.api_key == KEY_B and c.secret.reveal() == "testnetsecret1"
    c = load_credentials(TESTNET, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": "prodsecret1"})
    assert c.api_key == KEY_A        # the generic pair for testnet is fine when no testnet key is set
    assert load_credentials(PROD, environ=both).api_key == KEY_A


def test_same_key_for_production_and_testnet_is_refused():
    env = {"BINANCE_TESTNET_API_KEY": KEY_A, "BINANCE_TESTNET_SECRET": "s3cret1",
           "BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": "s3cret1"}
    for target in (TESTNET, PROD):
        with pytest.raises(ConfigError, match="production keys with a testnet URL"):
            load_credentials(target, environ=env)


def test_sim_uses_demo_key_and_never_production_variables():
    c = load_credentials(SIM, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": "prodsecret1"})
    assert (c.api_key, c.secret.reveal(), c.key_type) == (DEMO_API_KEY, DEMO_SECRET, "HMAC")
    c = load_credentials(SIM, environ={"BINANCE_SIM_API_KEY": "mykey", "BINANCE_SIM_API_SECRET": "mysecret"})
    assert c.api_key == "mykey"     # the simulator accepts whatever keys its config declares


@pytest.mark.parametrize("environ,fragment", [
    ({"BINANCE_API_KEY": KEY_A}, "BINANCE_API_KEY is set but BINANCE_API_SECRET"),
    ({"BINANCE_API_SECRET": "abcdefgh"}, "BINANCE_API_SECRET is set but BINANCE_API_KEY is not"),
    ({"BINANCE_API_KEY": "short", "BINANCE_API_SECRET": "abcdefgh"}, "BINANCE_API_KEY: malformed API key"),
    ({"BINANCE_API_KEY": KEY_A[:-1] + "!", "BINANCE_API_SECRET": "abcdefgh"}, "BINANCE_API_KEY: malformed API key"),
    ({"BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": DEMO_ED25519_PRIVATE_PEM},
     "BINANCE_API_SECRET looks like a PEM private key"),
    ({"BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": "abcdefgh", "BINANCE_PRIVATE_KEY_FILE": "/x.pem"},
     "set either BINANCE_API_SECRET (HMAC) or BINANCE_PRIVATE_KEY_FILE (Ed25519), not both"),
])
def test_env_validation_errors_name_the_variable(environ, fragment):
    with pytest.raises(ConfigError) as ei:
        load_credentials(PROD, environ=environ)
    assert fragment in str(ei.value)
    assert "vmPUZE6mv9SD5VNHk4Hl" not in str(ei.value)     # never echo a key


def test_ed25519_from_private_key_file_signs_verifiably(tmp_path):
    pem = _file(tmp_path, "ed.pem", DEMO_ED25519_PRIVATE_PEM)
    c = load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_PRIVATE_KEY_FILE": pem})
    assert c.key_type == "ED25519"
    sig = c.sign(DOC_PAYLOAD)
    assert "%" not in sig and len(sig) == 88          # base64 of 64 bytes, not percent-encoded
    assert signing.verify_ed25519(signing.load_ed25519_public(DEMO_ED25519_PUBLIC_PEM), DOC_PAYLOAD, sig)
    assert not signing.verify_ed25519(signing.load_ed25519_public(DEMO_ED25519_PUBLIC_PEM), DOC_PAYLOAD + "&x=1", sig)
    q = c.signed_query({"symbol": "BTCUSDT", "timestamp": 1})
    assert q == f"symbol=BTCUSDT&timestamp=1&signature={quote(c.sign('symbol=BTCUSDT&timestamp=1'), safe='')}"
    assert q.endswith("%3D%3D")


def test_private_key_file_must_be_a_private_pem_with_mode_0600(tmp_path):
    hmac_like = _file(tmp_path, "hmac.pem", "abcdefghijklmnop")
    with pytest.raises(ConfigError, match="BINANCE_PRIVATE_KEY_FILE.*looks like an HMAC secret"):
        load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_PRIVATE_KEY_FILE": hmac_like})
    public = _file(tmp_path, "pub.pem", DEMO_ED25519_PUBLIC_PEM)
    with pytest.raises(ConfigError, match="public key"):
        load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_PRIVATE_KEY_FILE": public})
    loose = _file(tmp_path, "loose.pem", DEMO_ED25519_PRIVATE_PEM, 0o644)
    with pytest.raises(ConfigError, match=r"BINANCE_PRIVATE_KEY_FILE .*loose.pem has mode 0644"):
        load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_PRIVATE_KEY_FILE": loose})
    garbage = _file(tmp_path, "garbage.pem", "-----BEGIN PRIVATE KEY-----\nnotbase64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a usable unencrypted Ed25519 private key PEM"):
        load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_PRIVATE_KEY_FILE": garbage})


def test_key_file_yaml_and_json(tmp_path):
    y = _file(tmp_path, "keys.yaml", f"api_key: {KEY_A}\nsecret: {DOC_SECRET}\nenv: production\n")
    c = load_credentials(PROD, key_file=y, environ={"BINANCE_API_KEY": KEY_B, "BINANCE_API_SECRET": "other1"})
    assert c.api_key == KEY_A and c.sign(DOC_PAYLOAD) == DOC_SIGNATURE and y in c.source
    _file(tmp_path, "ed.pem", DEMO_ED25519_PRIVATE_PEM)
    j = _file(tmp_path, "keys.json", json.dumps({"api_key": KEY_B, "private_key_file": "ed.pem"}))
    c = load_credentials(TESTNET, key_file=j)
    assert c.key_type == "ED25519" and c.api_key == KEY_B


def test_key_file_mode_0644_is_refused(tmp_path):
    p = _file(tmp_path, "keys.yaml", f"api_key: {KEY_A}\nsecret: {CANARY}\n", 0o644)
    with pytest.raises(ConfigError) as ei:
        load_credentials(PROD, key_file=p)
    assert f"key file {p} has mode 0644" in str(ei.value) and "0600" in str(ei.value)
    assert CANARY not in str(ei.value)
    os.chmod(p, 0o600)
    assert load_credentials(PROD, key_file=p).secret.reveal() == CANARY


@pytest.mark.parametrize("content,env,fragment", [
    (f"api_key: {KEY_A}\nsecret: abcdefgh\nenv: production\n", TESTNET,
     "is marked env: production but the target environment is testnet (production keys with a testnet URL)"),
    (f"api_key: {KEY_A}\nsecret: abcdefgh\nenv: testnet\n", PROD, "is marked env: testnet"),
    (f"api_key: {KEY_A}\nsecret: abcdefgh\nsecrett: x\n", PROD, "unknown key 'secrett'"),
    (f"api_key: {KEY_A}\n", PROD, "secret: missing"),
    ("secret: abcdefgh\n", PROD, "api_key: missing"),
    ("api_key: nope\nsecret: abcdefgh\n", PROD, "api_key: malformed API key"),
    (f"api_key: {KEY_A}\nsecret: abcdefgh\nprivate_key_file: x.pem\n", PROD, "not both"),
    (f"api_key: {KEY_A}\nsecret: |\n{chr(10).join('  ' + ln for ln in DEMO_ED25519_PRIVATE_PEM.splitlines())}\n",
     PROD, "looks like a PEM private key"),
    ("[1, 2]", PROD, "expected a mapping"),
    ("a: [", PROD, "invalid YAML/JSON"),
])
def test_key_file_errors_name_the_file(tmp_path, content, env, fragment):
    p = _file(tmp_path, "keys.yaml", content)
    with pytest.raises(ConfigError) as ei:
        load_credentials(env, key_file=p)
    assert p in str(ei.value) and fragment in str(ei.value)


def test_missing_key_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_credentials(PROD, key_file=str(tmp_path / "absent.yaml"))


# -- masking --------------------------------------------------------------------------------

def test_mask_hides_registered_secrets_and_api_key_middles():
    register_secret(CANARY)
    out = mask(f"secret={CANARY} key={KEY_A} sig={DOC_SIGNATURE}")
    assert CANARY not in out and KEY_A not in out and DOC_SIGNATURE not in out
    assert f"key={KEY_A[:4]}***{KEY_A[-4:]}" in out and "secret=***" in out
    assert mask("nothing secret here 12345") == "nothing secret here 12345"
    register_secret("abc")                    # too short to mask safely: ignored
    assert mask("abc") == "abc"


def test_secret_wrapper_never_prints_its_value():
    s = Secret("wrapperSecretQ1w2e3r4")
    assert s.reveal() == "wrapperSecretQ1w2e3r4"
    for text in (str(s), repr(s), f"{s}", "%s" % s, f"{s!r:>30}", str([s]), str({"k": s})):
        assert "wrapperSecretQ1w2e3r4" not in text
    assert mask("leak: wrapperSecretQ1w2e3r4") == "leak: ***"     # creating a Secret registers it
    assert Secret("wrapperSecretQ1w2e3r4") == s and s != Secret("otherSecret999")


def test_credentials_repr_hides_the_secret():
    c = load_credentials(PROD, environ={"BINANCE_API_KEY": KEY_A, "BINANCE_API_SECRET": CANARY + "Repr"})
    for text in (repr(c), str(c), f"{c}", str([c])):
        assert CANARY + "Repr" not in text and KEY_A not in text
    c2 = Credentials(DEMO_ED25519_API_KEY, "ED25519", Secret(DEMO_ED25519_PRIVATE_PEM))
    body = DEMO_ED25519_PRIVATE_PEM.splitlines()[1]
    assert body not in repr(c2) and body not in mask(DEMO_ED25519_PRIVATE_PEM)


def test_log_masking_covers_messages_args_exceptions_and_new_handlers():
    canary = CANARY + "Log"
    register_secret(canary)
    root = logging.getLogger()
    before = io.StringIO()
    h1 = logging.StreamHandler(before)
    root.addHandler(h1)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        install_log_masking()
        after = io.StringIO()
        h2 = logging.StreamHandler(after)          # a handler added later (as Locust does)
        h2.setFormatter(logging.Formatter("%(name)s %(message)s"))
        root.addHandler(h2)
        try:
            log = logging.getLogger("letrade_perf.test")
            log.info("in the message " + canary)
            log.info("in the args %s and %r", canary, {"secret": canary})
            try:
                raise RuntimeError(f"in the exception {canary}")
            except RuntimeError:
                log.exception("failed")
            log.warning("key %s", KEY_A)
        finally:
            root.removeHandler(h2)
        for text in (before.getvalue(), after.getvalue()):
            assert "in the message ***" in text and "in the args ***" in text
            assert "RuntimeError: in the exception ***" in text
            assert canary not in text and KEY_A not in text
    finally:
        root.removeHandler(h1)
        root.setLevel(old_level)
