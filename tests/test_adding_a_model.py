"""The README's "Adding a model" recipe, followed word for word, gives a working model."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import app.models
from app.config import PROJECT_ROOT
from app.models import model_interface
from tests.conftest import image_bytes, register_and_log_in, upload


def recipe() -> str:
    """The README's "Adding a model" section."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n### Adding a model\n", 1)[1].split("\n## ", 1)[0]


def recipe_blocks() -> list[str]:
    """The python blocks of the recipe, de-indented."""
    blocks = re.findall(r"\n( *)```python\n(.*?)\n *```", recipe(), flags=re.DOTALL)
    return [
        "\n".join(line.removeprefix(indent) for line in code.splitlines())
        for indent, code in blocks
    ]


def test_a_model_added_as_the_readme_says_is_listed_and_serves(
    make_client: Callable[..., TestClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_code, registry_code = recipe_blocks()
    # Step 1: the new file in app/models/ (a folder of this test's, searched by the package).
    file_name = re.search(r"`app/models/(\w+\.py)`", recipe())
    assert file_name is not None
    (tmp_path / file_name.group(1)).write_text(model_code, encoding="utf-8")
    monkeypatch.setattr(app.models, "__path__", [*app.models.__path__, str(tmp_path)])
    # Step 2: the one registry line, read from the README's registry.
    namespace: dict[str, dict[str, str]] = {}
    exec(registry_code, namespace)
    added = set(namespace["MODEL_REGISTRY"]) - set(model_interface.MODEL_REGISTRY)
    [name] = added
    monkeypatch.setitem(model_interface.MODEL_REGISTRY, name, namespace["MODEL_REGISTRY"][name])

    # Step 3: use it by name, and as the default model.
    client = make_client(inference={"default_model": name})
    owner = register_and_log_in(client)
    models = client.get("/models", headers=owner.headers)
    assert models.status_code == 200, models.text
    [listed] = [m for m in models.json() if m["name"] == name]
    assert listed["default"] and listed["loaded"] and listed["num_labels"] is None
    dark = upload(client, owner, image_bytes(color=(10, 10, 10)))
    light = upload(client, owner, image_bytes(color=(250, 250, 250)))
    by_name = client.post(
        "/images/inference",
        headers=owner.headers,
        json={"image_id": dark["id"], "model_name": name},
    )
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["label"] == "dark"
    by_default = client.post(
        "/images/inference", headers=owner.headers, json={"image_id": light["id"]}
    )
    assert by_default.json()["model_name"] == name
    assert by_default.json()["label"] == "light"
