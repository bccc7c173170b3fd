"""A release runs on the dependencies of its time (targets/era.py): the newest uploaded
before it was published, a stand-in only where that one does not build or import here, and
the harness's own client on its own h11 whatever the release pins (targets/worker.py).

The fast tests fake the index and uv; the slow one installs uvicorn 0.11.3 and checks
its dependencies against the upload times the index gives, read here on their own."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import h11
import pytest
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

import harness.targets.install
from harness.targets import era
from harness.targets.envs import ensure_env
from harness.targets.imports import culprit, nearest_importing
from harness.targets.install import install
from harness.targets.registry import entry
from harness.tools.environment import target_lines

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = "2020-02-17T16:23:38.693700Z"


def page(project: str, files: list[tuple[str, str]]) -> bytes:
    """A JSON simple index page (PEP 691/700): (filename, upload time) per file."""
    return json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": [
        {"filename": name, "upload-time": when, "url": f"https://files.example/{name}",
         "hashes": {}, "yanked": False, "requires-python": None} for name, when in files]
    }).encode()


INDEX = {
    "uvicorn": page("uvicorn", [("uvicorn-9.9.9-py3-none-any.whl", PUBLISHED),
                                ("uvicorn-9.9.9.tar.gz", "2020-02-17T16:23:40.288412Z")]),
    # 0.1.1 is of the release's time (an sdist that will not build); 0.2.0 came later
    # but has no wheel; 0.3.0 is the oldest later release with one; 0.4.0 is the newest.
    "httptools": page("httptools", [
        ("httptools-0.1.1.tar.gz", "2019-07-01T00:00:00Z"),
        ("httptools-0.2.0.tar.gz", "2021-01-01T00:00:00Z"),
        ("httptools-0.3.0-py3-none-any.whl", "2022-09-13T05:11:23Z"),
        ("httptools-0.3.0.tar.gz", "2022-09-13T05:12:14Z"),
        ("httptools-0.4.0-py3-none-any.whl", "2024-01-01T00:00:00Z")]),
}


def fake_index(monkeypatch: pytest.MonkeyPatch) -> None:
    def fetch(url: str, accept: str, timeout: float) -> bytes:
        assert accept == era.ACCEPT
        return INDEX[url.rstrip("/").rsplit("/", 1)[1]]

    monkeypatch.setattr(era, "_fetch", fetch)
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)


def test_a_dependency_of_the_release_s_time_that_does_not_build_is_replaced_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_index(monkeypatch)
    calls: list[tuple[list[str], str]] = []

    def uv(cmd: list[str], env: object = None, timeout: float = 0) -> Any:
        if "--version" in cmd:
            return subprocess.CompletedProcess(cmd, 0, "uv 0.9.0\n", "")
        overrides = Path(cmd[cmd.index("--override") + 1]).read_text()
        calls.append((cmd, overrides))
        if "httptools==0.3.0" in overrides:
            site = Path(cmd[cmd.index("--target") + 1])
            for dist in ("uvicorn-9.9.9", "h11-0.9.0", "httptools-0.3.0"):
                (site / f"{dist}.dist-info").mkdir(parents=True)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 1, "", "error: Failed to build "
                                           "`httptools==0.1.1`\n  cause: longintrepr.h\n")

    monkeypatch.setattr(harness.targets.install, "_run", uv)
    done = install(entry("uvicorn"), "9.9.9", tmp_path / "site", tmp_path, lambda s: None)
    first, tools, second = (cmd for cmd, _ in calls[:3])
    # All resolve among files uploaded before the release's first one; the release's own
    # files all count. The build tools of its time are let go first (they are how it is
    # built here, not what it runs on); then httptools alone, to 0.3.0's upload.
    for cmd in (first, tools, second):
        assert "--exclude-newer" in cmd
        assert cmd[cmd.index("--exclude-newer") + 1] == "2020-02-17T16:23:38.693700Z"
        assert "--exclude-newer-package=uvicorn=2020-02-17T16:23:41.288412Z" in cmd
    assert not any(a.startswith("--exclude-newer-package=setuptools=") for a in first)
    assert any(a.startswith("--exclude-newer-package=setuptools=") for a in tools)
    assert not any("httptools=" in arg for arg in first + tools)
    assert "--exclude-newer-package=httptools=2022-09-13T05:12:15.000000Z" in second
    assert calls[2][1] == "httptools==0.3.0\n"
    assert done.published == "2020-02-17T16:23:38.693700Z"
    assert done.exempt == {"httptools": "fallback"}
    stand_in, built = done.fallbacks
    assert stand_in.startswith("httptools 0.1.1, the newest at the release's time, does not "
                               "build on Python 3.")
    assert "used httptools 0.3.0 (uploaded 2022-09-13), the oldest later release" in stand_in
    assert built.startswith("sdists built with today's setuptools and wheel")


def test_a_dependency_that_does_not_import_is_found_in_the_traceback_not_the_release(
        tmp_path: Path):
    site = tmp_path / "site"
    for dist, files in {"uvicorn-0.1.1": ["uvicorn/__init__.py", "uvicorn/http.py"],
                        "websockets-4.0.1": ["websockets/__init__.py",
                                             "websockets/framing.py"]}.items():
        (site / f"{dist}.dist-info").mkdir(parents=True)
        (site / f"{dist}.dist-info" / "RECORD").write_text(
            "".join(f"{f},sha256=x,1\n" for f in files))
    trace = "Traceback (most recent call last):\n" + "".join(
        f'  File "{site / f}", line 3, in <module>\n' for f in
        ["uvicorn/http.py", "websockets/__init__.py", "websockets/framing.py"])
    assert culprit(site, trace + "AttributeError: coroutine\n", "uvicorn") == (
        "websockets", "4.0.1", "websockets")
    own = trace.split('  File "' + str(site / "websockets/__init__.py"))[0]
    assert culprit(site, own + "AttributeError: x\n", "uvicorn") is None  # its own code


def test_the_replacement_for_a_dependency_that_does_not_import_is_the_oldest_that_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    moment = datetime.fromisoformat("2020-01-01T00:00:00+00:00")
    versions = ["4.0.1", "5.0", "6.0", "7.0", "8.0", "8.1", "9.0"]
    monkeypatch.setattr(era, "releases", lambda name: {
        Version(v): era.Release(Version(v), moment, moment, (), False, "") for v in versions})
    tried = []

    def put(folder: Path, requirement: str, release: era.Release) -> bool:
        tried.append(str(release.version))
        (folder / "websockets").mkdir(parents=True)
        broken = release.version < Version("8.0")  # 8.0 is the first that imports
        (folder / "websockets" / "__init__.py").write_text(
            "raise AttributeError('coroutine')\n" if broken else "")
        return True

    found = nearest_importing("websockets", "4.0.1", "websockets", put)
    assert found is not None and str(found.version) == "8.0"
    assert len(tried) <= 3 and "4.0.1" not in tried  # bisection, past the failing one


def test_the_client_parses_with_the_harness_s_h11_in_a_worker_whose_release_pins_another(
        tmp_path: Path):
    site = tmp_path / "site"
    (site / "h11").mkdir(parents=True)
    (site / "h11" / "__init__.py").write_text("__version__ = '0.0.1+the-release-s'\n")
    program = (
        "import importlib, sys\n"
        "from pathlib import Path\n"
        "from harness.targets import worker\n"
        "for m in worker.HARNESS: importlib.import_module(m)\n"
        f"print(worker.mount(Path({str(site)!r})))\n"
        "import h11\n"
        "from harness.http import client\n"
        "print(h11.__version__, client.h11.__version__, hasattr(client.h11, 'Connection'))\n")
    out = subprocess.run([sys.executable, "-P", "-c", program], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}).stdout
    assert out.splitlines() == ["['h11']", f"0.0.1+the-release-s {h11.__version__} True"]


def test_the_report_says_which_dependencies_are_of_the_release_s_time():
    env = {"installed": {"click": "7.0", "h11": "0.9.0", "httptools": "0.5.0",
                         "uvicorn": "0.11.3", "websockets": "8.1"},
           "origins": {"click": "of its time", "h11": "of its time", "httptools": "fallback",
                       "websockets": "pinned"},
           "published": PUBLISHED, "installer": "uv 0.9.0",
           "fallbacks": ["httptools 0.1.1 ... does not build"]}
    first, fallback = target_lines({"server": "uvicorn", "version": "0.11.3", "http": "h11"},
                                   env)
    assert ("with the dependencies of its time (the newest uploaded before it was published, "
            "2020-02-17 16:23 UTC): click 7.0, h11 0.9.0, httptools 0.5.0 (fallback), "
            "uvicorn 0.11.3, websockets 8.1 (pinned)") in first
    assert fallback == "fallback: httptools 0.1.1 ... does not build"
    today = target_lines({"server": "uvicorn", "version": "0.11.3", "http": "h11"},
                         {**env, "published": "", "origins": {}, "source": "/src/uvicorn"})
    assert "with today's dependencies" in today[0]


# -- against the real index -----------------------------------------------------------
def index_files(project: str) -> list[dict[str, Any]]:
    """The index's files of `project`, read here without the harness's own reader."""
    request = urllib.request.Request(f"https://pypi.org/simple/{project}/",
                                     headers={"Accept": era.ACCEPT})
    with urllib.request.urlopen(request, timeout=60) as answer:
        files: list[dict[str, Any]] = json.loads(answer.read())["files"]
    return files


def uploads(project: str) -> dict[Version, list[dict[str, Any]]]:
    out: dict[Version, list[dict[str, Any]]] = {}
    for file in index_files(project):
        name = file["filename"]
        if name.endswith(".whl"):
            version = parse_wheel_filename(name)[1]
        elif name.endswith(".tar.gz"):
            version = Version(name.removesuffix(".tar.gz").rpartition("-")[2])
        else:
            continue
        if not file.get("yanked"):
            out.setdefault(version, []).append(file)
    return out


@pytest.mark.slow
def test_uvicorn_0_11_3_gets_the_newest_dependencies_uploaded_before_it_was_published():
    env = ensure_env(entry("uvicorn"), "0.11.3")
    published = min(f["upload-time"] for f in uploads("uvicorn")[Version("0.11.3")])
    assert env.info.published == published
    metadata = (env.site / "uvicorn-0.11.3.dist-info" / "METADATA").read_text()
    declared = {canonicalize_name(r.name): r for r in
                (Requirement(line.split(":", 1)[1]) for line in metadata.splitlines()
                 if line.startswith("Requires-Dist:"))
                if r.marker is None or r.marker.evaluate({"extra": ""})}
    changed = []
    for name, origin in env.info.origins.items():
        files = uploads(name)
        matching = [v for v in files if v in declared[name].specifier and not v.is_prerelease]
        then = max(v for v in matching if min(f["upload-time"] for f in files[v]) < published)
        if origin == "of its time":
            assert env.info.installed[name] == str(then), name
            changed += [name] if max(matching) != then else []
        else:  # does not build here: the oldest release from then on with a wheel for it
            assert origin == "fallback", name
            tags = set(sys_tags())
            near = min(v for v in files if v >= then and not v.is_prerelease and any(
                tags & set(parse_wheel_filename(f["filename"])[3])
                for f in files[v] if f["filename"].endswith(".whl")))
            assert env.info.installed[name] == str(near), name
            assert any(note.startswith(f"{name} {then}, the newest at the release's time")
                       for note in env.info.fallbacks), env.info.fallbacks
    # h11 and click are of its time, httptools a fallback (0.1.x has no wheel for 3.11);
    # click's newest 7.x came after it, so the time changed what was installed
    assert {"h11", "click"} <= {n for n, o in env.info.origins.items() if o == "of its time"}
    assert env.info.origins["httptools"] == "fallback"
    assert "click" in changed
