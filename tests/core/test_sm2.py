"""shgov.core.sm2: every key signs verifiably (X beginning with 04 included), every encoding is read
explicitly, malformed input is refused without an exception, and OpenSSL and a plain-Python verifier agree."""

from __future__ import annotations

import functools
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shgov.core import sm2
from tests.core import sm2_reference as ref

# Written by the gmssl 3.2.2 code this module replaced (public key from CryptSM2._kg, signature from
# sign_with_sm3): stored keys and signatures of that era must keep verifying.
GMSSL_PRIVATE = "ebf473ee04aad5f8a192e31486a1ea0a162399fa9f1bfcc03f060d24b445252d"
GMSSL_PUBLIC = (
    "63215b329f19cd9eb46ab7c6ff9c40a36a9c9b642196e730d7936d0524eff930"
    "c9188bb6a19662d16338125a43427535d990589a2cf077324c23ad89af6d73aa"
)
GMSSL_PAYLOAD = '{"issued":"2026-03-02","kid":"x","name":"张三","no":"DZZZ20260302ABCDEF0123","v":1}'.encode()
GMSSL_SIGNATURE = (
    "75ef46d8e1b721b8399b701308479f480b915e930cd4e3ec018dd4da9843e53c"
    "8e1ecac31f2871ec9c7aacd9762e40414e88cbcd65a8d2a6d590b55ef5a21802"
)


Key = tuple[str, str]  # (private, public) hex


@functools.cache
def _keys(count: int = 1000, with_04: int = 5) -> tuple[list[Key], list[Key]]:
    """(``count`` keys, at least ``with_04`` keys whose X begins with 0x04) from a seeded generator."""
    rng = random.Random(20261225)
    keys: list[Key] = []
    leading_04: list[Key] = []
    for _ in range(40 * count):  # ~1 key in 256 has such an X: this bound is never reached
        private = f"{rng.randrange(1, sm2.N - 1):064x}"
        public = sm2.public_key(private)
        if public.startswith("04"):
            leading_04.append((private, public))
        if len(keys) < count:
            keys.append((private, public))
        elif len(leading_04) >= with_04:
            break
    assert len(leading_04) >= with_04
    return keys, leading_04


@pytest.fixture
def keys() -> list[Key]:
    """1,000 keys from a seeded generator (made once per run)."""
    return _keys()[0]


@pytest.fixture
def keys_04() -> list[Key]:
    """At least five keys whose public X begins with 0x04, from the same generator."""
    return _keys()[1]


def _compressed(public: str) -> str:
    return ("03" if int(public[64:], 16) % 2 else "02") + public[:64]


def test_a_thousand_keys_and_every_key_whose_x_begins_with_04_verify_their_own_signatures(
    keys: list[Key], keys_04: list[Key]
) -> None:
    for i, (private, public) in enumerate([*keys, *keys_04]):
        data = f"licence {i}".encode()
        signature = sm2.sign(private, data)
        assert len(signature) == 128
        assert sm2.verify(public, data, signature), (private, public)
        if i % 10 == 0:
            assert not sm2.verify(public, data + b".", signature)
    for private, public in keys_04:
        assert sm2.normalize_public_key(public) == public  # the 04 of X is X's, not a prefix
        sm2.self_check(private, public)


def test_derived_public_keys_are_d_times_g(keys: list[Key], keys_04: list[Key]) -> None:
    assert sm2.public_key("0" * 63 + "1") == f"{ref.G[0]:064x}{ref.G[1]:064x}"
    for private, public in [*keys[:20], *keys_04]:
        assert public == ref.public_of(int(private, 16))


def test_a_plain_python_verifier_accepts_the_signatures_and_shgov_accepts_gmssl_s(
    keys: list[Key], keys_04: list[Key]
) -> None:
    for private, public in [*keys[:10], *keys_04]:
        data = b"cross-checked " + private.encode()
        assert ref.reference_verify(public, data, sm2.sign(private, data))
    assert sm2.public_key(GMSSL_PRIVATE) == GMSSL_PUBLIC
    assert sm2.verify(GMSSL_PUBLIC, GMSSL_PAYLOAD, GMSSL_SIGNATURE)
    assert ref.reference_verify(GMSSL_PUBLIC, GMSSL_PAYLOAD, GMSSL_SIGNATURE)


