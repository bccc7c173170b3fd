"""The registry: a third party adds a server through an entry point, and a damaged cache
is refused instead of running whatever else is importable."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from harness.targets import registry
from harness.targets.envs import ENV_FORMAT
from harness.targets.install import python_tag
from harness.tools.cli import main
from servers.reference.target import TARGET as REFERENCE_ENTRY
from servers.reference.target import ReferenceTarget


class ToyTarget(ReferenceTarget):
    """A "third-party" server: the reference server's code under another name."""

    name = "toy"


TOY = registry.TargetEntry(
    name="toy", adapter="tests.test_registry:ToyTarget", protocols=("h11",),
    protocol_modules={"h11": "servers.reference.connection"},
    settings=REFERENCE_ENTRY.settings, versions=REFERENCE_ENTRY.versions,
    description="a server registered from outside the harness")


def install_entry_point(folder: Path, monkeypatch: pytest.MonkeyPatch, dist: str,
                        line: str) -> None:
    """A distribution on sys.path that declares a target entry point, as pip installs it."""
    info = folder / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{line}\n")
    monkeypatch.syspath_prepend(str(folder))
    registry.entries.cache_clear()


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    yield
    registry.entries.cache_clear()  # forget the entry points a test installed


@pytest.fixture
def toy_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_point(tmp_path, monkeypatch, "toy_harness", "toy = tests.test_registry:TOY")


