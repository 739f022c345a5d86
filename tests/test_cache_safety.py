"""Cache safety (issue 13, class 1): a cache another user could write is refused, one the user owns is private,
nothing in it is followed out of it, and only regular files of ours are read."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from symconv.build.cache import BuildJob, UnsafeCacheError, build, load_indexed
from symconv.build.safety import check_root, private_dir, read_private

ONE = BuildJob("int f(void) { return 1; }", "int f(void);")
TWO = BuildJob("int f(void) { return 2; }", "int f(void);")
KEY = "ab" * 32

posix = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX owners and modes only")
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                             reason="needs root to chown files to another user or to drop to one")


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to act as another user")
    return entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding ONE, indexed under KEY: built once for the module, copied by each test."""
    root = tmp_path_factory.mktemp("pristine") / "cache"
    build(ONE, root, KEY)
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TWO's library, built in a cache of its own: the code an attacker would like ONE's manifest to name."""
    root = tmp_path_factory.mktemp("other") / "cache"
    build(TWO, root)
    return root / "modules" / TWO.module_name() / json.loads(
        (root / "modules" / TWO.module_name() / "manifest.json").read_text())["library"]


@pytest.fixture
def cache(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can reach (tmp_path's parents are root's alone), 0755, owned by root."""
    top = Path(tempfile.mkdtemp())
    top.chmod(0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail, rather than hang the suite, if a read blocks (a FIFO opened without O_NONBLOCK would)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("reading the cache blocked")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _folder(cache: Path, job: BuildJob) -> Path:
    return cache / "modules" / job.module_name()


def _walk(root: Path) -> Iterator[Path]:
    yield root
    for path in root.rglob("*"):
        yield path


@posix
def test_a_new_cache_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)  # the compiler's child process inherits it: the worst case for what it writes
    try:
        build(ONE, tmp_path / "cache", KEY)
    finally:
        os.umask(previous)
    seen = {"dir": 0, "file": 0}
    for path in _walk(tmp_path / "cache"):
        info = path.lstat()
        assert not stat.S_ISLNK(info.st_mode), path
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            seen["dir"] += 1
            assert mode == 0o700, (path, oct(mode))
        else:
            seen["file"] += 1
            assert mode in (0o600, 0o700), (path, oct(mode))
    assert seen["dir"] >= 5 and seen["file"] >= 5  # root, modules, the module, index, locks, tmp; its files


@posix
@pytest.mark.parametrize("where", ["root", "modules", "index", "locks", "tmp", "above"])
def test_a_folder_others_can_write_is_refused_with_the_path_and_the_fix(cache: Path, where: str) -> None:
    folder = cache.parent if where == "above" else cache if where == "root" else cache / where
    (cache / "tmp").mkdir(0o700, exist_ok=True)
    folder.chmod(0o770 if where in ("locks", "tmp") else 0o777)
    shutil.rmtree(_folder(cache, ONE))  # a miss: the build takes the lock and a build folder
    with pytest.raises(UnsafeCacheError, match=rf"^build cache folder {folder} is writable by other users; "
                                               rf"chmod go-w {folder}$"):
        build(ONE, cache, KEY)


@posix
def test_a_sticky_world_writable_folder_above_the_cache_is_accepted(cache: Path) -> None:
    cache.parent.chmod(0o1777)  # as /tmp: others cannot rename or remove what we own in it
    assert build(ONE, cache, KEY).lib.f() == 1


@posix
@pytest.mark.parametrize("where", ["index", "modules", "locks"])
def test_a_link_inside_the_cache_is_never_followed(cache: Path, tmp_path: Path, where: str) -> None:
    shutil.rmtree(_folder(cache, ONE))  # a miss: the build takes a lock too
    outside = tmp_path / "outside"
    shutil.copytree(cache / where, outside, symlinks=True)
    shutil.rmtree(cache / where)
    (cache / where).symlink_to(outside)
    with pytest.raises(UnsafeCacheError, match=rf"^build cache folder {cache / where} is a symbolic link"):
        build(ONE, cache, KEY)


