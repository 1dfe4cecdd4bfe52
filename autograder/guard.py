"""Make a test's verdict hard to forge from inside the student's kernel.

The grader arms every notebook before running it:

* a *guard cell* runs first, before any student code, and takes a snapshot of what the
  tests rely on: builtins, ``time``, parts of ``sys``, ``threading``, ``inspect``,
  ``importlib.util``, ``anyio``, every module of the course library and the methods of
  its classes, and IPython's machinery for showing errors and running cells;
* each test cell starts by comparing the kernel with that snapshot (a changed item
  fails the test and says what changed) and ends by printing a secret drawn afresh
  for every grading. A test passes only if it printed its secret and showed no error;
  hiding the error (an overridden ``showtraceback``, say) also hides the secret.

What this does not stop: code that searches the kernel for the guard itself and
replaces it, or rewrites cells through tools the snapshot does not cover. Those
attacks are deliberate; the OS-level confinement (:mod:`.sandbox`) still keeps the
solutions out of reach.
"""

from __future__ import annotations

import copy
import re
import secrets

import nbformat
from nbformat import NotebookNode

from autograder.assemble import grade_id, is_test

GUARD_TAG = "grader-guard"
TAMPERED = "GradingEnvironmentChanged"
NAME_PREFIX = "_grader_guard_"
# What a test says when a student's cell wiped the guard out of the namespace.
WIPED = (
    "This test cannot be trusted, so it scores 0: code run before it removed the "
    "notebook's variables (%reset, or del of everything), the grader's own check among them."
)

_GUARD_CELL = """
def _make_guard():
    import builtins, gc, importlib, importlib.util, inspect, logging, pkgutil, sys
    import threading, time, warnings
    import anyio, sniffio
    import concurrent_burgers
    from IPython import get_ipython

    shell = get_ipython()
    # The guard's own tools, taken before any student code runs.
    any_, getattr_, len_, list_, set_, sorted_, type_, vars_, zip_ = (
        any, getattr, len, list, set, sorted, type, vars, zip)
    Exception_ = Exception
    gc_collect, catch_warnings, ignore = gc.collect, warnings.catch_warnings, warnings.simplefilter
    asyncio_log = logging.getLogger("asyncio")
    modules = {"builtins": builtins, "importlib.util": importlib.util, "inspect": inspect,
               "threading": threading, "time": time, "anyio": anyio, "sniffio": sniffio}
    for info in pkgutil.iter_modules(concurrent_burgers.__path__, "concurrent_burgers."):
        modules[info.name] = importlib.import_module(info.name)  # props and probes
    # The kernel itself swaps builtins.input (and sys.excepthook) for every cell.
    watched = {name: {k: v for k, v in vars(m).items()
                      if not k.startswith("_") and (name, k) != ("builtins", "input")}
               for name, m in modules.items()}
    # Methods of the course's own classes (a patched PracticeShop.pick_up, say).
    for name, module in list(modules.items()):
        if name.startswith("concurrent_burgers."):
            for cls_name, cls in list(watched[name].items()):
                if isinstance(cls, type) and cls.__module__ == name:
                    modules[f"{name}.{cls_name}"] = cls
                    watched[f"{name}.{cls_name}"] = dict(vars(cls))
    sys_names = ("displayhook", "stdout", "stderr", "settrace", "gettrace", "setprofile",
                 "getprofile", "modules")
    sys_items = {k: getattr(sys, k) for k in sys_names}
    shell_names = ("showtraceback", "_showtraceback", "showsyntaxerror", "run_cell",
                   "run_cell_async", "run_code", "run_ast_nodes", "transform_cell",
                   "CustomTB", "custom_exceptions", "InteractiveTB", "SyntaxTB",
                   "displayhook", "display_pub", "events")
    missing = object()
    # Methods are looked up on the class (a bound method is a new object every time);
    # anything set on the instance itself is compared as it is.
    shell_items = {k: vars(shell).get(k, missing) for k in shell_names}
    class_items = {k: getattr(type(shell), k, missing) for k in shell_names}
    hooks = {"input transformers": list(shell.input_transformers_cleanup)
             + list(shell.input_transformers_post),
             "AST transformers": list(shell.ast_transformers),
             "pre-run hooks": list(shell.events.callbacks["pre_run_cell"])
             + list(shell.events.callbacks["pre_execute"])}
    in_sys_modules = {name: sys.modules.get(name) for name in modules if name in sys.modules}

    def changes():
        found = []
        for name, module in modules.items():
            if name in in_sys_modules and sys.modules.get(name) is not in_sys_modules[name]:
                found.append(f"the module {name} was replaced")
            now = vars_(module)
            found += [f"{name}.{k}" for k, v in watched[name].items()
                      if now.get(k, missing) is not v]
        found += [f"sys.{k}" for k, v in sys_items.items() if getattr_(sys, k, missing) is not v]
        found += [f"IPython's {k}" for k, v in shell_items.items()
                  if vars_(shell).get(k, missing) is not v]
        found += [f"IPython's {k}" for k, v in class_items.items()
                  if getattr_(type_(shell), k, missing) is not v]
        now_hooks = {"input transformers": list_(shell.input_transformers_cleanup)
                     + list_(shell.input_transformers_post),
                     "AST transformers": list_(shell.ast_transformers),
                     "pre-run hooks": list_(shell.events.callbacks["pre_run_cell"])
                     + list_(shell.events.callbacks["pre_execute"])}
        found += [f"IPython's {k}" for k, v in hooks.items()
                  if len_(now_hooks[k]) != len_(v)
                  or any_(a is not b for a, b in zip_(now_hooks[k], v))]
        if sys.gettrace() is not None or sys.getprofile() is not None:
            found.append("a trace or profile function")
        return found

    def sweep():
        # Garbage that earlier cells left (a task whose error nobody retrieved, a coroutine
        # never awaited) reports itself on stderr whenever it is collected: collect it now,
        # quietly, so that it never lands in a test at a moment chosen by the collector.
        was = asyncio_log.disabled
        asyncio_log.disabled = True
        try:
            with catch_warnings():
                ignore("ignore")
                gc_collect()
        finally:
            asyncio_log.disabled = was

    def guard(test_id):
        sweep()
        found = changes()
        if found:
            error = type_("GradingEnvironmentChanged", (Exception_,), {})
            raise error(
                "This test cannot be trusted, so it scores 0: code run before it changed "
                + ", ".join(sorted_(set_(found))[:5])
                + ". Tests rely on Python and the course library working normally; "
                "remove the code that replaces them."
            )

    return guard


GUARD_NAME = _make_guard()
del _make_guard
"""


