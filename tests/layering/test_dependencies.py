"""Dependencies run one way: training, the engine builder and the service all depend on
``modelcard``; the service never reaches into training or the builder, so serving needs neither
TensorFlow nor the dataset code, and a change to training cannot break a running service."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"modelcard", "training", "engine_builder", "service", "benchmarks"}
# package -> the project packages (or subpackages) it may import
ALLOWED = {
    "modelcard": {"modelcard"},
    "service": {"modelcard", "service"},
    "engine_builder": {"modelcard", "engine_builder", "service.backends.tensorrt", "training.datasets"},
    "training": {"modelcard", "training"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def project_imports(package: str) -> dict[str, set[str]]:
    """file -> the project modules it imports."""
    return {str(path.relative_to(ROOT)): {name for name in imported_modules(path)
                                          if name.split(".")[0] in PROJECT_PACKAGES}
            for path in sorted((ROOT / package).rglob("*.py"))}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_it_may(package):
    allowed = ALLOWED[package]
    offending = {file: sorted(name for name in names
                              if not any(name == a or name.startswith(a + ".") for a in allowed))
                 for file, names in project_imports(package).items()}
    assert not {file: names for file, names in offending.items() if names}


def test_the_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from training.datasets import get_dataset\n    import service.app\n")
    assert imported_modules(module) == {"training.datasets", "service.app"}


def loaded_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_serving_loads_no_training_code_and_no_tensorflow():
    modules = loaded_after("import service.app, service.__main__, service.backends.tensorrt.backend")
    assert "service.app" in modules
    assert not [m for m in modules if m.split(".")[0] in {"training", "engine_builder", "tensorflow", "keras"}]


def test_the_engine_builder_loads_no_tensorflow():
    modules = loaded_after("import engine_builder.cli, engine_builder.ensure_engines, engine_builder.report")
    assert "engine_builder.cli" in modules
    assert not [m for m in modules if m.split(".")[0] in {"training", "tensorflow", "keras"}]
