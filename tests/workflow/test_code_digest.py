"""workflow/scripts/code_digest.py: what reruns training is what the results depend on, the kernels and the
built extension included (was: `*.cpp`/`*.cu` under pyrobust/, where there are none)."""

import importlib.util
import subprocess
import sys

import pytest
from workflow_helpers import ROOT

SCRIPT = ROOT / "workflow/scripts/code_digest.py"


@pytest.fixture(scope="module")
def code_digest():
    spec = importlib.util.spec_from_file_location("code_digest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root, kernels=True):
    """A checkout's layout in miniature: pyrobust/ (with a cache and the built extension), kernels/."""
    package = root / "pyrobust"
    (package / "experiment").mkdir(parents=True)
    (package / "__pycache__").mkdir()
    (package / "__init__.py").write_text("")
    (package / "experiment" / "report.py").write_text("# the report\n")
    (package / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (package / "_C.so").write_bytes(b"\x7fELF built")
    if kernels:
        (root / "kernels" / "cpu").mkdir(parents=True)
        (root / "kernels" / "ops.cpp").write_text("// schemas\n")
        (root / "kernels" / "cpu" / "corrected_ce.cpp").write_text("// kernel\n")
    return package


def changed(digest, path, content=b"\n// changed\n"):
    before = digest()
    original = path.read_bytes()
    path.write_bytes(original + content)
    after = digest()
    path.write_bytes(original)
    assert digest() == before
    return after != before


def test_a_checkout_s_kernels_and_the_built_extension_rerun_training_caches_and_the_report_do_not(
    code_digest, tmp_path
):
    package = tree(tmp_path)
    extension = package / "_C.so"
    digest = lambda: code_digest.training_digest(package, exclude={"experiment/report.py"}, extension=extension)
    assert code_digest.kernel_folder(package) == tmp_path / "kernels"
    assert changed(digest, tmp_path / "kernels" / "cpu" / "corrected_ce.cpp")
    assert changed(digest, tmp_path / "kernels" / "ops.cpp")
    assert changed(digest, extension)  # a rebuild against another torch, another compiler
    assert changed(digest, package / "__init__.py")
    assert not changed(digest, package / "experiment" / "report.py")
    assert not changed(digest, package / "__pycache__" / "x.pyc")
    (tmp_path / "kernels" / ".corrected_ce.cpp.x.tmp").write_text("an editor's or a writer's temporary file")
    assert digest() == code_digest.training_digest(package, exclude={"experiment/report.py"}, extension=extension)


def test_an_installed_package_is_known_by_its_extension(code_digest, tmp_path):
    package = tree(tmp_path, kernels=False)
    assert code_digest.kernel_folder(package) is None
    digest = lambda: code_digest.training_digest(package, extension=package / "_C.so")
    assert changed(digest, package / "_C.so")


def test_the_sources_of_a_checkout_leave_out_build_products(code_digest, tmp_path):
    package = tree(tmp_path)
    digest = lambda: code_digest.sources_digest(tmp_path)
    assert changed(digest, tmp_path / "kernels" / "cpu" / "corrected_ce.cpp")
    assert not changed(digest, package / "_C.so")  # the environment that built it has its own


def test_the_extension_is_found_without_importing_torch():
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import code_digest; "
        "path = code_digest.extension_file(); print(path.name if path else None, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    name, torch_imported = result.stdout.split()
    assert torch_imported == "False"
    built = list((ROOT / "pyrobust").glob("_C.*"))
    assert name == (built[0].name if built else "None")