def arm(nb: NotebookNode) -> tuple[NotebookNode, str]:
    """A copy of ``nb`` with the guard cell first and every test cell wrapped.

    Returns the armed notebook and the secret its test cells print when they finish.
    """
    secret = secrets.token_hex(16)
    name = f"{NAME_PREFIX}{secrets.token_hex(4)}"
    armed = copy.deepcopy(nb)
    for cell in armed.cells:
        if is_test(cell):
            done = f"{secret}:{grade_id(cell)}"
            cell.source = f"{name}({grade_id(cell)!r})\n{cell.source}\nprint({done!r})"
    guard = nbformat.v4.new_code_cell(_GUARD_CELL.replace("GUARD_NAME", name).strip())
    guard.metadata["tags"] = [GUARD_TAG]
    armed.cells.insert(0, guard)
    return armed, secret


def finished(cell: NotebookNode, secret: str) -> bool:
    """Whether a test cell printed its secret, i.e. ran to its last line."""
    expected = f"{secret}:{grade_id(cell)}"
    return any(
        out.output_type == "stream" and out.name == "stdout" and expected in out.text
        for out in cell.get("outputs", [])
    )


def disarm(nb: NotebookNode, secret: str) -> NotebookNode:
    """The executed notebook without the guard: as the student's feedback shows it."""
    clean = copy.deepcopy(nb)
    clean.cells = [c for c in clean.cells if GUARD_TAG not in c.metadata.get("tags", [])]
    line = re.compile(rf"^{secret}:[^\n]*\n?", re.M)
    for cell in clean.cells:
        if not is_test(cell):
            continue
        lines = cell.source.split("\n")
        if lines and lines[0].startswith(NAME_PREFIX):
            lines = lines[1:]
        if lines and secret in lines[-1]:
            lines = lines[:-1]
        cell.source = "\n".join(lines)
        outputs = []
        for out in cell.get("outputs", []):
            if out.output_type == "error" and NAME_PREFIX in out.get("evalue", ""):
                # The guard itself was wiped (%reset): say so, without naming the guard.
                out.ename, out.evalue, out.traceback = TAMPERED, WIPED, [f"{TAMPERED}: {WIPED}"]
            if out.output_type == "stream":
                out.text = line.sub("", out.text)
                if not out.text:
                    continue
            outputs.append(out)
        cell.outputs = outputs
    return clean
