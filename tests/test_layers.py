"""The imports point down the layers of docs/layout.rst, and nothing imports round in a circle.

The table of layers is :data:`tests.layers.PLACES`; a new module must be placed there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import layers


@pytest.fixture(scope="module")
def drawing() -> layers.Drawing:
    return layers.draw()


def test_every_module_is_placed_on_a_layer(drawing: layers.Drawing) -> None:
    missing = layers.unplaced(drawing)
    assert not missing, (
        "modules not placed on a layer (add them to PLACES in tests/layers.py, see "
        "docs/layout.rst): " + ", ".join(missing)
    )


def test_no_import_points_up_a_layer(drawing: layers.Drawing) -> None:
    found = [layers.describe(arrow, drawing) for arrow in layers.upward(drawing)]
    assert not found, "imports from a lower layer to a higher one:\n" + "\n".join(found)


def test_no_modules_import_each_other_in_a_circle(drawing: layers.Drawing) -> None:
    found = [" <-> ".join(group) for group in layers.circles(drawing)]
    assert not found, "circles of imports:\n" + "\n".join(found)


def test_the_table_names_known_layers_only() -> None:
    assert set(layers.PLACES.values()) <= set(layers.LAYERS)


def test_the_drawing_finds_the_library_and_its_tools(drawing: layers.Drawing) -> None:
    for name in ("wintun_cffi", "wintun_cffi.api", "wintun_cffi.platform.loader", "emulator.host"):
        assert name in drawing.files
    assert ("wintun_cffi.session", "wintun_cffi.packets") in drawing.edges
    assert "build_ffi" in drawing.files and "ffigen.build" in drawing.files


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_is_found_wherever_it_is(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "wintun_cffi/__init__.py": "",
            "wintun_cffi/api.py": "",
            "wintun_cffi/session.py": "",
            "wintun_cffi/constants.py": (
                "from typing import TYPE_CHECKING\n"
                "from . import api\n"
                "def f():\n"
                "    from wintun_cffi.session import Session\n"
                "if TYPE_CHECKING:\n"
                "    import wintun_cffi.api\n"
            ),
        },
    )
    drawing = layers.draw(root)
    found = [(a.source, a.target, a.line, a.typing) for a in layers.upward(drawing)]
    assert found == [
        ("wintun_cffi.constants", "wintun_cffi.api", 2, False),
        ("wintun_cffi.constants", "wintun_cffi.session", 4, False),
        ("wintun_cffi.constants", "wintun_cffi.api", 6, True),
    ]
    assert layers.describe(layers.upward(drawing)[0], drawing) == (
        "wintun_cffi/constants.py:2: wintun_cffi.constants (foundation) imports "
        "wintun_cffi.api (api)"
    )


def test_a_circle_and_an_unplaced_module_are_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "wintun_cffi/__init__.py": "",
            "wintun_cffi/api.py": "from .session import Session\n",
            "wintun_cffi/session.py": "def f():\n    from . import api\n",
            "wintun_cffi/packets.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from .session import Session\n"
            ),
            "wintun_cffi/newcomer.py": "",
        },
    )
    drawing = layers.draw(root)
    # A type-checking import back makes no circle; an import inside a function does.
    assert layers.circles(drawing) == [["wintun_cffi.api", "wintun_cffi.session"]]
    assert layers.unplaced(drawing) == ["wintun_cffi.newcomer"]
    assert layers.levels(drawing) == 1
    report = layers.report(drawing)
    assert "circles: 1" in report
    assert "not placed: wintun_cffi.newcomer (wintun_cffi/newcomer.py)" in report
