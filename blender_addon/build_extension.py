#!/usr/bin/env python3
"""Build the proc-ml Building Parts extension for Blender 4.2+ with its Python wheels inside.

Blender 4.2+ extensions carry their third-party Python packages as wheels listed in
``blender_manifest.toml`` (``wheels = ["./wheels/....whl"]``, with ``platforms = [...]``
naming the platforms they cover); Blender installs them into the extensions'
``site-packages`` when the extension is installed, choosing the wheels that match its own
platform and Python ("Python Wheels" in the Blender manual's extension docs:
https://docs.blender.org/manual/en/latest/advanced/extensions/python_wheels.html, and the
manifest reference: .../extensions/getting_started.html#manifest).

For every platform asked for, this script

1. builds proc-ml itself as a wheel from this checkout (``pip wheel --no-deps``);
2. downloads, with ``pip download --only-binary=:all: --platform ... --python-version ...``,
   what proc-ml's inference path needs besides Blender's own packages: the ``[dcc]`` extra of
   pyproject.toml with the CPU ``onnxruntime`` build (CUDA wheels are hundreds of MB) and
   without numpy, which Blender bundles (numpy 1.26.4 in Blender 4.2 to 5.0 on Python 3.11,
   numpy 2.x in Blender 5.1+ on Python 3.13: the download is resolved against that numpy so
   nothing needs another one, then numpy's wheel is dropped);
3. copies the add-on, puts the wheels in ``wheels/``, writes ``wheels`` and ``platforms``
   into its ``blender_manifest.toml``, and zips it as ``proc_ml_parts-<version>-<platform>.zip``
   (Blender's ``--split-platforms`` naming), manifest at the archive root.

``--validate`` then runs Blender's own validator on each zip: ``blender --command extension
validate`` with ``--blender``, else the same code (``bl_pkg/cli/blender_ext.py``) from the
``bpy`` module when it is importable.

    python blender_addon/build_extension.py                          # this platform
    python blender_addon/build_extension.py --platform linux-x64 --platform windows-x64
    python blender_addon/build_extension.py --all --validate --blender /opt/blender/blender

Install the zip with Edit > Preferences > Get Extensions > Install from Disk (docs/blender.md).
"""

from __future__ import annotations

import argparse
import os
import platform as platform_module
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ADDON = HERE / "proc_ml_parts"
DIST = REPO / "dist" / "blender"


def _manylinux(arch: str, newest: int = 28) -> tuple[str, ...]:
    """glibc 2.17 .. 2.28: Blender 4.2+ needs glibc 2.28, so its wheels may too, no newer."""
    return (*(f"manylinux_2_{m}_{arch}" for m in range(newest, 16, -1)), f"manylinux2014_{arch}")


def _macos(arch: str, newest: int, oldest: tuple[int, int]) -> tuple[str, ...]:
    versions = [(major, 0) for major in range(newest, 10, -1)]
    if oldest[0] == 10:
        versions += [(10, minor) for minor in range(16, oldest[1] - 1, -1)]
    return tuple(tag for major, minor in versions
                 for tag in (f"macosx_{major}_{minor}_{arch}", f"macosx_{major}_{minor}_universal2"))


#: oldest macOS the macOS zips must run on: Blender ignores a wheel's macOS version when it
#: installs it, so no wheel built for a newer macOS may go in. 13.0 keeps onnxruntime wheels
#: for both Blender Pythons (there are no Python 3.13 wheels for macOS 11 / 12); --macos 11.0
#: with --python 3.11 reaches older Macs, --macos 14.0 the newest onnxruntime.
DEFAULT_MACOS = "13.0"


def platform_tags(platform: str, macos: str = DEFAULT_MACOS) -> tuple[str, ...]:
    """The wheel platform tags pip may use for a Blender platform."""
    newest = int(str(macos).split(".")[0])
    return {"linux-x64": _manylinux("x86_64"),
            "windows-x64": ("win_amd64",),
            "windows-arm64": ("win_arm64",),
            "macos-arm64": _macos("arm64", newest, (11, 0)),
            "macos-x64": _macos("x86_64", newest, (10, 9))}[platform]


#: Blender platform names this script builds for
PLATFORMS = ("linux-x64", "windows-x64", "windows-arm64", "macos-arm64", "macos-x64")
DEFAULT_PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64", "macos-x64")
#: Blender's Python versions and the numpy it bundles (the download is resolved against it)
BLENDER_PYTHONS = {"3.11": "numpy==1.26.4",     # Blender 4.2 LTS .. 5.0
                   "3.13": "numpy>=2.2,<3"}     # Blender 5.1 .. 5.2 LTS
#: packages every Blender 4.2+ ships in its own site-packages: never bundled
BUNDLED_BY_BLENDER = {canonicalize_name(n) for n in (
    "numpy", "requests", "certifi", "charset-normalizer", "idna", "urllib3", "zstandard",
    "cython")}


MANIFEST_NOTE = "# wheels and platforms: written by blender_addon/build_extension.py"


