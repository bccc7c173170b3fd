"""constraints.txt pins what make's venv installs: every dependency of pyproject.toml,
at a version its specifier allows, and the running environment is that one."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, pinned = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not name==version"
            found[canonicalize_name(name)] = pinned.strip()
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for group in project["optional-dependencies"].values()
                                        for r in group]
    return [Requirement(r) for r in listed]


def test_every_dependency_is_pinned_within_its_specifier() -> None:
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is in pyproject.toml but not constraints.txt"
        assert req.specifier.contains(pinned[name]), (
            f"constraints.txt pins {req.name}=={pinned[name]}, outside {req}")


def test_the_environment_is_the_pinned_one() -> None:
    # make rebuilds the venv when constraints.txt changes (the stamp depends on it)
    wrong = {name: (want, version(name)) for name, want in pins().items()
             if version(name) != want}
    assert not wrong, f"installed versions differ from constraints.txt: {wrong}; run make venv"
