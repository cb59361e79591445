import pytest

from portside.oci.errors import RegistryError
from portside.oci.names import is_tag, validate_name


@pytest.mark.parametrize("name", ["a", "library/alpine", "a-b/c__d/e.f", "x--y", "a" * 255])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "a/", "/a", "a//b", "a/../b", "..", "a_", "-a", "a b", "a" * 256, "a:b"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError):
        validate_name(name)


def test_tags() -> None:
    assert is_tag("latest") and is_tag("_x") and is_tag("1.0-rc_1") and is_tag("a" * 128)
    assert not is_tag("") and not is_tag(".x") and not is_tag("-x") and not is_tag("a" * 129)
    assert not is_tag("a/b") and not is_tag("a:b")
