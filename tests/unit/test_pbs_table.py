"""Tests of `venvstacks_tool.pbs_table`: parsing, table assembly, `main` against a local server,
and the checked-in table `rules_venvstacks/private/fetch/pbs_releases.json`."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import venvstacks_maint.__main__ as cli
from venvstacks_maint import pbs_table
from venvstacks_testing.http_server import serve
from venvstacks_tool.core.errors import VenvstacksError

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN_TABLE = REPO_ROOT / "rules_venvstacks" / "private" / "fetch" / "pbs_releases.json"
RELEASE_PATH = "/repos/astral-sh/python-build-standalone/releases/tags/"
FREETHREADED = "freethreaded+pgo+lto-full"


def fake_sha(name: str) -> str:
    """A stable, distinct, valid-looking sha256 for a fixture file name."""
    return hashlib.sha256(name.encode()).hexdigest()


def release_asset_names(tag: str, versions: list[str]) -> list[str]:
    """A realistic PBS asset list for `versions` in release `tag`, with the noise to skip."""
    names = []
    for version in versions:
        stem = f"cpython-{version}+{tag}"
        for platform in pbs_table.PLATFORMS:
            names.append(f"{stem}-{platform}-install_only.tar.gz")
            names.append(f"{stem}-{platform}-install_only_stripped.tar.gz")
            names.append(f"{stem}-{platform}-debug-full.tar.zst")
            if "windows" in platform:
                names.append(f"{stem}-{platform}-shared-install_only.tar.gz")
                names.append(f"{stem}-{platform}-shared-pgo-full.tar.zst")
            else:
                names.append(f"{stem}-{platform}-pgo+lto-full.tar.zst")
        names.append(f"{stem}-x86_64_v3-unknown-linux-gnu-install_only.tar.gz")
        names.append(f"{stem}-x86_64-unknown-linux-musl-install_only.tar.gz")
        names.append(f"{stem}-armv7-unknown-linux-gnueabihf-install_only.tar.gz")
        if version.startswith("3.13"):
            names.append(f"{stem}-x86_64-unknown-linux-gnu-freethreaded+pgo+lto-full.tar.zst")
            names.append(f"{stem}-aarch64-apple-darwin-freethreaded-install_only.tar.gz")
    return names


def sums_text(names: list[str], *, skip: str | None = None) -> str:
    """SHA256SUMS content for `names` (binary marker on one line, as `sha256sum -b` writes)."""
    lines = []
    for index, name in enumerate(sorted(names)):
        if name == skip:
            continue
        marker = "*" if index == 0 else ""
        lines.append(f"{fake_sha(name)}  {marker}{name}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1 serving fake GitHub release JSON and SHA256SUMS files.


@dataclass
class FakeGitHub:
    """Routes path -> (status, body) and the requests seen (path, Authorization header)."""

    base: str = ""
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def add_release(
        self,
        tag: str,
        names: list[str],
        *,
        sums: str | None = None,
        with_sums: bool = True,
        sums_status: int = 200,
    ) -> None:
        """Serve release `tag` with assets `names` (+ SHA256SUMS unless `with_sums` is False)."""
        assets = [{"name": name, "browser_download_url": f"{self.base}/download/{tag}/{name}"} for name in names]
        if with_sums:
            url = f"{self.base}/download/{tag}/SHA256SUMS"
            assets.append({"name": "SHA256SUMS", "browser_download_url": url})
            body = (sums if sums is not None else sums_text(names)).encode()
            self.routes[f"/download/{tag}/SHA256SUMS"] = (sums_status, body)
        release = {"tag_name": tag, "assets": assets}
        self.routes[RELEASE_PATH + tag] = (200, json.dumps(release).encode())


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """Start the fake server on an ephemeral port; stop it after the test."""
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.seen.append((self.path, self.headers.get("Authorization")))
            status, body = fake.routes.get(self.path, (404, b'{"message": "Not Found"}'))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve(Handler) as url:
        fake.base = url
        yield fake


@pytest.fixture(autouse=True)
def _no_ambient_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("BUILD_WORKSPACE_DIRECTORY", raising=False)


def run_main(github: FakeGitHub, output: Path, *extra: str) -> int:
    return pbs_table.main(["--api-base", github.base, "--output", str(output), *extra])


# ---------------------------------------------------------------------------------------------
# Pure functions.


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz",
            ("3.12.7", "20241016", "x86_64-unknown-linux-gnu", "install_only", "tar.gz"),
        ),
        (
            "cpython-3.12.7+20241016-aarch64-apple-darwin-install_only_stripped.tar.gz",
            ("3.12.7", "20241016", "aarch64-apple-darwin", "install_only_stripped", "tar.gz"),
        ),
        (
            "cpython-3.10.15+20241016-x86_64-pc-windows-msvc-shared-install_only.tar.gz",
            ("3.10.15", "20241016", "x86_64-pc-windows-msvc", "shared-install_only", "tar.gz"),
        ),
        (
            "cpython-3.13.0+20241016-x86_64-unknown-linux-gnu-freethreaded+pgo+lto-full.tar.zst",
            ("3.13.0", "20241016", "x86_64-unknown-linux-gnu", FREETHREADED, "tar.zst"),
        ),
        (
            "cpython-3.11.10+20241016-x86_64_v3-unknown-linux-gnu-install_only.tar.gz",
            ("3.11.10", "20241016", "x86_64_v3-unknown-linux-gnu", "install_only", "tar.gz"),
        ),
        (
            "cpython-3.13.0rc2+20240909-aarch64-apple-darwin-install_only.tar.gz",
            ("3.13.0rc2", "20240909", "aarch64-apple-darwin", "install_only", "tar.gz"),
        ),
    ],
)
def test_parse_asset_name(name: str, expected: tuple[str, ...]) -> None:
    asset = pbs_table.parse_asset_name(name)
    assert asset is not None
    assert (asset.version, asset.release, asset.platform, asset.build, asset.ext) == expected
    assert asset.name == name


@pytest.mark.parametrize(
    "name",
    [
        "SHA256SUMS",
        "cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz.sha256",
        "cpython-3.8.10-x86_64-apple-darwin-pgo+lto-20210506T0943.tar.zst",
        "cpython-3.12.7+20241016-x86_64-apple-darwin.tar.gz",
        "pypy-3.10+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz",
    ],
)
def test_parse_asset_name_rejects(name: str) -> None:
    assert pbs_table.parse_asset_name(name) is None


def test_parse_sha256sums() -> None:
    upper = "A" * 64
    text = f"{'0' * 64}  a.tar.gz\n\n{upper} *b.tar.gz\r\n  {'1' * 64}  c d.tar.gz  \n"
    assert pbs_table.parse_sha256sums(text) == {
        "a.tar.gz": "0" * 64,
        "b.tar.gz": "a" * 64,
        "c d.tar.gz": "1" * 64,
    }


@pytest.mark.parametrize("line", ["deadbeef  a.tar.gz", f"{'0' * 64}", f"{'g' * 64}  a.tar.gz"])
def test_parse_sha256sums_rejects_malformed_line(line: str) -> None:
    with pytest.raises(VenvstacksError, match=r"http://x/SHA256SUMS: line 2 "):
        pbs_table.parse_sha256sums(f"{'0' * 64}  ok.tar.gz\n{line}\n", "http://x/SHA256SUMS")


def test_select_assets_picks_one_install_only_per_platform() -> None:
    names = release_asset_names("20241016", ["3.12.7", "3.13.0"])
    names.append("cpython-3.14.0a1+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz")
    selected = pbs_table.select_assets(names)
    assert sorted(selected) == ["3.12.7", "3.13.0"]
    for version, per_platform in selected.items():
        assert sorted(per_platform) == sorted(pbs_table.PLATFORMS)
        for platform, asset in per_platform.items():
            assert asset.name == f"cpython-{version}+20241016-{platform}-install_only.tar.gz"


def test_select_assets_stripped_flavor_and_python_filter() -> None:
    names = release_asset_names("20241016", ["3.11.10", "3.12.7"])
    selected = pbs_table.select_assets(names, "install_only_stripped", ["3.12"])
    assert list(selected) == ["3.12.7"]
    assert all(a.build == "install_only_stripped" for a in selected["3.12.7"].values())


def test_select_assets_falls_back_to_legacy_windows_shared_name() -> None:
    names = [
        n for n in release_asset_names("20240107", ["3.12.1"]) if not n.endswith("windows-msvc-install_only.tar.gz")
    ]
    windows = pbs_table.select_assets(names)["3.12.1"]["x86_64-pc-windows-msvc"]
    assert windows.name.endswith("+20240107-x86_64-pc-windows-msvc-shared-install_only.tar.gz")


def test_select_assets_rejects_unknown_flavor() -> None:
    with pytest.raises(VenvstacksError, match="unknown flavor 'full'"):
        pbs_table.select_assets([], "full")


def make_release(tag: str, versions: list[str]) -> pbs_table.ReleaseData:
    names = release_asset_names(tag, versions)
    return pbs_table.ReleaseData(tag, tuple(names), {n: fake_sha(n) for n in names})


def test_build_table_newest_release_wins_and_latest_is_highest_patch() -> None:
    older = make_release("20240909", ["3.11.9", "3.12.6"])
    newer = make_release("20241016", ["3.11.10", "3.12.6"])  # 3.12.6 rebuilt in the newer tag
    table = pbs_table.build_table([newer, older], comment="c")
    assert table["comment"] == "c"
    assert table["latest"] == {"3.11": "3.11.10", "3.12": "3.12.6"}
    assert sorted(table["versions"]) == ["3.11.10", "3.11.9", "3.12.6"]
    assert table["versions"]["3.12.6"]["release"] == "20241016"
    assert table["versions"]["3.11.9"]["release"] == "20240909"
    entry = table["versions"]["3.12.6"]["assets"]["x86_64-pc-windows-msvc"]
    name = "cpython-3.12.6+20241016-x86_64-pc-windows-msvc-install_only.tar.gz"
    assert entry == {"file": name, "sha256": fake_sha(name), "strip_prefix": "python"}


def test_latest_compares_numerically() -> None:
    table = pbs_table.build_table([make_release("20241016", ["3.12.9", "3.12.10"])])
    assert table["latest"] == {"3.12": "3.12.10"}


def test_release_entries_skips_incomplete_versions_with_warning() -> None:
    names = release_asset_names("20220227", ["3.8.12", "3.10.2"])
    names = [n for n in names if not n.startswith("cpython-3.8.12+20220227-aarch64-unknown")]
    release = pbs_table.ReleaseData("20220227", tuple(names), {n: fake_sha(n) for n in names})
    warnings: list[str] = []
    entries = pbs_table.release_entries(release, warn=warnings.append)
    assert list(entries) == ["3.10.2"]
    assert len(warnings) == 1
    assert "3.8.12" in warnings[0]
    assert "aarch64-unknown-linux-gnu" in warnings[0]


def test_release_entries_asset_missing_from_sums() -> None:
    release = make_release("20241016", ["3.12.7"])
    missing = "cpython-3.12.7+20241016-aarch64-apple-darwin-install_only.tar.gz"
    sums = {k: v for k, v in release.sha256s.items() if k != missing}
    release = pbs_table.ReleaseData("20241016", release.asset_names, sums, "http://h/SHA256SUMS")
    with pytest.raises(VenvstacksError) as info:
        pbs_table.release_entries(release)
    assert "20241016" in str(info.value)
    assert missing in str(info.value)
    assert "http://h/SHA256SUMS" in str(info.value)


def test_release_entries_nothing_matches() -> None:
    with pytest.raises(VenvstacksError, match=r"release 20241016: no install_only .* 3\.9"):
        pbs_table.release_entries(make_release("20241016", ["3.12.7"]), pythons=["3.9"])


def test_render_table_is_sorted_indented_and_ends_with_newline() -> None:
    text = pbs_table.render_table({"b": 1, "a": {"d": 2, "c": 3}})
    assert text == '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'


# ---------------------------------------------------------------------------------------------
# main() end to end against the local server.


def test_main_writes_table(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_release("20240909", release_asset_names("20240909", ["3.12.6", "3.13.0"]))
    github.add_release("20241016", release_asset_names("20241016", ["3.12.7", "3.13.0"]))
    output = tmp_path / "out" / "pbs_releases.json"
    assert run_main(github, output, "--release", "20240909", "--release", "20241016") == 0

    text = output.read_text()
    table = json.loads(text)
    assert text == pbs_table.render_table(table)
    assert table["download_base"] == pbs_table.DEFAULT_DOWNLOAD_BASE
    assert table["latest"] == {"3.12": "3.12.7", "3.13": "3.13.0"}
    assert sorted(table["versions"]) == ["3.12.6", "3.12.7", "3.13.0"]
    assert table["versions"]["3.13.0"]["release"] == "20241016"
    assert table["versions"]["3.12.6"]["release"] == "20240909"
    for version, entry in table["versions"].items():
        assert sorted(entry["assets"]) == sorted(pbs_table.PLATFORMS)
        for platform, asset in entry["assets"].items():
            assert asset["file"] == (f"cpython-{version}+{entry['release']}-{platform}-install_only.tar.gz")
            assert asset["sha256"] == fake_sha(asset["file"])
            assert asset["strip_prefix"] == "python"
    assert "--release 20240909 --release 20241016" in table["comment"]
    assert str(tmp_path) not in table["comment"]
    assert [p.name for p in output.parent.iterdir()] == ["pbs_releases.json"]  # no temp left
    if os.name == "posix":
        assert output.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_main_options_and_token(github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "sekrit-token")
    github.add_release("20241016", release_asset_names("20241016", ["3.11.10", "3.12.7"]))
    output = tmp_path / "t.json"
    argv = ["--release", "20241016", "--python", "3.11", "--flavor", "install_only_stripped"]
    argv += ["--download-base", "https://mirror.example/pbs/"]
    assert run_main(github, output, *argv) == 0
    table = json.loads(output.read_text())
    assert table["download_base"] == "https://mirror.example/pbs"
    assert list(table["versions"]) == ["3.11.10"]
    file = table["versions"]["3.11.10"]["assets"]["x86_64-unknown-linux-gnu"]["file"]
    assert file.endswith("-install_only_stripped.tar.gz")
    assert "--python 3.11 --flavor install_only_stripped" in table["comment"]
    assert "sekrit-token" not in output.read_text()
    auth = dict(github.seen)
    assert auth[RELEASE_PATH + "20241016"] == "Bearer sekrit-token"
    assert auth["/download/20241016/SHA256SUMS"] is None  # the token goes to the API only


def test_main_via_cli_and_param_file(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_release("20241016", release_asset_names("20241016", ["3.12.7"]))
    output = tmp_path / "t.json"
    params = tmp_path / "args.params"
    params.write_text(f"--release\n20241016\n--api-base\n{github.base}\n--output\n{output}\n")
    assert cli.main(["pbs-table", f"@{params}"]) == 0
    assert list(json.loads(output.read_text())["versions"]) == ["3.12.7"]


def test_main_relative_output_under_bazel_run(
    github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    github.add_release("20241016", release_asset_names("20241016", ["3.12.7"]))
    argv = ["--api-base", github.base, "--release", "20241016", "--output", "x.json"]
    assert pbs_table.main(argv) == 0
    assert (tmp_path / "x.json").is_file()


def test_main_release_not_found(github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "t.json"
    argv = ["--api-base", github.base, "--release", "20991231", "--output", str(output)]
    assert cli.main(["pbs-table", *argv]) == 1
    message = capsys.readouterr().err
    assert "release 20991231" in message
    assert "HTTP 404" in message
    assert f"{github.base}{RELEASE_PATH}20991231" in message
    assert not output.exists()


def test_main_release_without_sha256sums(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_release("20241016", release_asset_names("20241016", ["3.12.7"]), with_sums=False)
    with pytest.raises(VenvstacksError, match=r"release 20241016 has no SHA256SUMS asset \(http"):
        run_main(github, tmp_path / "t.json", "--release", "20241016")


def test_main_sha256sums_download_fails(github: FakeGitHub, tmp_path: Path) -> None:
    names = release_asset_names("20241016", ["3.12.7"])
    github.add_release("20241016", names, sums_status=503)
    with pytest.raises(VenvstacksError) as info:
        run_main(github, tmp_path / "t.json", "--release", "20241016")
    assert "release 20241016 SHA256SUMS" in str(info.value)
    assert f"{github.base}/download/20241016/SHA256SUMS returned HTTP 503" in str(info.value)


def test_main_asset_not_in_sums(github: FakeGitHub, tmp_path: Path) -> None:
    names = release_asset_names("20241016", ["3.12.7"])
    missing = "cpython-3.12.7+20241016-x86_64-pc-windows-msvc-install_only.tar.gz"
    github.add_release("20241016", names, sums=sums_text(names, skip=missing))
    output = tmp_path / "t.json"
    output.write_text("previous\n")
    with pytest.raises(VenvstacksError) as info:
        run_main(github, output, "--release", "20241016")
    assert missing in str(info.value)
    assert "release 20241016" in str(info.value)
    assert output.read_text() == "previous\n"  # failed runs leave the old table alone


def test_main_no_matching_assets(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_release("20241016", release_asset_names("20241016", ["3.12.7"]))
    with pytest.raises(VenvstacksError, match="release 20241016: no install_only"):
        run_main(github, tmp_path / "t.json", "--release", "20241016", "--python", "3.9")


def test_main_connection_refused(tmp_path: Path) -> None:
    output = str(tmp_path / "t.json")
    argv = ["--api-base", "http://127.0.0.1:9", "--release", "20241016", "--output", output]
    with pytest.raises(VenvstacksError, match=r"release 20241016: GET http://127\.0\.0\.1:9/"):
        pbs_table.main(argv)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--release", "latest"], "--release 'latest'"),
        (["--release", "20241016", "--python", "3"], "--python '3'"),
    ],
)
def test_main_rejects_bad_arguments(argv: list[str], match: str, tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match=re.escape(match)):
        pbs_table.main([*argv, "--output", str(tmp_path / "t.json")])


# ---------------------------------------------------------------------------------------------
# The checked-in table.


def test_checked_in_table_is_consistent() -> None:
    text = CHECKED_IN_TABLE.read_text()
    table = json.loads(text)
    assert text == pbs_table.render_table(table), "keys sorted, 2-space indent, final newline"
    assert sorted(table) == ["checked", "comment", "download_base", "latest", "versions"]
    files = {asset["file"] for entry in table["versions"].values() for asset in entry["assets"].values()}
    assert set(table["checked"]) == files, "every sha256 says where it was checked"
    assert table["download_base"] == pbs_table.DEFAULT_DOWNLOAD_BASE
    assert "pbs-table" in table["comment"]
    assert "--output rules_venvstacks/private/fetch/pbs_releases.json" in table["comment"]

    versions = table["versions"]
    assert {pbs_table.minor_of(v) for v in versions} >= {"3.10", "3.11", "3.12", "3.13"}
    for version, entry in versions.items():
        assert sorted(entry) == ["assets", "release"]
        assert re.fullmatch(r"\d{8}", entry["release"])
        assert sorted(entry["assets"]) == sorted(pbs_table.PLATFORMS), version
        for platform, asset in entry["assets"].items():
            assert sorted(asset) == ["file", "sha256", "strip_prefix"]
            assert re.fullmatch(r"[0-9a-f]{64}", asset["sha256"]), asset["file"]
            assert asset["strip_prefix"] == "python"
            parsed = pbs_table.parse_asset_name(asset["file"])
            assert parsed is not None, asset["file"]
            assert (parsed.version, parsed.release, parsed.platform) == (
                version,
                entry["release"],
                platform,
            )
            assert parsed.build in pbs_table.FLAVORS
            assert parsed.ext == "tar.gz"
    hashes = [a["sha256"] for e in versions.values() for a in e["assets"].values()]
    assert len(hashes) == len(set(hashes)), "a hash appears twice: copy-paste slip?"

    expected_latest: dict[str, str] = {}
    for version in versions:
        minor = pbs_table.minor_of(version)
        best = expected_latest.get(minor)
        if best is None or pbs_table.version_key(version) > pbs_table.version_key(best):
            expected_latest[minor] = version
    assert table["latest"] == expected_latest
