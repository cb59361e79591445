import pytest

from portside.api.v2.blobs import parse_range
from portside.oci.errors import ErrorCode, RegistryError
from portside.registry.uploads import ContentRange, parse_content_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=90-1000", (90, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("garbage", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=9-3", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(header: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_range(header, 100)
    assert caught.value.status == 416
    assert caught.value.headers["Content-Range"] == "bytes */100"


def test_content_range() -> None:
    assert parse_content_range("0-99") == ContentRange(0, 99)
    assert parse_content_range("bytes 10-19/*").length == 10
    for bad in ["", "5", "9-3", "-1-5", "a-b", "1-2-3", "99999999999999999999-1"]:
        with pytest.raises(RegistryError) as caught:
            parse_content_range(bad)
        assert caught.value.code is ErrorCode.RANGE_INVALID
