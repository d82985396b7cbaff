"""Two functions sharing a volume (tests/e2e/test_volumes.py): each call reports its pid, so the
test can tell that the same container answered."""

import os

import surge

NAME = os.environ.get("SURGE_TEST_VOLUME", "e2e-vol")
vol = surge.Volume.from_name(NAME, create_if_missing=True)
app = surge.App("volumes-e2e", env={"SURGE_TEST_VOLUME": NAME})   # containers import it with the same name


@app.function(volumes={"/data": vol}, scaledown_window=60)
def writer(path: str, text: str, commit: bool) -> int:
    os.makedirs(os.path.dirname(f"/data/{path}"), exist_ok=True)
    with open(f"/data/{path}", "w") as f:
        f.write(text)
    if commit:
        vol.commit()
    return os.getpid()


@app.function(volumes={"/data": vol}, scaledown_window=60)
def reader(path: str, reload: bool) -> tuple[str | None, int]:
    if reload:
        vol.reload()
    try:
        with open(f"/data/{path}") as f:
            return f.read(), os.getpid()
    except FileNotFoundError:
        return None, os.getpid()


@app.function(volumes={"/data": vol})
def evil_link() -> None:
    os.symlink("/etc", "/data/evil")
    vol.commit()


@app.function(volumes={"/data": vol})
def remove(path: str) -> None:
    os.remove(f"/data/{path}")
    vol.commit()


@app.function()
def fetch_weights(sha: str, content: bytes, marker: str, dest: str) -> tuple[int, int]:
    def download(tmp: object) -> None:
        with open(marker, "a") as m:
            m.write("downloaded\n")
        with open(str(tmp), "wb") as f:
            f.write(content)

    cached = surge.weights.fetch(sha, download)
    linked = surge.weights.link(sha, dest)
    return os.stat(cached).st_ino, os.stat(linked).st_ino


@app.function()
def fetch_weights_again(sha: str, content: bytes, marker: str, dest: str) -> tuple[int, int]:
    return fetch_weights.local(sha, content, marker, dest)
