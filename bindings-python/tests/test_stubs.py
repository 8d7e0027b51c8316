"""The type stubs (_native.pyi) name exactly what the native module has."""

import ast
from pathlib import Path

import polylock
from polylock import _native

STUB = Path(polylock.__file__).with_name("_native.pyi")


def stub_names():
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                item.name for item in node.body if isinstance(item, ast.FunctionDef)
            }
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = None
    return names


def test_stubs_match_the_native_module():
    stubs = stub_names()
    public = {n for n in dir(_native) if not n.startswith("__") or n == "__version__"}
    assert set(stubs) == public
    for cls, methods in stubs.items():
        if methods is None:
            continue
        runtime = {
            n for n in dir(getattr(_native, cls)) if not n.startswith("_") or n in ("__enter__", "__exit__", "__init__", "__iter__", "__next__")
        }
        stub_methods = methods - {"__init__"}
        assert stub_methods == runtime - {"__init__"}, cls


def test_package_is_typed():
    assert Path(polylock.__file__).with_name("py.typed").exists()
