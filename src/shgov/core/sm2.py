"""SM2 signatures for the whole platform: SM2 with SM3 (GB/T 32918, GM/T 0003) and the default
distinguishing ID ``1234567812345678`` (GM/T 0009).

Every signer and verifier — e-licences, exchange packages, audit checkpoints — goes through this module.
The curve arithmetic is OpenSSL 3's ``libcrypto`` (the library Python's own ``hashlib`` is linked with, which
already gives the platform SM3), called through ``ctypes``; the encodings are handled here, explicitly:

* a private key is 64 hex digits, ``1 ≤ d ≤ n − 2``;
* a public key is written as 128 hex digits ``X‖Y`` and read as ``X‖Y``, ``04‖X‖Y`` or compressed
  ``02/03‖X``, told apart by their length — never by stripping characters, since an X coordinate may itself
  begin with ``04`` (the gmssl bug that made one installation in 256 reject its own licences);
* a signature is 128 hex digits ``r‖s`` (what gmssl wrote, so stored signatures keep verifying); OpenSSL's
  DER ``ECDSA-Sig-Value`` is built and read here.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import secrets
from collections.abc import Callable

DEFAULT_ID = b"1234567812345678"
CURVE_OID = "1.2.156.10197.1.301"

# The SM2 recommended curve (GB/T 32918.5): y² = x³ + ax + b over F_p, base point G of order n.
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

# DER prefixes: SubjectPublicKeyInfo {id-ecPublicKey, SM2} ‖ BIT STRING 00 04 …, and PKCS#8
# PrivateKeyInfo {0, {id-ecPublicKey, SM2}, OCTET STRING ECPrivateKey {1, OCTET STRING d}}.
_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _ALGORITHM + bytes.fromhex("034200" + "04")
_PKCS8_PREFIX = bytes.fromhex("3041020100") + _ALGORITHM + bytes.fromhex("0427302502010104" + "20")
_HEX = frozenset("0123456789abcdef")
_SELF_CHECK_PROBES = (b"shgov sm2 self-check", b"shgov sm2 self-check \x00\xff")


class KeyCheckError(ValueError):
    """A key that cannot verify its own signature, or a public key that does not belong to its private key."""


class SM2BackendError(RuntimeError):
    """OpenSSL 3's ``libcrypto`` with SM2 is missing, or failed an operation it does not fail on sound input."""


# -- encodings (pure Python) --------------------------------------------------------------------------------