#: [dcc] packages the add-on never imports: scipy serves only the dataset export's coloured
#: mesh files, which the add-on's Export Training Data leaves out by default (~35 MB saved)
NOT_USED_BY_THE_ADDON = {canonicalize_name("scipy")}


class BuildError(Exception):
    """One line for the user: what failed and for which platform."""


def this_platform() -> str:
    """This machine as a Blender platform name (the way ``blender_ext.py`` spells it)."""
    system = {"darwin": "macos"}.get(platform_module.system().lower(), platform_module.system().lower())
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(
        platform_module.machine().lower(), platform_module.machine().lower())
    return f"{system}-{machine}"


def addon_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The ``[dcc]`` extra as Blender needs it: CPU onnxruntime, no numpy (Blender's), no
    scipy (not used by the add-on), no markers."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted: dict[str, str] = {}
    for text in project["optional-dependencies"]["dcc"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in BUNDLED_BY_BLENDER or name in NOT_USED_BY_THE_ADDON:
            continue
        if name == "onnxruntime-gpu":
            req.name, name = "onnxruntime", "onnxruntime"
        req.marker = None
        wanted.setdefault(name, str(req))
    return sorted(wanted.values())


def manifest_with_wheels(manifest_text: str, wheels: list[str], platforms: list[str]) -> str:
    """``manifest_text`` with ``wheels`` / ``platforms`` set (top-level keys, before the
    first table); existing values of those keys are replaced."""
    lines, skipping = [], False
    for line in manifest_text.splitlines():
        if skipping:                         # inside a multi-line array being replaced
            skipping = "]" not in line
            continue
        if re.match(r"\s*(wheels|platforms)\s*=", line):
            skipping = "[" in line and "]" not in line
            continue
        if line.strip() != MANIFEST_NOTE:
            lines.append(line)
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")),
                       len(lines))
    keys = ["", MANIFEST_NOTE,
            "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
            "wheels = ["] + [f'  "./wheels/{name}",' for name in sorted(wheels)] + ["]", ""]
    head = lines[:first_table]
    while head and not head[-1].strip():
        head.pop()
    text = "\n".join(head + keys + lines[first_table:]) + "\n"
    tomllib.loads(text)            # a manifest this script cannot parse back is a bug here
    return text


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
        raise BuildError(f"{what}: {errors[0] if errors else 'pip failed'}")


#: what the proc-ml wheel is built from (pyproject's packages, its readme)
WHEEL_SOURCES = ("pyproject.toml", "README.md", "proc_ml", "exporters", "trainers")


def build_proc_ml_wheel(dest: Path) -> Path:
    """proc-ml from this checkout as a wheel (pure Python, ``py3-none-any``).

    Built from a clean copy of the sources: setuptools' in-tree ``build/`` folder keeps files
    deleted since, which would end up in the wheel."""
    source = dest / "source"
    for name in WHEEL_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest),
          str(source)], "building the proc-ml wheel")
    wheels = sorted(dest.glob("proc_ml-*.whl"))
    if not wheels:
        raise BuildError(f"building the proc-ml wheel: no proc_ml-*.whl in {dest}")
    return wheels[-1]


def download_wheels(requirements: list[str], platform: str, python: str, dest: Path,
                    find_links: list[str] = (), macos: str = DEFAULT_MACOS) -> list[Path]:
    """Binary wheels of ``requirements`` and their dependencies for one platform and Python,
    resolved against Blender's numpy; the packages Blender ships are left out."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "blender-constraints.txt"
        constraints.write_text(BLENDER_PYTHONS[python] + "\n", encoding="utf-8")
        target = Path(tmp) / "wheels"
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
               "--dest", str(target), "--python-version", python, "--implementation", "cp",
               "--abi", "cp" + python.replace(".", ""), "--constraint", str(constraints)]
        for tag in platform_tags(platform, macos):
            cmd += ["--platform", tag]
        for link in find_links:
            cmd += ["--find-links", link]
        _run(cmd + requirements, f"downloading wheels for {platform}, Python {python}")
        kept = []
        for wheel in sorted(target.glob("*.whl")):
            if canonicalize_name(parse_wheel_filename(wheel.name)[0]) in BUNDLED_BY_BLENDER:
                continue
            dest.mkdir(parents=True, exist_ok=True)
            kept.append(Path(shutil.copy2(wheel, dest / wheel.name)))
    return kept


def check_one_version_per_pure_package(wheels: list[Path]) -> None:
    """Blender installs the newest wheel of each package that fits its Python; a pure-Python
    package resolved to two versions (one per Python) would then reach both Pythons."""
    versions: dict[str, set] = {}
    for wheel in wheels:
        name, version, _, tags = parse_wheel_filename(wheel.name)
        if all(tag.abi == "none" and tag.platform == "any" for tag in tags):
            versions.setdefault(name, set()).add(str(version))
    clash = {name: sorted(v) for name, v in versions.items() if len(v) > 1}
    if clash:
        name, found = next(iter(clash.items()))
        raise BuildError(f"pure-Python package {name} resolved to {', '.join(found)} for "
                         f"different Pythons: pin one version in pyproject.toml's [dcc] extra")


def zip_extension(stage: Path, out_zip: Path) -> Path:
    """Deterministic zip of ``stage`` with the manifest at the archive root."""
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(stage).as_posix(), (2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix == ".whl" else zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(tmp, out_zip)
    return out_zip


def check_archive(zip_path: Path) -> dict:
    """The zip's manifest, after checking it names exactly the wheels the zip holds."""
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
    listed = {w[2:] if w.startswith("./") else w for w in manifest.get("wheels", [])}
    held = {n for n in names if n.startswith("wheels/") and n.endswith(".whl")}
    if listed != held:
        extra = sorted(listed ^ held)[0]
        raise BuildError(f"{zip_path.name}: manifest wheels and archive disagree on {extra}")
    return manifest