def test_a_server_registered_by_an_entry_point_is_explored_like_a_built_in_one(
        toy_installed: None, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert "toy" in registry.entries()
    code = main(["explore", "--server", "toy", "--max-runs", "30", "--budget", "60",
                 "--reports", str(tmp_path / "reports")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "toy-" in out.out  # the summary names the new target


def test_an_entry_point_cannot_take_over_a_built_in_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    install_entry_point(tmp_path, monkeypatch, "evil", "uvicorn = tests.test_registry:TOY")
    assert registry.entry("uvicorn").adapter == "servers.uvicorn_target:UvicornTarget"


def fake_env(root: Path, server: str, version: str, site_entries: dict[str, str]) -> Path:
    """A cache folder as envs.py writes it, with the given files in its site folder."""
    folder = root / "envs" / f"{server}-{version}"
    (folder / "site").mkdir(parents=True)
    for name, text in site_entries.items():
        (folder / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "site" / name).write_text(text)
    (folder / "env.json").write_text(json.dumps({
        "server": server, "version": version, "python": python_tag(), "installed": {},
        "fallbacks": [], "skipped": [], "protocols": ["h11"], "distribution": server,
        "installer": "uv", "format": ENV_FORMAT}))
    return folder


def test_a_cached_release_whose_files_are_gone_is_an_error_not_another_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    folder = fake_env(tmp_path, "uvicorn", "0.12.3", {})
    code = main(["explore", "--server", "uvicorn==0.12.3", "--max-runs", "5"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"the cached environment {folder} is damaged" in err
    assert f"rm -rf {folder}" in err


def test_a_worker_that_would_import_the_release_from_elsewhere_refuses_to_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    # The metadata says 0.12.3 is there, but its package is not: the worker would import
    # the harness's own uvicorn from the virtual environment.
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    fake_env(tmp_path, "uvicorn", "0.12.3", {
        "uvicorn-0.12.3.dist-info/METADATA": "Metadata-Version: 2.1\nName: uvicorn\n"
                                             "Version: 0.12.3\n"})
    code = main(["explore", "--server", "uvicorn==0.12.3", "--max-runs", "5"])
    err = capsys.readouterr().err
    assert code == 2
    assert "should run from" in err and f"{sys.prefix}" in err


def test_no_release_is_both_mounted_by_a_range_and_listed_as_unrunnable():
    for entry in registry.entries().values():
        for unrunnable in entry.unrunnable:
            if unrunnable.http:  # one protocol of a release its range mounts
                continue
            # every boundary either names: a release in both would be refused though a
            # range says how to mount it
            specs = [SpecifierSet(r.versions) for r in entry.versions]
            probes = {"0.0.1"} | {s.version for spec in [*specs,
                                                         SpecifierSet(unrunnable.versions)]
                                  for s in spec}
            refused = [v for v in probes if v in SpecifierSet(unrunnable.versions)]
            assert refused, unrunnable
            assert not [v for v in refused if any(v in spec for spec in specs)], unrunnable


def test_a_release_gets_the_protocols_its_range_names():
    uvicorn = registry.entry("uvicorn")
    assert [s.http for s in registry.target_specs("uvicorn==0.1.1", "all")] == ["httptools"]
    assert [s.http for s in registry.target_specs("uvicorn==0.1.1")] == ["httptools"]
    assert uvicorn.modules_for("0.2.10")["h11"] == "uvicorn.protocols.http.h11"
    assert uvicorn.modules_for("0.3.0")["h11"] == "uvicorn.protocols.http.h11_impl"


def test_a_protocol_that_cannot_run_is_refused_by_name_and_left_out_of_all():
    # uvicorn 0.2.20's httptools protocol fails in its constructor; its h11 one runs.
    assert [s.http for s in registry.target_specs("uvicorn==0.2.20", "all")] == ["h11"]
    assert [s.http for s in registry.target_specs("uvicorn==0.2.21", "all")] == [
        "h11", "httptools"]
    with pytest.raises(registry.TargetError, match=r"0.2.20 cannot run httptools here: "
                                                   r".*__slots__"):
        registry.target_specs("uvicorn==0.2.20", "httptools")
    with pytest.raises(registry.TargetError, match=r"0.4.0 cannot run here: .*lifespan"):
        registry.target_specs("uvicorn==0.4.0", "all")


def test_a_protocol_unrunnable_on_one_release_names_a_protocol_its_range_has():
    for entry in registry.entries().values():
        for unrunnable in entry.unrunnable:
            for probe in [s.version for s in SpecifierSet(unrunnable.versions)]:
                assert set(unrunnable.http) <= set(entry.modules_for(probe)), unrunnable


def test_every_unrunnable_release_range_is_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, entry in registry.entries().items():
        for unrunnable in entry.unrunnable:
            assert f"`{unrunnable.versions}`" in readme, (name, unrunnable.versions)


def _index_listing(monkeypatch: pytest.MonkeyPatch, versions: list[str] | None) -> list[float]:
    """The index lists `versions` of uvicorn; None: it cannot be reached. Returns the
    timeout of every read, as it is made."""
    from harness.targets import era

    waits: list[float] = []

    def fetch(url: str, accept: str, timeout: float) -> bytes:
        waits.append(timeout)
        if versions is None:
            raise OSError("network is unreachable")
        return json.dumps({"files": [
            {"filename": f"uvicorn-{v}.tar.gz", "upload-time": "2018-01-01T00:00:00Z"}
            for v in versions]}).encode()

    monkeypatch.setattr(era, "_fetch", fetch)
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    return waits


def test_a_version_refused_for_its_range_is_first_asked_of_the_index(
        monkeypatch: pytest.MonkeyPatch):
    _index_listing(monkeypatch, ["0.0.15", "0.1.1"])
    with pytest.raises(registry.TargetError, match=r"uvicorn==0\.0\.0 does not exist on PyPI; "
                       r"list releases with 'pip index versions uvicorn'"):
        registry.parse_server("uvicorn==0.0.0")
    # A release the index lists is refused for what its range cannot do.
    with pytest.raises(registry.TargetError, match="uvicorn 0.0.15 cannot run here: releases "
                       "before 0.1.0 predate"):
        registry.parse_server("uvicorn==0.0.15")


def test_an_index_that_cannot_be_read_leaves_the_range_s_reason(
        monkeypatch: pytest.MonkeyPatch):
    from harness.targets import era

    waits = _index_listing(monkeypatch, None)
    with pytest.raises(registry.TargetError, match="uvicorn 0.0.0 cannot run here: releases "
                       "before 0.1.0 predate"):
        registry.parse_server("uvicorn==0.0.0")
    # The look-up only improves a refusal that stands without it: a hanging index is
    # given the look-up's short wait, not the minute an install would wait for it.
    assert waits == [registry.LOOKUP_TIMEOUT]
    assert registry.LOOKUP_TIMEOUT < era.TIMEOUT


def test_an_unpublished_version_is_told_which_index_does_not_list_it(
        monkeypatch: pytest.MonkeyPatch):
    _index_listing(monkeypatch, ["0.1.1"])
    monkeypatch.setenv("UV_DEFAULT_INDEX", "https://mirror.example/simple")
    with pytest.raises(registry.TargetError, match=r"uvicorn==0\.0\.0 does not exist on "
                       r"https://mirror\.example/simple/; list releases"):
        registry.parse_server("uvicorn==0.0.0")


@pytest.mark.parametrize("typed", ["0.11", "0.11.0.0", "0.011.0"])
def test_a_release_typed_another_way_is_told_its_published_name_before_any_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, typed: str):
    # PEP 440 calls these equal to 0.11.0, and uv would install 0.11.0, which an
    # environment named for what was typed would then not hold ("damaged").
    from harness.targets.envs import ensure_env

    _index_listing(monkeypatch, ["0.11.0", "0.11.3"])
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    with pytest.raises(registry.TargetError, match=rf"uvicorn {re.escape(typed)} is published "
                       r"as 0\.11\.0; write uvicorn==0\.11\.0"):
        ensure_env(registry.entry("uvicorn"), typed)
    assert not [p for p in (tmp_path / "envs").iterdir() if p.name.startswith(
        (f"uvicorn-{typed}", f".uvicorn-{typed}"))]


def test_a_cache_that_cannot_be_written_is_named_with_its_fix(monkeypatch: pytest.MonkeyPatch):
    # It was 'a bug in the harness itself', with a FileNotFoundError's stack.
    from harness.targets.envs import ensure_env
    from harness.targets.install import EnvError

    monkeypatch.setenv("HARNESS_CACHE", "/proc/harness-cache")
    with pytest.raises(EnvError, match=r"^the harness's cache /proc/harness-cache cannot be "
                       r"written \(No such file or directory\); point HARNESS_CACHE at a "
                       r"folder you can write$"):
        ensure_env(registry.entry("uvicorn"), "0.11.3")


def test_the_index_is_read_once_per_page_in_a_process(monkeypatch: pytest.MonkeyPatch):
    """Each unrunnable version a bisect meets asks the index again; it answers in a
    second or so, and the same page every time."""
    from harness.targets import era

    waits = _index_listing(monkeypatch, ["0.0.15", "0.1.1"])
    for spec in ("uvicorn==0.0.0", "uvicorn==0.0.1", "uvicorn==0.0.2"):
        with pytest.raises(registry.TargetError, match="does not exist on PyPI"):
            registry.parse_server(spec)
    assert len(waits) == 1
    assert list(era.releases("uvicorn")) == [era.Version("0.0.15"), era.Version("0.1.1")]
    assert len(waits) == 1
