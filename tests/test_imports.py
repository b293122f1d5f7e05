"""The import graph: no module reaches itself again through what it imports, and importing
any module of the project connects to nothing (clients are built by `build_runtime` alone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import grimp

PACKAGES = ("core", "routing", "ivr", "outbound", "web")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(
                        child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_goes_round_in_a_circle() -> None:
    """Also through function-level imports, and between a package and its own modules (which
    import-linter's acyclic_siblings contract does not look at)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "d"):
        graph.add_module(name)
    graph.add_import(importer="a", imported="a.b")
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a")
    graph.add_import(importer="a.c", imported="d")
    assert _cycles(graph) == [["a", "a.b", "a.c"]]


#: Run in a fresh interpreter: every connection or datagram tried while importing is counted
#: and refused. (Libraries may make a socket without using it: urllib3 binds one to ::1 to
#: learn whether the host has IPv6.)
NO_SOCKETS = textwrap.dedent("""
    import importlib, pkgutil, socket, sys

    tried = []

    class Refused(socket.socket):
        def _refuse(self, *args, **kwargs):
            tried.append(args)
            raise OSError("a connection was tried on import")

        connect = connect_ex = send = sendall = sendto = sendmsg = _refuse

    socket.socket = Refused
    socket.create_connection = lambda address, *args, **kwargs: Refused().connect(address)
    names = []
    for package in sys.argv[1:]:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if info.name.startswith("core.migrations"):  # Alembic's scripts, run by Alembic
                continue
            importlib.import_module(info.name)
            names.append(info.name)
    print(len(names), "modules;", len(tried), "connections")
""")


def test_importing_every_module_connects_to_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", NO_SOCKETS, *PACKAGES], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    count = int(done.stdout.split()[0])
    assert count > 100 and done.stdout.strip().endswith(" 0 connections"), done.stdout
