import hashlib

import pytest

from portside.oci.digest import Digest, DigestError, new_hasher


def test_sha256_and_sha512_parse_and_round_trip() -> None:
    for algorithm in ("sha256", "sha512"):
        hexdigest = hashlib.new(algorithm, b"x").hexdigest()
        parsed = Digest.parse(f"{algorithm}:{hexdigest}")
        assert (parsed.algorithm, parsed.hex) == (algorithm, hexdigest)
        assert str(parsed) == f"{algorithm}:{hexdigest}"
        assert Digest.of(b"x", algorithm) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:abc",
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        "SHA256:" + "a" * 64,
        ":" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "x" * 10_000,
    ],
)
def test_malformed_digests_are_refused(value: str) -> None:
    with pytest.raises(DigestError) as caught:
        Digest.parse(value)
    assert not caught.value.unsupported


def test_unknown_algorithm_is_unsupported_not_malformed() -> None:
    with pytest.raises(DigestError) as caught:
        Digest.parse("md5:" + "a" * 32)
    assert caught.value.unsupported
    with pytest.raises(DigestError):
        new_hasher("md5")
