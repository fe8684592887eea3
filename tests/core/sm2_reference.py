"""Two SM2 implementations independent of ``shgov.core.sm2``, for cross-checking it.

* a plain-Python verifier written from GB/T 32918.2 (affine arithmetic, slow and obvious);
* OpenSSL 3's command line (``openssl pkeyutl -rawin -digest sm3 -pkeyopt distid:…``), fed a PEM
  SubjectPublicKeyInfo and a DER ``ECDSA-Sig-Value`` that this file builds itself from the hex.

Nothing here imports the module under test, so an encoding mistake there cannot cancel out here.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)
USER_ID = b"1234567812345678"

Point = tuple[int, int] | None  # None: the point at infinity


def _add(p: Point, q: Point) -> Point:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % P == 0:
        return None
    if p == q:  # noqa: SIM108 - the two slopes of the textbook, side by side
        slope = (3 * p[0] * p[0] + A) * pow(2 * p[1], -1, P) % P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, P) % P
    x = (slope * slope - p[0] - q[0]) % P
    return x, (slope * (p[0] - x) - p[1]) % P


def multiply(k: int, point: Point = G) -> Point:
    """k·point by double-and-add."""
    result: Point = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def public_of(d: int) -> str:
    """d·G as 128 hex X‖Y."""
    point = multiply(d)
    assert point is not None
    return f"{point[0]:064x}{point[1]:064x}"


def reference_verify(public_hex: str, data: bytes, signature_hex: str) -> bool:
    """GB/T 32918.2 §7: Z_A from the default ID, e = SM3(Z_A ‖ M), t = r + s, R = e + x(s·G + t·P_A)."""
    x_a, y_a = int(public_hex[:64], 16), int(public_hex[64:], 16)
    r, s = int(signature_hex[:64], 16), int(signature_hex[64:], 16)
    if not (1 <= r < N and 1 <= s < N):
        return False
    z = hashlib.new(
        "sm3",
        (len(USER_ID) * 8).to_bytes(2, "big")
        + USER_ID
        + b"".join(v.to_bytes(32, "big") for v in (A, B, G[0], G[1], x_a, y_a)),
    ).digest()
    e = int.from_bytes(hashlib.new("sm3", z + data).digest(), "big")
    t = (r + s) % N
    if t == 0:
        return False
    point = _add(multiply(s), multiply(t, (x_a, y_a)))
    return point is not None and (e + point[0]) % N == r


# -- OpenSSL's command line ---------------------------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([tag, len(body)]) + body


def _der_int(value: int) -> bytes:
    body = value.to_bytes(32, "big").lstrip(b"\x00") or b"\x00"
    return _tlv(0x02, (b"\x00" + body) if body[0] & 0x80 else body)


def spki_pem(public_hex: str) -> str:
    """SubjectPublicKeyInfo {id-ecPublicKey 1.2.840.10045.2.1, SM2 1.2.156.10197.1.301} of X‖Y, as PEM."""
    algorithm = _tlv(0x30, bytes.fromhex("06072a8648ce3d0201") + bytes.fromhex("06082a811ccf5501822d"))
    der = _tlv(0x30, algorithm + _tlv(0x03, b"\x00\x04" + bytes.fromhex(public_hex)))
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{lines}\n-----END PUBLIC KEY-----\n"


def signature_der(signature_hex: str) -> bytes:
    """Hex r‖s as DER ECDSA-Sig-Value."""
    return _tlv(0x30, _der_int(int(signature_hex[:64], 16)) + _der_int(int(signature_hex[64:], 16)))


def signature_hex(der: bytes) -> str:
    """DER ECDSA-Sig-Value as hex r‖s."""
    assert der[0] == 0x30
    assert der[1] == len(der) - 2
    values, pos = [], 2
    for _ in range(2):
        assert der[pos] == 0x02
        length = der[pos + 1]
        values.append(int.from_bytes(der[pos + 2 : pos + 2 + length], "big"))
        pos += 2 + length
    return f"{values[0]:064x}{values[1]:064x}"


def openssl_with_sm2() -> tuple[str | None, str]:
    """(the openssl command, "") when it signs with SM2, else (None, why not)."""
    exe = shutil.which("openssl")
    if exe is None:
        return None, "no openssl command on this machine"
    version = subprocess.run([exe, "version"], capture_output=True, text=True, check=False).stdout.strip()
    if not version.startswith("OpenSSL 3"):
        return None, f"{version or 'openssl'} is not OpenSSL 3 (needs pkeyutl -rawin and distid)"
    listed = subprocess.run([exe, "list", "-public-key-algorithms"], capture_output=True, text=True, check=False)
    if "SM2" not in listed.stdout:
        return None, f"{version} was built without SM2"
    return exe, ""


_SM2_OPTIONS = ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:" + USER_ID.decode()]


def openssl_verify(exe: str, folder: Path, public_hex: str, data: bytes, signature: str) -> bool:
    """Whether OpenSSL accepts ``signature`` (hex r‖s) of ``data`` by ``public_hex``."""
    (folder / "pub.pem").write_text(spki_pem(public_hex))
    (folder / "msg").write_bytes(data)
    (folder / "sig.der").write_bytes(signature_der(signature))
    done = subprocess.run(
        [
            *(exe, "pkeyutl", "-verify", "-pubin", "-inkey", folder / "pub.pem", *_SM2_OPTIONS),
            *("-in", folder / "msg", "-sigfile", folder / "sig.der"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and "Signature Verified Successfully" in done.stdout


def openssl_keypair(exe: str, folder: Path) -> tuple[Path, str, str]:
    """A key made by OpenSSL: (its PEM file, the private key hex, the public key hex X‖Y)."""
    key = folder / "key.pem"
    subprocess.run([exe, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", key], check=True)
    pkcs8 = subprocess.run([exe, "pkey", "-in", key, "-outform", "DER"], capture_output=True, check=True).stdout
    spki = subprocess.run([exe, "pkey", "-in", key, "-pubout", "-outform", "DER"], capture_output=True, check=True)
    marker = bytes.fromhex("0201010420")  # ECPrivateKey: version 1, then the 32-byte private key
    start = pkcs8.index(marker) + len(marker)
    assert spki.stdout[-65] == 0x04
    return key, pkcs8[start : start + 32].hex(), spki.stdout[-64:].hex()


def openssl_sign(exe: str, folder: Path, key: Path, data: bytes) -> str:
    """OpenSSL's signature of ``data`` with ``key`` as hex r‖s."""
    (folder / "msg").write_bytes(data)
    subprocess.run(
        [exe, "pkeyutl", "-sign", "-inkey", key, *_SM2_OPTIONS, "-in", folder / "msg", "-out", folder / "sig.der"],
        check=True,
    )
    return signature_hex((folder / "sig.der").read_bytes())