@posix
def test_a_manifest_naming_a_library_outside_its_folder_is_not_loaded(cache: Path, planted: Path) -> None:
    data = planted.read_bytes()
    for name in (str(planted), os.path.relpath(planted, _folder(cache, ONE)), "../" + planted.name):
        folder = _folder(cache, ONE)
        shutil.copy(planted, folder.parent / planted.name)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest.update(library=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        (folder / "manifest.json").write_text(json.dumps(manifest))
        assert load_indexed(cache, KEY) is None
        assert build(ONE, cache).lib.f() == 1  # rebuilt from its own source, never TWO's planted code


@posix
@pytest.mark.parametrize("target", ["library", "manifest.json"])
def test_a_library_or_manifest_that_is_a_link_is_not_followed(cache: Path, tmp_path: Path, target: str) -> None:
    folder = _folder(cache, ONE)
    name = json.loads((folder / "manifest.json").read_text())["library"] if target == "library" else target
    outside = tmp_path / "outside"
    shutil.copy(folder / name, outside)  # the same bytes: only the link itself is wrong
    (folder / name).unlink()
    (folder / name).symlink_to(outside)
    assert load_indexed(cache, KEY) is None
    assert build(ONE, cache).lib.f() == 1
    assert not (_folder(cache, ONE) / name).is_symlink()


@posix
@pytest.mark.parametrize("kind", ["fifo", "device", "device-link", "directory", "huge"])
@pytest.mark.parametrize("what", ["index", "manifest.json"])
@pytest.mark.usefixtures("deadline")
def test_only_regular_files_are_read_and_never_without_bound(cache: Path, kind: str, what: str) -> None:
    path = cache / "index" / KEY if what == "index" else _folder(cache, ONE) / what
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is: endless bytes
    elif kind == "device-link":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir(0o700)
    else:
        with open(path, "wb") as sparse:  # a sparse file past the bound: refused from its size, never read
            sparse.truncate((1 << 30) + 1)
    assert load_indexed(cache, KEY) is None
    with pytest.raises(OSError):
        read_private(path)
    if what == "index" and kind == "directory":
        path.rmdir()
    assert build(ONE, cache, KEY).lib.f() == 1  # what is not a file of ours is replaced, not read
    assert load_indexed(cache, KEY) is not None


@as_root
@pytest.mark.parametrize("where", ["root", "modules", "index"])
def test_a_folder_owned_by_another_user_is_refused(cache: Path, where: str) -> None:
    uid, gid = _nobody()
    folder = cache if where == "root" else cache / where
    os.chown(folder, uid, gid)
    with pytest.raises(UnsafeCacheError, match=rf"^build cache folder {folder} is owned by uid {uid}, not by "):
        build(ONE, cache, KEY)


@as_root
@pytest.mark.parametrize("what", ["library", "manifest.json", "index"])
def test_a_file_owned_by_another_user_is_not_loaded(cache: Path, what: str) -> None:
    uid, gid = _nobody()
    folder = _folder(cache, ONE)
    name = json.loads((folder / "manifest.json").read_text())["library"] if what == "library" else what
    os.chown(cache / "index" / KEY if what == "index" else folder / name, uid, gid)
    assert load_indexed(cache, KEY) is None


def _as_nobody(action: Callable[[], str]) -> str:
    """``action()``'s result, run in a child process whose user is ``nobody``."""
    uid, gid = _nobody()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's result travels through the pipe
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            result = action()
        except BaseException as error:  # noqa: BLE001 - every failure is the child's answer
            result = f"{type(error).__name__}: {error}"
        os.write(write, result.encode()[:4000])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)
    return answer


@as_root
@pytest.mark.parametrize("mode", [0o755, 0o777, 0o1777])
def test_another_users_cache_is_refused_by_a_victim_running_as_nobody(cache: Path, shared: Path, mode: int) -> None:
    # The attacker (root here, any other user in life) owns the cache and planted a working module in it; the
    # victim (nobody) must refuse the whole cache before loading a byte of it.
    planted = shared / "cache"
    shutil.copytree(cache, planted, symlinks=True)
    for path in _walk(planted):
        path.chmod(mode if path.is_dir() else 0o755)

    def victim() -> str:
        try:
            load_indexed(planted, KEY)
        except UnsafeCacheError as error:
            return str(error)
        return "loaded"

    answer = _as_nobody(victim)
    assert answer.startswith(f"build cache folder {planted} is owned by uid 0, not by this user"), answer


@as_root
def test_a_victim_running_as_nobody_makes_its_own_cache_private(shared: Path) -> None:
    uid, gid = _nobody()
    home = shared / "home"
    home.mkdir()
    os.chown(home, uid, gid)

    def victim() -> str:
        os.umask(0)
        root = check_root(home / ".cache" / "symconv")
        private_dir(root, "index")
        return " ".join(oct(stat.S_IMODE(p.stat().st_mode)) for p in (home / ".cache", root, root / "index"))

    assert _as_nobody(victim) == "0o700 0o700 0o700"
