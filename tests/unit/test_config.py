import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from portside.config import ConfigError, Settings, load_settings

DOCS = Path(__file__).parents[2] / "docs"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_key_is_documented_and_every_documented_key_exists() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.0-9]+)` \|", text, re.MULTILINE))
    assert documented == set(_keys(Settings))


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_yaml_example_in_the_docs_loads(doc: Path, tmp_path: Path) -> None:
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.DOTALL)):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        settings = load_settings(path)
        assert settings.model_dump(exclude_unset=True)
        assert yaml.safe_load(block)


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings()
    assert settings.storage.driver == "filesystem"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("portside-data/portside.db")
    assert settings.server.port == 5000


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 6000\n  host: 127.0.0.1\n")
    monkeypatch.setenv("PORTSIDE_SERVER__PORT", "7000")
    settings = load_settings(path)
    assert settings.server.port == 7000
    assert settings.server.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("server:\n  port: 70000\n", "server.port"),
        ("storage:\n  driver: floppy\n", "storage.driver"),
        ("storage:\n  driver: s3\n", "storage"),
        ("log:\n  level: loud\n", "log.level"),
        ("registry:\n  max_manifest_bytes: nope\n", "registry.max_manifest_bytes"),
        ("server:\n  tls_cert: /x.pem\n", "server"),
        ("sever:\n  port: 1\n", "sever"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, content: str, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"\n  {key}" in str(caught.value)


def test_unreadable_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(bad)
