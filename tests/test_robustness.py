"""Hostile input, crash-safe scans, no pickles, Label Studio dying mid-pull, obfuscated text."""

import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
GENERATED = {"moderator": 0, "scan": 0}

# Every code point class, lone surrogates included; plus the nasty ones by name.
NASTY = ["", " ", "\t\n ", "\x00", "a\x00b", "\ud800", "x\udfff y", "\u202e\u202d rtl", "مرحبا بالعالم", "😀" * 50,
         "\u200b" * 20, "A" * 100_000, "e\u0301" * 1000, "\r\n\r\n", "\ufeffbom", "ｆｕｌｌｗｉｄｔｈ", "𝐢𝐝𝐢𝐨𝐭"]
texts = st.one_of(st.text(st.characters(codec=None, exclude_categories=()), max_size=300), st.sampled_from(NASTY))


@pytest.fixture(scope="module")
def moderator(tiny_package):
    from moderation.runtime import Moderator

    return Moderator.load(tiny_package, threads=1)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(texts, min_size=30, max_size=60))
def test_moderator_survives_anything(moderator, batch):
    GENERATED["moderator"] += len(batch)
    results = moderator.moderate(batch)
    assert len(results) == len(batch)
    for r in results:
        assert r.decision in ("allow", "review", "block")
        assert all(0.0 <= v <= 1.0 for v in r.scores.values())


def test_one_megabyte_and_over_the_limit(moderator):
    from moderation.runtime import InputError

    assert len(moderator.moderate(["word " * 200_000])[0].scores) == len(moderator.categories)  # 1 MB, scored
    with pytest.raises(InputError, match=r"item 1: 1000001 characters exceeds max_chars=1000000"):
        moderator.score(["fine", "x" * 1_000_001])  # never silently truncated


lines = st.one_of(
    st.binary(max_size=200),  # anything, invalid UTF-8 included
    st.builds(lambda t: json.dumps({"id": "x", "text": t}).encode(), texts),
    st.builds(lambda t: json.dumps({"id": 1, "text": t}, ensure_ascii=False).encode("utf-8", "surrogatepass"), texts),
    st.sampled_from([b'{"text": 5}', b'{"id": 3}', b"[1,2]", b'{"text": "ok"', b"\xff\xfe\x00", b'{"text": null}']),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines, min_size=1, max_size=120))
def test_scan_accounts_for_every_line(tiny_package, tmp_path_factory, raw_lines):
    """Every non-blank line ends up as exactly one result or one error entry; exit code 0 or 3, never a crash."""
    tmp = tmp_path_factory.mktemp("hyp")
    src, out = tmp / "in.jsonl", tmp / "out.jsonl"
    body = b"\n".join(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in raw_lines) + b"\n"
    src.write_bytes(body)
    expected = sum(1 for line in body.decode("utf-8", "replace").split("\n") if line.strip())
    GENERATED["scan"] += expected
    r = runner.invoke(cli.app, ["scan", str(src), "-o", str(out), "--model", str(tiny_package), "--on-error", "skip",
                                "--no-progress", "--threads", "1"])
    if body.startswith(b"\x1f\x8b"):  # the gzip magic number: read as a (broken) gzip file, a named error
        assert r.exit_code == 2 and "in.jsonl" in r.output
        return
    assert r.exit_code in (0, 3), r.output
    results = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    errors_path = Path(f"{out}.errors.jsonl")
    errors = [json.loads(x) for x in errors_path.read_text(encoding="utf-8").splitlines()] if errors_path.exists() else []
    assert len(results) + len(errors) == expected
    assert sorted([x["line"] for x in results] + [e["line"] for e in errors]) == sorted(set([x["line"] for x in results] + [e["line"] for e in errors]))


def test_at_least_ten_thousand_generated_inputs():
    """Runs after the property tests above (file order): they must have pushed enough inputs through."""
    if GENERATED["moderator"] == 0:
        pytest.skip("run together with the property tests")
    assert GENERATED["moderator"] + GENERATED["scan"] >= 10_000, GENERATED


def test_scan_resume_after_sigkill_yields_every_id_exactly_once(tiny_package, tmp_path):
    rng = random.Random(7)
    n = 20000
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"item-{i}", "text": f"message {i} " + "words " * rng.randint(1, 40)}) + "\n")
    cmd = [sys.executable, "-c", "import cli; cli.main()", "scan", str(src), "-o", str(out), "--model", str(tiny_package),
           "--resume", "--no-progress", "--threads", "1"]
    kills = 0
    for attempt in range(30):
        before = out.stat().st_size if out.exists() else 0
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if attempt < 5:  # kill it at a random moment once it has written something new
            grow = rng.randint(1, 60_000)
            while proc.poll() is None and (not out.exists() or out.stat().st_size < before + grow):
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        proc.wait(timeout=120)
        assert proc.returncode == 0, proc.stderr.read().decode()
        break
    else:
        pytest.fail("the scan never finished")
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert kills >= 3, f"only {kills} kills landed; the test proves nothing"
    assert len(ids) == n and sorted(ids) == sorted(f"item-{i}" for i in range(n)), (len(ids), len(set(ids)))


