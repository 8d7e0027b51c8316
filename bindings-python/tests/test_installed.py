"""The suite tests the package a user installs: when run-tests.sh installed
the wheel (POLYLOCK_PYTHON_WHEEL, its path) into a fresh virtualenv, the
`polylock` imported here is that installation, not the source tree's
bindings-python/python/, and no Rust toolchain is on PATH."""

import importlib.metadata
import json
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

import polylock
import polylock._native
from conftest import INSTALLED_WHEEL, REPO

pytestmark = pytest.mark.skipif(
    not INSTALLED_WHEEL, reason="run-tests.sh sets POLYLOCK_PYTHON_WHEEL (the wheel it installed)"
)


def test_polylock_is_imported_from_the_installed_wheel():
    assert sys.prefix != sys.base_prefix, "not running in a virtualenv"
    site = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    source = (REPO / "bindings-python" / "python").resolve()
    for module in (polylock, polylock._native):
        path = Path(module.__file__).resolve()
        assert any(path.is_relative_to(dir) for dir in site), (path, site)
        assert not path.is_relative_to(source), path
    dist = importlib.metadata.distribution("polylock")
    # pip records where an installation came from (PEP 610).
    origin = json.loads(dist.read_text("direct_url.json"))
    assert origin["url"].endswith("/" + Path(INSTALLED_WHEEL).name), origin
    assert dist.metadata["License-Expression"] == "MIT OR Apache-2.0"
    assert Path(INSTALLED_WHEEL).name.startswith(f"polylock-{dist.version}-cp39-abi3-")


def test_no_rust_toolchain_on_path():
    assert [tool for tool in ("cargo", "rustc") if shutil.which(tool)] == []