def _hex_digits(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be hex text")
    digits = text.strip().lower()
    if not digits or not _HEX.issuperset(digits):
        raise ValueError(f"{what} is not hex")
    return digits


def _private_int(private_hex: str) -> int:
    digits = _hex_digits(private_hex, "an SM2 private key")
    if len(digits) != 64:
        raise ValueError("an SM2 private key is 64 hex digits")
    d = int(digits, 16)
    # GB/T 32918.1 6.1: d in [1, n-2], so that (1 + d) is invertible when signing.
    if not 1 <= d <= N - 2:
        raise ValueError("an SM2 private key lies in [1, n-2]")
    return d


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _point(public_hex: str) -> tuple[int, int]:
    digits = _hex_digits(public_hex, "an SM2 public key")
    if len(digits) == 128:
        x, y = int(digits[:64], 16), int(digits[64:], 16)
    elif len(digits) == 130 and digits.startswith("04"):
        x, y = int(digits[2:66], 16), int(digits[66:], 16)
    elif len(digits) == 66 and digits[:2] in ("02", "03"):
        x = int(digits[2:], 16)
        if x >= P:
            raise ValueError("the public key's X is not a field element")
        # p ≡ 3 (mod 4): the square root of c is c^((p+1)/4) when c is a square.
        y = pow((x * x * x + A * x + B) % P, (P + 1) // 4, P)
        if y % 2 != int(digits[1]) % 2:
            y = P - y
    else:
        raise ValueError("an SM2 public key is X‖Y (128 hex), 04‖X‖Y (130) or 02/03‖X (66)")
    if not _on_curve(x, y):
        raise ValueError("the public key is not a point of the SM2 curve")
    return x, y


def normalize_public_key(public_hex: str) -> str:
    """``public_hex`` (``X‖Y``, ``04‖X‖Y`` or compressed ``02/03‖X``) as 128 lowercase hex ``X‖Y``.

    Raises ``ValueError`` when it is none of these or not a point of the curve.
    """
    x, y = _point(public_hex)
    return f"{x:064x}{y:064x}"


def public_key_pem(public_hex: str) -> str:
    """The public key as a PEM SubjectPublicKeyInfo (id-ecPublicKey on the SM2 curve), for OpenSSL and others."""
    der = _SPKI_PREFIX + bytes.fromhex(normalize_public_key(public_hex))
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def _signature_ints(signature_hex: str) -> tuple[int, int]:
    digits = _hex_digits(signature_hex, "an SM2 signature")
    if len(digits) != 128:
        raise ValueError("an SM2 signature is 128 hex digits r‖s")
    r, s = int(digits[:64], 16), int(digits[64:], 16)
    if not (1 <= r < N and 1 <= s < N):
        raise ValueError("r and s of an SM2 signature lie in [1, n-1]")
    return r, s


def _message(data: bytes) -> bytes:
    # bytes(5) would be five zero bytes: only byte strings are messages.
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("an SM2 message is bytes")
    return bytes(data)


def _der_integer(value: int) -> bytes:
    # Minimal two's-complement: one byte more than the bits need, so a set top bit gets its 00.
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + bytes([len(body)]) + body


def signature_to_der(signature_hex: str) -> bytes:
    """A hex ``r‖s`` signature as the DER ``ECDSA-Sig-Value`` OpenSSL reads; ``ValueError`` when malformed."""
    r, s = _signature_ints(signature_hex)
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + bytes([len(body)]) + body


def signature_from_der(der: bytes) -> str:
    """A DER ``ECDSA-Sig-Value`` as hex ``r‖s``; ``ValueError`` when it is not one."""
    if len(der) < 8 or der[0] != 0x30 or der[1] != len(der) - 2:
        raise ValueError("not a DER SEQUENCE of the right length")
    values: list[int] = []
    pos = 2
    for _ in range(2):
        if pos + 2 > len(der) or der[pos] != 0x02:
            raise ValueError("not a DER INTEGER")
        length = der[pos + 1]
        if length == 0 or length > 33 or pos + 2 + length > len(der):
            raise ValueError("a DER INTEGER of the wrong length")
        values.append(int.from_bytes(der[pos + 2 : pos + 2 + length], "big"))
        pos += 2 + length
    if pos != len(der):
        raise ValueError("bytes after the signature")
    text = f"{values[0]:064x}{values[1]:064x}"
    _signature_ints(text)
    return text


# -- libcrypto ----------------------------------------------------------------------------------------------

_LIBCRYPTO_NAMES = ("libcrypto.so.3", "libcrypto.3.dylib", "libcrypto-3-x64.dll", "libcrypto-3.dll")


def _declare(lib: ctypes.CDLL) -> None:
    # Every pointer is declared c_void_p: ctypes' default int return type would truncate it to 32 bits.
    vp, char_pp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)
    size_p = ctypes.POINTER(ctypes.c_size_t)
    signatures: dict[str, tuple[object, list[object]]] = {
        "d2i_PUBKEY": (vp, [vp, char_pp, ctypes.c_long]),
        "d2i_AutoPrivateKey": (vp, [vp, char_pp, ctypes.c_long]),
        "i2d_PUBKEY": (ctypes.c_int, [vp, char_pp]),
        "EVP_PKEY_is_a": (ctypes.c_int, [vp, ctypes.c_char_p]),
        "EVP_PKEY_free": (None, [vp]),
        "EVP_PKEY_CTX_new": (vp, [vp, vp]),
        "EVP_PKEY_CTX_free": (None, [vp]),
        "EVP_PKEY_CTX_set1_id": (ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_int]),
        "EVP_MD_CTX_new": (vp, []),
        "EVP_MD_CTX_free": (None, [vp]),
        "EVP_MD_CTX_set_pkey_ctx": (None, [vp, vp]),
        "EVP_get_digestbyname": (vp, [ctypes.c_char_p]),
        "EVP_DigestSignInit": (ctypes.c_int, [vp, vp, vp, vp, vp]),
        "EVP_DigestSign": (ctypes.c_int, [vp, ctypes.c_char_p, size_p, ctypes.c_char_p, ctypes.c_size_t]),
        "EVP_DigestVerifyInit": (ctypes.c_int, [vp, vp, vp, vp, vp]),
        "EVP_DigestVerify": (ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]),
        "ERR_clear_error": (None, []),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