def test_no_pickle_is_loaded_anywhere():
    """torch.load only with weights_only=True; no pickle/joblib/np.load(allow_pickle) in our code."""
    offenders = []
    for path in list((ROOT / "moderation").rglob("*.py")) + list((ROOT / "labeling").rglob("*.py")) + [ROOT / "cli.py"]:
        src = path.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", src):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path.name}: {m.group(0)}")
        for pattern in (r"\bimport pickle\b", r"\bpickle\.loads?\(", r"\bjoblib\b", r"allow_pickle\s*=\s*True", r"\bdill\b"):
            if re.search(pattern, src):
                offenders.append(f"{path.name}: {pattern}")
    assert not offenders, offenders


class KillableProxy:
    """A TCP proxy in front of the real Label Studio that dies after forwarding `allow` HTTP requests:
    every socket is closed and new connections are refused, as when the server process is killed."""

    def __init__(self, target_port: int, allow: int):
        self.target, self.allow, self.requests = target_port, allow, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.dead = False
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.dead:
            try:
                client, _ = self.sock.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self.open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, a, b, from_client):
        try:
            while data := a.recv(65536):
                if from_client:
                    with self.lock:
                        self.requests += len(re.findall(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r$", data, re.M))
                        if self.requests > self.allow:
                            self.kill()
                            return
                b.sendall(data)
        except OSError:
            pass

    def kill(self):
        self.dead = True
        for s in [self.sock, *self.open]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_label_studio_dying_mid_pull_retries_then_fails_clearly_and_writes_nothing(label_studio, tmp_path, monkeypatch, caplog):
    creds, root = label_studio
    port = int(creds.url.rsplit(":", 1)[1])
    proxy = KillableProxy(port, allow=2)  # the pull makes more than 2 connections (projects, export, poll, download)
    monkeypatch.setenv("LABEL_STUDIO_USER_TOKEN", creds.token)
    store = tmp_path / "fb"
    started = time.time()
    r = runner.invoke(cli.app, ["review", "pull", "--url", f"http://127.0.0.1:{proxy.port}", "--store", str(store),
                                "--ls-dir", str(root), "--project", "Moderation review"])
    assert proxy.dead and r.exit_code == 2, r.output
    assert "not reachable" in r.output and "after 5 tries" in r.output and "Traceback" not in r.output
    assert time.time() - started >= 7.0  # it backed off (0.5 + 1 + 2 + 4 s) before giving up
    assert not (store / "judgments.jsonl").exists()  # nothing half-written
    assert creds.token not in r.output and creds.token not in caplog.text


def test_normaliser_undoes_obfuscation_and_leaves_plain_text_alone(moderator):
    from moderation.windows import normalizer_for

    fold = normalizer_for(moderator.tokenizer)
    for obfuscated in ["𝐢𝐝𝐢𝐨𝐭", "іdіоt", "id\u200biot", "1d10t", "i d i o t", "ｉｄｉｏｔ"]:
        assert fold(f"you {obfuscated}!") == "you idiot!", obfuscated
    for plain in ["meet at 10am in room 4b", "Привет, как дела?", "I have 3 cats and 2 dogs", "r u ok?", "café crème",
                  "email me at bob@example.com", "C3PO and R2D2"]:
        assert fold(plain) == __import__("unicodedata").normalize("NFKC", plain), plain


def test_normaliser_joins_spelled_out_words_the_vocabulary_lacks_and_separated_letters(moderator):
    from moderation.windows import normalizer_for

    fold = normalizer_for(moderator.tokenizer)
    # "moron" is not a whole vocabulary word; the writer's double spaces mark the word breaks
    assert fold("y o u  a r e  a  m o r o n") == "you  are  a  moron"
    assert fold("you are a p a t h e t i c  l o s e r") == "you are a pathetic  loser"  # not "ap at het ic"
    assert fold("I'm going to m-u-r-d-e-r you") == "I'm going to murder you"
    assert fold("k.i.l.l yourself") == "kill yourself" and fold("f*u*c*k off") == "fuck off"
    # what it refuses: letters that are not a word, single-spaced runs inside a sentence, abbreviations
    for plain in ["x-y-q", "the A B C D E F G song", "e.g. this", "a.m. or p.m.", "T-shirt",
                  "10-4-3", "x q z"]:
        assert fold(plain) == plain, plain