def stage_extension(stage: Path, wheels: list[Path], platforms: list[str]) -> dict:
    """The add-on folder plus ``wheels/``, with the manifest naming them; returns the manifest."""
    shutil.copytree(ADDON, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "wheels"))
    (stage / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, stage / "wheels" / wheel.name)
    manifest = stage / "blender_manifest.toml"
    manifest.write_text(manifest_with_wheels(manifest.read_text(encoding="utf-8"),
                                             [w.name for w in wheels], platforms), encoding="utf-8")
    return tomllib.loads(manifest.read_text(encoding="utf-8"))


def blender_ext_script() -> Path | None:
    """``bl_pkg/cli/blender_ext.py`` of the ``bpy`` module (what ``blender --command extension``
    runs), when bpy is installed; found without importing bpy."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    return None


def validate(zip_path: Path, blender: str | None = None) -> str:
    """Blender's own ``extension validate`` on ``zip_path``; its output on success."""
    if blender:
        cmd = [blender, "--factory-startup", "--command", "extension", "validate", str(zip_path)]
    else:
        script = blender_ext_script()
        if script is None:
            raise BuildError("--validate needs --blender BLENDER or the bpy module installed")
        cmd = [sys.executable, str(script), "validate", str(zip_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "error" in output.lower():
        raise BuildError(f"{zip_path.name}: Blender's validator refused it: "
                         f"{output.splitlines()[-1] if output else proc.returncode}")
    return output


def build(platforms: list[str], pythons: list[str], out_dir: Path = DIST,
          find_links: list[str] = (), check: bool = False, blender: str | None = None,
          macos: str = DEFAULT_MACOS) -> list[Path]:
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise BuildError(f"unknown platform '{unknown[0]}' (choose from {', '.join(PLATFORMS)})")
    bad = [p for p in pythons if p not in BLENDER_PYTHONS]
    if bad:
        raise BuildError(f"unknown Blender Python '{bad[0]}' (choose from {', '.join(BLENDER_PYTHONS)})")
    version = tomllib.loads((ADDON / "blender_manifest.toml").read_text(encoding="utf-8"))["version"]
    requirements = addon_requirements()
    zips = []
    with tempfile.TemporaryDirectory() as tmp:
        own = build_proc_ml_wheel(Path(tmp) / "proc-ml")
        for platform in platforms:
            wheels = {own.name: own}
            for python in pythons:
                for wheel in download_wheels(requirements, platform, python,
                                             Path(tmp) / platform, find_links, macos):
                    wheels[wheel.name] = wheel
            check_one_version_per_pure_package(list(wheels.values()))
            stage = Path(tmp) / f"stage-{platform}"
            stage_extension(stage, sorted(wheels.values()), [platform])
            out = zip_extension(stage, out_dir / f"proc_ml_parts-{version}-{platform.replace('-', '_')}.zip")
            check_archive(out)
            if check:
                validate(out, blender)
            zips.append(out)
    return zips


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="Blender platform (repeatable; default: this machine's)")
    parser.add_argument("--all", action="store_true",
                        help=f"every default platform: {', '.join(DEFAULT_PLATFORMS)}")
    parser.add_argument("--python", action="append", choices=sorted(BLENDER_PYTHONS),
                        help="Blender's Python (repeatable; default: 3.11 and 3.13)")
    parser.add_argument("--out", type=Path, default=DIST, help=f"output folder (default {DIST})")
    parser.add_argument("--find-links", action="append", default=[],
                        help="extra wheel folder for pip (an offline mirror)")
    parser.add_argument("--validate", action="store_true",
                        help="run Blender's extension validator on every zip")
    parser.add_argument("--blender", help="Blender executable for --validate")
    parser.add_argument("--macos", default=DEFAULT_MACOS,
                        help=f"oldest macOS the macOS zips run on (default {DEFAULT_MACOS})")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"(1[1-9]|2[0-9])(\.[0-9]+)?", args.macos):
        parser.error(f"--macos: a macOS version from 11 on, such as 13.0, got '{args.macos}'")
    platforms = list(DEFAULT_PLATFORMS) if args.all else (args.platform or [this_platform()])
    try:
        zips = build(platforms, args.python or list(BLENDER_PYTHONS), args.out, args.find_links,
                     args.validate, args.blender, args.macos)
    except BuildError as exc:
        print(f"build_extension: {exc}", file=sys.stderr)
        return 1
    for path in zips:
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