def test_tampered_data_signature_or_key_do_not_verify(keys: list[Key]) -> None:
    (private, public), (_, other_public) = keys[0], keys[1]
    data = b"the particulars"
    signature = sm2.sign(private, data)
    assert sm2.verify(public, data, signature)
    assert not sm2.verify(public, b"the particularz", signature)
    assert not sm2.verify(public, b"", signature)
    assert not sm2.verify(other_public, data, signature)
    for position in (0, 63, 64, 127):
        flipped = signature[:position] + ("0" if signature[position] != "0" else "1") + signature[position + 1 :]
        assert not sm2.verify(public, data, flipped)
    r, s = signature[:64], signature[64:]
    assert not sm2.verify(public, data, s + r)
    n_minus_s = f"{sm2.N - int(s, 16):064x}"
    assert not sm2.verify(public, data, r + n_minus_s)  # no malleability: (r, n-s) is not a signature


@pytest.mark.parametrize(
    ("public", "signature", "data"),
    [
        ("", "ok", b"x"),
        ("zz" * 64, "ok", b"x"),
        ("a" * 127, "ok", b"x"),
        ("05{x}{y}", "ok", b"x"),  # a 130-digit key must begin with 04
        ("04{x}", "ok", b"x"),  # 66 digits must begin with 02 or 03
        ("{x}{y_plus_1}", "ok", b"x"),  # not on the curve
        ("{p}{y}", "ok", b"x"),  # X out of the field
        ("ok", "", b"x"),
        ("ok", "00" * 64, b"x"),  # r = s = 0
        ("ok", "{n}{n}", b"x"),  # r = s = n
        ("ok", "ff" * 64, b"x"),
        ("ok", "ok" + "00", b"x"),
        ("ok", "gg" * 64, b"x"),
        ("ok", "ok", "x"),  # text, not bytes
        ("ok", "ok", 5),  # bytes(5) would be five zero bytes
        (None, "ok", b"x"),
        ("ok", None, b"x"),
    ],
)
def test_malformed_input_gives_false_never_an_exception(
    public: object, signature: object, data: object, keys: list[Key]
) -> None:
    private, good_public = keys[2]
    good_signature = sm2.sign(private, b"x")
    fields = {
        "x": good_public[:64],
        "y": good_public[64:],
        "y_plus_1": f"{int(good_public[64:], 16) + 1:064x}",
        "p": f"{sm2.P:064x}",
        "n": f"{sm2.N:064x}",
    }

    def fill(value: object, good: str) -> object:
        if value == "ok":
            return good
        return value.format(**fields) if isinstance(value, str) else value

    arguments = (fill(public, good_public), data, fill(signature, good_signature))
    assert sm2.verify(*arguments) is False  # type: ignore[arg-type]


def test_public_keys_are_read_as_x_y_04_x_y_or_compressed_and_written_as_x_y(
    keys: list[Key], keys_04: list[Key]
) -> None:
    for private, public in [*keys[:20], *keys_04]:
        signature = sm2.sign(private, b"encodings")
        compressed = _compressed(public)
        wrong_parity = ("02" if compressed.startswith("03") else "03") + public[:64]
        for form in (public, "04" + public, compressed, public.upper(), f"  {public}\n"):
            assert sm2.normalize_public_key(form) == public
            assert sm2.verify(form, b"encodings", signature)
        assert sm2.normalize_public_key(wrong_parity) != public
        assert not sm2.verify(wrong_parity, b"encodings", signature)
    with pytest.raises(ValueError, match="04"):
        sm2.normalize_public_key("05" + keys[0][1])