@functools.cache
def _lib() -> ctypes.CDLL:
    """OpenSSL 3's libcrypto, its functions declared, checked to know SM2 and SM3."""
    names = list(_LIBCRYPTO_NAMES)
    found = ctypes.util.find_library("crypto")
    if found and found not in names:
        names.append(found)
    tried: list[str] = []
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            lib.OpenSSL_version_num.restype = ctypes.c_ulong
            version = int(lib.OpenSSL_version_num())
        except (OSError, AttributeError) as exc:
            tried.append(f"{name}: {exc}")
            continue
        if version < 0x30000000:
            tried.append(f"{name}: OpenSSL {version:#x} is older than 3.0")
            continue
        try:
            _declare(lib)
        except AttributeError as exc:
            tried.append(f"{name}: {exc}")
            continue
        if not lib.EVP_get_digestbyname(b"SM3"):
            tried.append(f"{name}: built without SM3")
            continue
        return lib
    raise SM2BackendError("SM2 needs OpenSSL 3's libcrypto with SM2 and SM3 (Debian: libssl3); " + "; ".join(tried))


@functools.cache
def _sm3() -> int:
    return int(_lib().EVP_get_digestbyname(b"SM3"))


class _Key:
    """An ``EVP_PKEY`` owned by Python: freed when the last reference to it goes."""

    __slots__ = ("_free", "ptr")

    def __init__(self, ptr: int, free: Callable[[int], None]) -> None:
        self.ptr = ptr
        self._free = free  # kept here: module globals may be gone when the interpreter shuts down

    def __del__(self) -> None:
        self._free(self.ptr)


def _decode(decoder_name: str, der: bytes) -> _Key:
    lib = _lib()
    cursor = ctypes.c_char_p(der)  # d2i moves this pointer, never the bytes it points into
    ptr = getattr(lib, decoder_name)(None, ctypes.byref(cursor), len(der))
    if not ptr:
        lib.ERR_clear_error()
        raise ValueError("OpenSSL does not accept the key")
    key = _Key(int(ptr), lib.EVP_PKEY_free)
    if lib.EVP_PKEY_is_a(key.ptr, b"SM2") != 1:
        raise ValueError("OpenSSL did not read the key as an SM2 key")
    return key


@functools.lru_cache(maxsize=64)
def _public_key_handle(point: bytes) -> _Key:
    return _decode("d2i_PUBKEY", _SPKI_PREFIX + point)


@functools.lru_cache(maxsize=8)
def _private_key_handle(d: int) -> _Key:
    return _decode("d2i_AutoPrivateKey", _PKCS8_PREFIX + d.to_bytes(32, "big"))


def _digest_context(lib: ctypes.CDLL, key: _Key, init: Callable[..., int]) -> tuple[int, int]:
    """(EVP_MD_CTX, EVP_PKEY_CTX) set up for SM3 with the default ID; the caller frees both."""
    md_ctx = int(lib.EVP_MD_CTX_new() or 0)
    pkey_ctx = int(lib.EVP_PKEY_CTX_new(key.ptr, None) or 0)
    if md_ctx and pkey_ctx and lib.EVP_PKEY_CTX_set1_id(pkey_ctx, DEFAULT_ID, len(DEFAULT_ID)) == 1:
        # The ID goes on a key context handed to the digest context: OpenSSL then hashes Z_A with it.
        lib.EVP_MD_CTX_set_pkey_ctx(md_ctx, pkey_ctx)
        if init(md_ctx, None, _sm3(), None, key.ptr) == 1:
            return md_ctx, pkey_ctx
    _free_contexts(lib, md_ctx, pkey_ctx)
    raise SM2BackendError("OpenSSL could not set up an SM2 signature with SM3")


