"""build.library_search and build.system_libraries: where each target's loader finds a library (no file read)."""

from __future__ import annotations

from venvstacks_tool.build.binaries import ELF, MACHO, PE, BinaryNeeds
from venvstacks_tool.build.library_search import StackView, missing_libraries, windows_dll_names
from venvstacks_tool.build.system_libraries import system_libraries
from venvstacks_tool.core.platforms import by_name

SITE = "lib/python3.12/site-packages"
WIN_SITE = "Lib/site-packages"


def view(
    platform: str,
    files: set[str],
    by_name_: frozenset[str] = frozenset(),
    runtime: frozenset[str] = frozenset(),
    allowed: frozenset[str] = frozenset(),
    glibc: tuple[int, int] | None = None,
) -> StackView:
    target = by_name(platform)
    fold = str.casefold if target.os == "windows" else str
    return StackView(
        os=target.os,
        files=frozenset(fold(f) for f in files),
        by_name=by_name_,
        runtime=runtime,
        system=system_libraries(target, glibc),
        allowed=allowed,
    )


def test_linux_rpath_origin_and_the_chain_of_loaders() -> None:
    # auditwheel's layout: the extension names the bundled directory, the bundled libraries name none.
    ext, blas, fortran = f"{SITE}/pkg/_ext.so", f"{SITE}/pkg.libs/libblas-1.so", f"{SITE}/pkg.libs/libgfortran-2.so.5"
    binaries = {
        ext: BinaryNeeds(ELF, ("libblas-1.so", "libc.so.6"), ("$ORIGIN/../pkg.libs",)),
        blas: BinaryNeeds(ELF, ("libgfortran-2.so.5",), ()),
        fortran: BinaryNeeds(ELF, ("libquadmath-3.so.0",), ()),
    }
    stack = view("linux_x86_64", {ext, blas, fortran})
    assert missing_libraries(binaries, stack) == {ext: ([], []), blas: ([], []), fortran: (["libquadmath-3.so.0"], [])}


def test_linux_runpath_serves_its_own_binary_only() -> None:
    ext, lib, dep = f"{SITE}/pkg/_ext.so", f"{SITE}/pkg.libs/liba.so", f"{SITE}/pkg.libs/libb.so"
    binaries = {
        ext: BinaryNeeds(ELF, ("liba.so",), ("${ORIGIN}/../pkg.libs",), runpath=True),
        lib: BinaryNeeds(ELF, ("libb.so",), ()),
    }
    assert missing_libraries(binaries, view("linux_x86_64", {ext, lib, dep}))[lib] == (["libb.so"], [])


def test_linux_lower_layers_runtime_system_policy_and_allowed() -> None:
    ext = f"{SITE}/cv2/cv2.abi3.so"
    needed = (
        "libvsdyn.so",
        "libpython3.12.so.1.0",
        "libstdc++.so.6",
        "ld-linux-x86-64.so.2",
        "libGL.so.1",
        "libmvec.so.1",
    )
    binaries = {ext: BinaryNeeds(ELF, needed, ("/usr/local/lib", "$ORIGIN/../../../../../elsewhere"))}
    stack = view("linux_x86_64", {ext}, frozenset({"libvsdyn.so"}), frozenset({"libpython3.12.so.1.0"}))
    # libmvec is in the policy from glibc 2.24; the runtime's floor is 2.17.
    assert missing_libraries(binaries, stack)[ext] == (["libGL.so.1", "libmvec.so.1"], [])
    allowing = view("linux_x86_64", {ext}, frozenset({"libvsdyn.so"}), allowed=frozenset({"libGL.so.1"}), glibc=(2, 28))
    assert missing_libraries(binaries, allowing)[ext] == (["libpython3.12.so.1.0"], ["libGL.so.1"])
    assert "servers and slim container images" in stack.system.note("libGL.so.1")
    assert stack.system.note("libfoo.so") == ""
    aarch64 = system_libraries(by_name("linux_aarch64"))
    assert aarch64.provides("ld-linux-aarch64.so.1") and not aarch64.provides("ld-linux-x86-64.so.2")


def test_macos_loader_path_rpath_chain_system_and_dyld_library_path() -> None:
    ext, lib, dep = f"{SITE}/pkg/_ext.so", f"{SITE}/pkg/.dylibs/liba.dylib", f"{SITE}/pkg/.dylibs/libb.dylib"
    binaries = {
        ext: BinaryNeeds(
            MACHO,
            ("@loader_path/.dylibs/liba.dylib", "/usr/lib/libSystem.B.dylib", "@rpath/libshared.dylib"),
            ("@loader_path/.dylibs", "/opt/homebrew/lib"),
        ),
        # Found through the rpath of the extension that loads it (dyld follows the chain).
        lib: BinaryNeeds(MACHO, ("@rpath/libb.dylib", "/System/Library/Frameworks/Accelerate.framework/A"), ()),
        dep: BinaryNeeds(
            MACHO, ("/opt/homebrew/lib/libgfortran.5.dylib", "@executable_path/../lib/libpython3.12.dylib"), ()
        ),
    }
    stack = view("macos_arm64", {ext, lib, dep}, frozenset({"libshared.dylib"}), frozenset({"libpython3.12.dylib"}))
    assert missing_libraries(binaries, stack) == {
        ext: ([], []),
        lib: ([], []),
        dep: (["/opt/homebrew/lib/libgfortran.5.dylib"], []),
    }
    alone = {lib: binaries[lib]}
    assert missing_libraries(alone, stack)[lib] == (["@rpath/libb.dylib"], [])
    allowing = view("macos_arm64", {lib}, allowed=frozenset({"libb.dylib"}))
    assert missing_libraries(alone, allowing)[lib] == ([], ["@rpath/libb.dylib"])


def test_windows_system_api_sets_runtime_and_the_stacks_dlls() -> None:
    pyd = f"{WIN_SITE}/numpy/_core/_multiarray_umath.cp312-win_amd64.pyd"
    bundled = f"{WIN_SITE}/numpy.libs/msvcp140-abc.dll"
    needed = (
        "KERNEL32.dll", "api-ms-win-crt-runtime-l1-1-0.dll", "python312.dll", "VCRUNTIME140.dll",
        "msvcp140-abc.dll", "Helper.DLL", "MSVCP140.dll",
    )  # fmt: skip
    files = {pyd, bundled, f"{WIN_SITE}/numpy/_core/helper.dll"}
    folded = frozenset(f.casefold() for f in files)
    stack = view(
        "windows_x86_64",
        files,
        frozenset(windows_dll_names(folded)),
        frozenset({"python312.dll", "vcruntime140.dll"}),
    )
    assert missing_libraries({pyd: BinaryNeeds(PE, needed, ())}, stack)[pyd] == (["MSVCP140.dll"], [])
    assert windows_dll_names(frozenset({"library/bin/x.dll", "lib/site-packages/torch/lib/y.dll", "z.pyd"})) == {
        "x.dll",
        "y.dll",
    }