def test_private_keys_are_64_hex_digits_in_1_to_n_minus_2() -> None:
    for bad in ("", "0" * 64, f"{sm2.N - 1:064x}", f"{sm2.N:064x}", "1" * 63, "g" * 64):
        with pytest.raises(ValueError, match="private key"):
            sm2.sign(bad, b"x")
        with pytest.raises(ValueError, match="private key"):
            sm2.public_key(bad)
    generated = {sm2.generate_private_key() for _ in range(50)}
    assert len(generated) == 50
    for private in generated:
        assert len(private) == 64
        assert 1 <= int(private, 16) <= sm2.N - 2


def test_self_check_refuses_a_key_whose_signatures_do_not_verify(
    monkeypatch: pytest.MonkeyPatch, keys: list[Key]
) -> None:
    private, public = keys[3]
    sm2.self_check(private)
    sm2.self_check(private, "04" + public)
    with pytest.raises(sm2.KeyCheckError, match="does not belong"):
        sm2.self_check(private, keys[4][1])
    with pytest.raises(ValueError, match="private key"):
        sm2.self_check("04" * 33)
    # A derivation that goes wrong (what gmssl's did for 1 key in 256) is caught by the probe signatures.
    monkeypatch.setattr(sm2, "public_key", lambda _private: keys[4][1])
    with pytest.raises(sm2.KeyCheckError, match="cannot verify its own"):
        sm2.self_check(private)


def test_der_and_pem_encodings_match_openssl_s(keys_04: list[Key]) -> None:
    private, public = keys_04[0]
    signature = sm2.sign(private, b"der")
    assert sm2.signature_to_der(signature) == ref.signature_der(signature)
    assert sm2.signature_from_der(ref.signature_der(signature)) == signature
    assert sm2.public_key_pem(public) == ref.spki_pem(public)
    small = "00" + "7f" * 31 + "00" * 31 + "01"  # r with leading zero bytes, s = 1
    assert sm2.signature_from_der(sm2.signature_to_der(small)) == small
    assert sm2.signature_to_der(small) == ref.signature_der(small)
    der = sm2.signature_to_der(signature)
    for bad in (b"", b"\x30\x00", der + b"\x00", b"\x31" + der[1:]):
        with pytest.raises(ValueError, match="DER"):
            sm2.signature_from_der(bad)


def test_threads_share_keys_safely(keys: list[Key]) -> None:
    # OpenSSL runs without the GIL: many threads sign and verify with the same cached key handles at once.
    pairs = keys[:3]

    def round_trip(i: int) -> bool:
        private, public = pairs[i % len(pairs)]
        data = f"thread {i}".encode()
        signature = sm2.sign(private, data)
        return sm2.verify(public, data, signature) and not sm2.verify(public, data + b"!", signature)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(round_trip, range(400)))


@pytest.fixture(scope="module")
def openssl() -> str:
    """The openssl command, or a skip saying why it cannot cross-check SM2."""
    exe, why = ref.openssl_with_sm2()
    if exe is None:
        pytest.skip(f"no independent SM2 verifier: {why}")
    return exe


def test_openssl_verifies_shgov_signatures(openssl: str, tmp_path: Path, keys: list[Key], keys_04: list[Key]) -> None:
    for private, public in [*keys[:5], *keys_04]:
        data = f"checked by OpenSSL {private[:8]}".encode()
        signature = sm2.sign(private, data)
        assert ref.openssl_verify(openssl, tmp_path, public, data, signature), (private, public)
        assert not ref.openssl_verify(openssl, tmp_path, public, data + b"!", signature)


def test_shgov_verifies_openssl_signatures_and_derives_openssl_s_public_key(openssl: str, tmp_path: Path) -> None:
    for i in range(3):
        key, private, public = ref.openssl_keypair(openssl, tmp_path)
        assert sm2.public_key(private) == public
        data = f"signed by OpenSSL {i}".encode()
        signature = ref.openssl_sign(openssl, tmp_path, key, data)
        assert sm2.verify(public, data, signature)
        assert sm2.verify(_compressed(public), data, signature)
        assert not sm2.verify(public, data + b"!", signature)