def _free_contexts(lib: ctypes.CDLL, md_ctx: int, pkey_ctx: int) -> None:
    # EVP_MD_CTX_set_pkey_ctx leaves the key context to its owner: free it after the digest context.
    lib.EVP_MD_CTX_free(md_ctx or None)
    lib.EVP_PKEY_CTX_free(pkey_ctx or None)
    lib.ERR_clear_error()


# -- the API ------------------------------------------------------------------------------------------------


def generate_private_key() -> str:
    """A new private key: 64 hex digits, uniform in [1, n-2], from the operating system's CSPRNG."""
    return f"{secrets.randbelow(N - 2) + 1:064x}"


def public_key(private_hex: str) -> str:
    """The public key ``d·G`` of ``private_hex`` as 128 hex digits ``X‖Y`` (no ``04`` prefix)."""
    key = _private_key_handle(_private_int(private_hex))
    lib = _lib()
    size = int(lib.i2d_PUBKEY(key.ptr, None))
    buffer = ctypes.create_string_buffer(max(size, 0))
    cursor = ctypes.c_char_p(ctypes.addressof(buffer))
    if size != len(_SPKI_PREFIX) + 64 or lib.i2d_PUBKEY(key.ptr, ctypes.byref(cursor)) != size:
        lib.ERR_clear_error()
        raise SM2BackendError("OpenSSL wrote an unexpected public key encoding")
    der = buffer.raw
    if not der.startswith(_SPKI_PREFIX):
        raise SM2BackendError("OpenSSL wrote an unexpected public key encoding")
    return der[len(_SPKI_PREFIX) :].hex()


def sign(private_hex: str, data: bytes) -> str:
    """The SM2 signature (SM3, default ID) of ``data`` by ``private_hex``, as 128 hex digits ``r‖s``.

    Raises ``ValueError`` when the private key is malformed.
    """
    key = _private_key_handle(_private_int(private_hex))
    message = _message(data)
    lib = _lib()
    md_ctx, pkey_ctx = _digest_context(lib, key, lib.EVP_DigestSignInit)
    try:
        out = ctypes.create_string_buffer(128)
        size = ctypes.c_size_t(len(out))
        if lib.EVP_DigestSign(md_ctx, out, ctypes.byref(size), message, len(message)) != 1:
            raise SM2BackendError("OpenSSL could not sign")
        return signature_from_der(out.raw[: size.value])
    finally:
        _free_contexts(lib, md_ctx, pkey_ctx)


def verify(public_hex: str, data: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` (hex ``r‖s``) is the SM2 signature of ``data`` by ``public_hex``.

    ``public_hex`` may be ``X‖Y``, ``04‖X‖Y`` or ``02/03‖X``. Malformed input of any kind gives False, never
    an exception.
    """
    try:
        x, y = _point(public_hex)
        der = signature_to_der(signature_hex)
        message = _message(data)
        key = _public_key_handle(x.to_bytes(32, "big") + y.to_bytes(32, "big"))
    except (ValueError, TypeError):
        return False
    lib = _lib()
    md_ctx, pkey_ctx = _digest_context(lib, key, lib.EVP_DigestVerifyInit)
    try:
        return int(lib.EVP_DigestVerify(md_ctx, der, len(der), message, len(message))) == 1
    finally:
        _free_contexts(lib, md_ctx, pkey_ctx)


def self_check(private_hex: str, public_hex: str | None = None) -> None:
    """Sign probes with ``private_hex`` and verify them with its public key (and ``public_hex`` when given).

    Raises ``KeyCheckError`` when the key cannot verify its own signatures or ``public_hex`` is not its
    public key, ``ValueError`` when the key is malformed: such a key must never sign anything.
    """
    derived = public_key(private_hex)
    if public_hex is not None and normalize_public_key(public_hex) != derived:
        raise KeyCheckError("the public key does not belong to the private key")
    for probe in _SELF_CHECK_PROBES:
        if not verify(derived, probe, sign(private_hex, probe)):
            raise KeyCheckError("the key cannot verify its own SM2 signature")
