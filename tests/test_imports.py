"""Layers point one way: `models/` imports nothing from `utils/`, no module imports itself back through others
(every import counts, those inside functions too), no module edits sys.path, and no code outside `models/`
asks which family it holds; the Ray probe that every node imports starts no framework."""

import ast
import re
import subprocess
import sys

from conftest import REPO

PACKAGES = ("models", "utils")
TOP_LEVEL = ("train", "train_vae", "evaluate", "generate", "run_experiments")


def project_modules():
    """{module name: path} of every Python file of the project (tests excluded)."""
    found = {}
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[0] in ("tests", "run") or any(p.startswith(".") for p in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path, modules):
    """Project modules that `path` imports, anywhere in the file. `from pkg import mod` imports `pkg.mod`
    (and, as every import of a submodule does, runs the package's __init__, which is not counted: it would
    make every package whose __init__ gathers its modules a cycle); `from pkg import name` imports `pkg`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in modules else node.module)
    return {n for n in names if n in modules}


def import_graph():
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(module):
    """The package a module belongs to, as the import rules see it."""
    return module.split(".")[0]


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "models.base" in graph["models.VAE"]  # a top-level `from models.base import ...`
    assert "models.gelu_tf" in graph["models.activations"]  # an import inside a method
    assert "utils.experiments.ray_backend" in graph["utils.experiments.runner"]  # inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_models_import_nothing_from_utils_or_the_commands():
    graph = import_graph()
    upward = {m: sorted(i for i in imports if package_of(i) != "models")
              for m, imports in graph.items() if package_of(m) == "models"}
    assert {m: i for m, i in upward.items() if i} == {}


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def subpackage_of(module):
    """`utils.training` for `utils.training.run`; other modules stand for themselves."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "utils" and len(parts) > 2 else module


def test_no_import_cycles_between_the_sub_packages_of_utils():
    graph = {}
    for module, imports in import_graph().items():
        if module.startswith("utils."):
            graph.setdefault(subpackage_of(module), set()).update(
                subpackage_of(i) for i in imports if i.startswith("utils.") and subpackage_of(i) != subpackage_of(module))
    assert "utils.analysis" in graph["utils.training"]  # the graph is not empty: training scores and draws
    assert find_cycle(graph) is None


def test_no_module_edits_sys_path():
    edits = [str(path.relative_to(REPO)) for path in [*project_modules().values(), *REPO.glob("tests/*.py")]
             if "sys.path" in path.read_text() and path.name != "test_imports.py"]
    assert edits == []


def test_no_family_name_is_compared_outside_models():
    comparison = re.compile(r"""family\s*(==|!=|in)\s*\(?["']|["']\s*(==|!=)\s*\w*family\b""")
    offenders = [f"{path.relative_to(REPO)}:{number}" for name, path in project_modules().items()
                 if package_of(name) != "models" for number, line in enumerate(path.read_text().splitlines(), 1)
                 if comparison.search(line)]
    assert offenders == []


def test_the_ray_probe_imports_no_framework():
    """Every Ray node imports the probe's module to run it: it must not start Keras or a backend."""
    done = subprocess.run([sys.executable, "-c", "import sys, utils.experiments.ray_probe; "
                           "print(sorted({'keras', 'tensorflow', 'jax', 'torch', 'numpy'} & set(sys.modules)))"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
