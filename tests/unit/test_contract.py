"""The contract between server and worker is ps/api, and the dependency runs one way.

Held both by reading the imports (every `import`, at any depth) and by importing the modules in a fresh
interpreter and looking at what got loaded.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ps_imports(path: Path) -> set[str]:
    """The ps modules a file imports (absolute; relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == "ps" or m.startswith("ps.")}


def loaded_after(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code + "; import json, sys; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def outside_api(modules) -> list[str]:
    return sorted(m for m in modules if (m == "ps" or m.startswith("ps.")) and m != "ps"
                  and m != "ps.api" and not m.startswith("ps.api."))


def test_the_worker_imports_nothing_of_ps_but_its_api():
    for path in sorted((ROOT / "worker").rglob("*.py")):
        assert outside_api(ps_imports(path)) == [], f"{path.relative_to(ROOT)} imports server modules"


def test_ps_api_imports_no_other_ps_module_and_no_torch():
    for path in sorted((ROOT / "ps" / "api").rglob("*.py")):
        assert outside_api(ps_imports(path)) == [], f"{path.relative_to(ROOT)} imports server modules"
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "ps" / "api").rglob("*.py")
               if p.name != "__init__.py"]
    loaded = loaded_after("import " + ", ".join(modules))
    assert "torch" not in loaded
    assert outside_api(loaded) == []


def test_a_running_worker_loads_no_server_module():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "worker").rglob("*.py")
               if p.name != "__init__.py"]
    assert outside_api(loaded_after("import " + ", ".join(modules))) == []


def test_the_server_never_imports_torch():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "ps").rglob("*.py")
               if p.name != "__init__.py"]
    assert "torch" not in loaded_after("import " + ", ".join(modules))
