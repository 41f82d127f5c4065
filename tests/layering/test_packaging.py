"""The project installs as a package: every console script names a real ``main`` and the wheel
carries every top-level package the scripts and the service import."""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_points_at_a_main_function(script):
    module, function = SCRIPTS[script].split(":")
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, path


def test_wheel_carries_every_top_level_package_of_the_product():
    packaged = set(PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    scripts = {target.split(".")[0] for target in SCRIPTS.values()}
    assert scripts | {"modelcard"} <= packaged
    assert all((ROOT / package / "__init__.py").is_file() for package in packaged)
