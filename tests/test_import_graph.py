"""The package's import graph: no cycles (function-local imports count; only ``if TYPE_CHECKING:`` is exempt), and
each layer imports only the layers below it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "pix2pix_hub"
PACKAGE = PACKAGE_DIR.name

# Layer -> the package modules (and their submodules) it may import; a module's layer is its longest matching name.
# Every module of the package must fall in a layer (test_every_module_has_a_layer).
P = PACKAGE
FACTS = (f"{P}.constants", f"{P}.fileio", f"{P}.performance")
IMAGES = (*FACTS, f"{P}.images")
NETWORKS = (*FACTS, f"{P}.models")
# "Path or Hub id?" (hub.ids) sits with the model facts: data and the model card ask it too.
MODEL_FACTS = (*FACTS, f"{P}.hub.ids", f"{P}.hub.model_info")
# The pipeline layer: Pix2Pix and the engines it runs on; imports no data, training or command code.
PIPELINE = (*IMAGES, *NETWORKS, *MODEL_FACTS, f"{P}.hub.model_card", f"{P}.inference")
ALLOWED = {
    P: (*PIPELINE, f"{P}.hub"),  # the public face
    f"{P}.constants": (),
    f"{P}.fileio": (),
    f"{P}.performance": (),
    f"{P}.images": IMAGES,
    f"{P}.models": NETWORKS,
    f"{P}.hub.ids": FACTS,
    f"{P}.hub.model_info": MODEL_FACTS,
    f"{P}.hub.model_card": (*NETWORKS, *MODEL_FACTS),
    f"{P}.hub.space_build": (*MODEL_FACTS, f"{P}.hub.model_card"),
    f"{P}.hub.ort_web": FACTS,
    f"{P}.hub.static_space": (*PIPELINE, f"{P}.hub.ort_web", f"{P}.hub.space_build"),  # its push_space
    f"{P}.data": (*IMAGES, *MODEL_FACTS, f"{P}.data"),
    f"{P}.inference": tuple(m for m in PIPELINE if m != f"{P}.inference")
    + tuple(
        f"{P}.inference.{m}"
        for m in (
            "calibration",
            "export",
            "onnx_rewrite",
            "onnx_engine",
            "quantize",
            "speed_choice",
            "precision",
            "processor",
            "generate",
            "style",
        )
    ),
    f"{P}.inference.pipeline": PIPELINE,
    # Jobs over many files and datasets: the pipeline plus data.
    f"{P}.inference.batch": (*PIPELINE, f"{P}.data"),
    f"{P}.inference.evaluation": (*PIPELINE, f"{P}.data"),
    # The authors' layouts (what their keys say) know networks only; reading and converting is hub.authors.
    f"{P}.hub.authors_layout": NETWORKS,
    f"{P}.hub.authors": (*PIPELINE, f"{P}.hub"),
    # Training may use everything below the commands, but never the inference jobs.
    f"{P}.training": (*PIPELINE, f"{P}.data", f"{P}.training"),
    f"{P}.commands": (*PIPELINE, f"{P}.data", f"{P}.hub", f"{P}.training", f"{P}.commands"),
    f"{P}.cli": (*FACTS, f"{P}.commands"),
    f"{P}.train": (f"{P}.commands.train",),
    f"{P}.data.__main__": (f"{P}.cli",),  # `python -m pix2pix_hub.data` is `pix2pix-hub dataset check`
}


def layer_of(module: str) -> str | None:
    return max((name for name in ALLOWED if module == name or module.startswith(f"{name}.")), key=len, default=None)


def within(module: str, names: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in names)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, module level or inside functions, except those under ``if TYPE_CHECKING:``."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if is_type_checking_block(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            stack.append(child)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from .x import y`` counts ``x``, and ``x.y`` if a module)."""
    files = {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                targets = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            # A module's own parent packages are initialised before it anyway: not an edge.
            edges.update(t for t in targets if t in files and t != name and not name.startswith(f"{t}."))
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read_from_the_real_package():
    graph = import_graph()
    assert f"{PACKAGE}.models.unet" in graph[f"{PACKAGE}.models"]
    assert f"{PACKAGE}.constants" in graph[f"{PACKAGE}.models.layers"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        layer = layer_of(module)
        if layer is not None:
            wrong += [f"{module} -> {t}" for t in targets if not within(t, ALLOWED[layer])]
    return sorted(wrong)


def test_layers_import_only_what_lies_below_them():
    wrong = layer_violations(import_graph())
    assert not wrong, "imports across layers: " + ", ".join(wrong)


def test_a_network_importing_the_pipeline_is_a_violation():
    graph = {f"{P}.models.unet": {f"{P}.inference.pipeline", f"{P}.models.layers"}, f"{P}.cli": {f"{P}.commands"}}
    assert layer_violations(graph) == [f"{P}.models.unet -> {P}.inference.pipeline"]


def test_every_module_has_a_layer():
    assert [module for module in import_graph() if layer_of(module) is None] == []
    assert layer_of(f"{P}.training.step") == f"{P}.training" and layer_of(f"{P}.train") == f"{P}.train"


def test_function_local_imports_count_and_type_checking_ones_do_not():
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\ndef f():\n    import b\n"
    found = sorted(ast.unparse(node) for node in runtime_imports(ast.parse(code)))
    assert found == ["from typing import TYPE_CHECKING", "import b"]
