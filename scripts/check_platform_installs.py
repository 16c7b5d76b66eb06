#!/usr/bin/env python3
"""Check that proc-ml's dependencies install from binary wheels on every studio platform.

For Linux x86_64, Linux aarch64, macOS arm64, macOS x86_64 and Windows x86_64, and for
Python 3.10 and 3.11 (Houdini 20.5 and Blender 4.2+ run 3.11), this resolves

* ``base``: the ``[project] dependencies`` of pyproject.toml, and
* ``dcc``: the ``[dcc]`` extra (the inference set for Houdini / Blender Pythons), and
* ``dcc+numpy``: the same with numpy pinned to the DCCs' version (``--dcc-numpy``, default
  1.26.4, the numpy Blender 4.2 to 5.0 bundle), as docs/install.md tells DCC users to do,

with ``pip install --dry-run --report - --ignore-installed --only-binary=:all:
--platform ... --python-version ... --implementation cp --abi cpXY --target TMP``
against PyPI, and prints one table row per (platform, Python, set): whether it resolved,
which onnxruntime package and version, the numpy version, the number of wheels.

pip evaluates environment markers (``sys_platform``, ``platform_machine``) for the machine
it runs on, not for ``--platform``; so this script evaluates proc-ml's own markers for each
target itself (``packaging.markers``) and hands pip the requirements that apply. Markers of
transitive dependencies are still pip's host evaluation (today only tqdm's colorama on
Windows: see docs/install.md).

pip runs with no configuration file and no ``PIP_*`` variables, so a local mirror or
find-links folder cannot make a missing PyPI wheel look available. Needs network access.

    python scripts/check_platform_installs.py            # plain table
    python scripts/check_platform_installs.py --markdown # table for docs/install.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11")
SETS = ("base", "dcc", "dcc+numpy")
DCC_NUMPY = "1.26.4"


def _manylinux(arch: str) -> tuple[str, ...]:
    """glibc 2.17 (manylinux2014) .. 2.35: a current distribution such as Rocky 9 / Ubuntu 22."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(35, 16, -1)]
    return (*tags, f"manylinux2014_{arch}")


def _macos(arch: str, first: int, last: int = 15) -> tuple[str, ...]:
    versions = [(v, 0) for v in range(last, 10, -1)] + ([(10, m) for m in range(16, 8, -1)]
                                                       if first == 10 else [])
    return tuple(tag for major, minor in versions
                 for tag in (f"macosx_{major}_{minor}_{arch}", f"macosx_{major}_{minor}_universal2"))


@dataclass(frozen=True)
class Target:
    name: str
    sys_platform: str
    platform_machine: str
    platform_system: str
    os_name: str
    tags: tuple[str, ...]

    def environment(self, python: str) -> dict:
        env = default_environment()
        env.update(python_version=python, python_full_version=f"{python}.0",
                   sys_platform=self.sys_platform, platform_machine=self.platform_machine,
                   platform_system=self.platform_system, os_name=self.os_name,
                   implementation_name="cpython", platform_python_implementation="CPython",
                   platform_release="", platform_version="")
        return env


TARGETS = (
    Target("Linux x86_64", "linux", "x86_64", "Linux", "posix", _manylinux("x86_64")),
    Target("Linux aarch64", "linux", "aarch64", "Linux", "posix", _manylinux("aarch64")),
    Target("macOS arm64", "darwin", "arm64", "Darwin", "posix", _macos("arm64", 11)),
    Target("macOS x86_64", "darwin", "x86_64", "Darwin", "posix", _macos("x86_64", 10)),
    Target("Windows x86_64", "win32", "AMD64", "Windows", "nt", ("win_amd64",)),
)


def requirement_sets(pyproject: Path = REPO / "pyproject.toml",
                     dcc_numpy: str = DCC_NUMPY) -> dict[str, list[str]]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    dcc = list(project["optional-dependencies"]["dcc"])
    return {"base": list(project["dependencies"]), "dcc": dcc,
            "dcc+numpy": [*dcc, f"numpy=={dcc_numpy}"]}


def applicable(requirements: list[str], target: Target, python: str) -> list[str]:
    """The requirements whose markers hold on ``target`` / ``python``, without the markers."""
    env = target.environment(python)
    chosen = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        req.marker = None
        chosen.append(str(req))
    return chosen


def pip_command(requirements: list[str], target: Target, python: str, dest: str) -> list[str]:
    abi = "cp" + python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", "-", "--only-binary=:all:", "--target", dest, "--python-version", python,
           "--implementation", "cp", "--abi", abi, "--no-input", "--disable-pip-version-check"]
    for tag in target.tags:
        cmd += ["--platform", tag]
    return cmd + requirements


def clean_env() -> dict:
    """No pip configuration: PyPI only (a local mirror must not hide a missing wheel)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    cert = next((os.environ[k] for k in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
                 if os.environ.get(k)), None)
    if cert:                      # a site CA bundle (TLS-inspecting proxy) still applies
        env["PIP_CERT"] = cert
    return env


@dataclass
class Result:
    target: str
    python: str
    set_name: str
    ok: bool
    onnxruntime: str = ""
    numpy: str = ""
    wheels: int = 0
    error: str = ""


def resolve(target: Target, python: str, set_name: str, requirements: list[str]) -> Result:
    wanted = applicable(requirements, target, python)
    with tempfile.TemporaryDirectory() as dest:
        proc = subprocess.run(pip_command(wanted, target, python, dest), capture_output=True,
                              text=True, env=clean_env(), timeout=900)
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
        return Result(target.name, python, set_name, False, error=errors[0] if errors else "failed")
    report = json.loads(proc.stdout)
    installs = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in report["install"]}
    ort = next((f"{name} {installs[name]}" for name in ("onnxruntime-gpu", "onnxruntime")
                if name in installs), "-")
    return Result(target.name, python, set_name, True, ort, installs.get("numpy", "-"),
                  len(installs))


def pip_version() -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True,
                         text=True, env=clean_env()).stdout.split()
    return out[1] if len(out) > 1 else "?"


def table(results: list[Result], markdown: bool) -> str:
    header = ("platform", "Python", "set", "result", "onnxruntime", "numpy", "wheels")
    rows = [(r.target, r.python, r.set_name, "ok" if r.ok else f"FAILED: {r.error}",
             r.onnxruntime, r.numpy, str(r.wheels) if r.ok else "") for r in results]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in (header, *rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", nargs="+", default=list(PYTHONS), help="Python versions")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--jobs", type=int, default=4, help="pip runs at once (network bound)")
    parser.add_argument("--dcc-numpy", default=DCC_NUMPY, help="numpy of the dcc+numpy set")
    args = parser.parse_args(argv)

    sets = requirement_sets(dcc_numpy=args.dcc_numpy)
    jobs = [(t, py, name) for t in TARGETS for py in args.python for name in SETS]
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda job: resolve(*job, sets[job[2]]), jobs))
    print(f"proc-ml install check, {datetime.date.today().isoformat()}, pip {pip_version()}, "
          f"Python {sys.version.split()[0]} on {sys.platform}, PyPI, binary wheels only")
    print(table(results, args.markdown))
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} combinations did not resolve", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
