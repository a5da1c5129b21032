"""A retrieval chatbot over your own knowledge base: each question gets the best-matching
entry of the base, never an invented answer.

- The knowledge base is a CSV of question,answer rows (an FAQ), or a folder of .txt/.md
  files cut into passages of a few sentences.
- Retrieval: a bi-encoder (MiniLM's sentence embeddings) ranks the entries by cosine.
  Optionally a cross-encoder
  (`taskzoo.load("answer_selection")`) re-orders the best few. An FAQ row is matched by its
  question and answer together, a passage by its text.
- A passage's answer is cut out of it by the `qa` model (`span=True`); an FAQ row's answer
  is its answer column.
- Below `threshold` (of the chosen entry's cosine) the bot says it does not know.
- The index (the entries' embeddings) is cached under the taskzoo cache, named by the
  sha256 of the knowledge base and of the encoder, and verified by its own sha256 on load.

    >>> bot = taskzoo.chatbot("faq.csv")                          # doctest: +SKIP
    >>> bot("how do I reset my password?")                        # doctest: +SKIP
    Reply(answer='Use the "Forgot password" link ...', score=0.83, source='faq.csv:4', ...)
    $ taskzoo chat --kb faq.csv
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from taskzoo.data.user_files import UnreadableText, read_utf8, utf8_text
from taskzoo.errors import InputError, UsageError

INDEX_VERSION = 1  # bump when the index's layout or the passage cutting changes
PASSAGE_SENTENCES = 3  # sentences per passage of a text file


@dataclass(frozen=True)
class Entry:
    key: str  # the text retrieval matches against (an FAQ row's question and answer, a passage)
    answer: str  # what is shown (the FAQ answer, the passage)
    source: str  # file:row or file:passage number
    passage: bool  # a passage (the qa model may cut a span out of it) or an FAQ answer


@dataclass(frozen=True)
class Reply:
    """One answer: `answer` is None when nothing in the base matched well enough."""

    answer: str | None
    score: float  # the chosen entry's cosine similarity to the question
    source: str  # where the answer came from, "" when not known
    context: str = ""  # the whole passage when `answer` is a span cut out of it

    def __str__(self) -> str:
        if self.answer is None:
            return (f"I don't know: nothing in the knowledge base matches well enough "
                    f"(best score {self.score:.2f}).")
        return self.answer


def read_kb(path: str | Path, skipped: list[tuple[str, str]] | None = None) -> list[Entry]:
    """The knowledge base's entries: FAQ rows of a .csv, or passages of a folder's text files.
    Files of a folder that are not regular files (a FIFO, a socket, a device) are never
    opened: they are left out and listed, with the reason, in `skipped` when one is given."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"knowledge base {path} does not exist: give a question,answer CSV or a "
                         "folder of .txt / .md files")
    if path.is_dir():
        return _read_folder(path, [] if skipped is None else skipped)
    if path.suffix.lower() != ".csv":
        raise UsageError(f"knowledge base {path}: expected a .csv file (question,answer) or a "
                         "folder of text files")
    entries = []
    for n, row in enumerate(_csv_rows(path), start=1):
        if not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"{path.name} row {n}: expected two columns, question,answer, got "
                             f"{row!r}")
        # matched on question and answer together: "money back" finds "... a full refund"
        entries.append(Entry(f"{row[0].strip()} {row[1].strip()}", row[1].strip(),
                             f"{path.name}:{n}", False))
    if not entries:
        raise InputError(f"{path}: no question,answer rows")
    return entries


def _read_folder(path: Path, skipped: list[tuple[str, str]]) -> list[Entry]:
    from taskzoo.tasks.summarization.data import split_sentences

    entries = []
    for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", ".md")):
        if f.is_dir():  # a folder named notes.txt: rglob reads its files in turn
            continue
        try:
            # a stray byte costs one character (U+FFFD), not the whole folder
            text = utf8_text(f, errors="replace")
        except (OSError, UnreadableText) as e:
            skipped.append((str(f), str(e).removeprefix("is ")))  # as the image readers list
            continue
        sents = split_sentences(text)
        for n, at in enumerate(range(0, len(sents), PASSAGE_SENTENCES), start=1):
            passage = " ".join(sents[at:at + PASSAGE_SENTENCES])
            entries.append(Entry(passage, passage, f"{f.relative_to(path)}:{n}", True))
    if not entries:
        extra = (f" ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]})"
                 if skipped else "")
        raise InputError(f"knowledge base {path}: no .txt or .md file with text in it{extra}")
    return entries


def _csv_rows(path: Path) -> list[list[str]]:
    """The CSV's rows. Not UTF-8 is refused, not guessed (a Windows-1252 guess would show
    wrong characters in every answer); a field over csv's limit (128 KiB) is refused, since
    raising the limit would change it for the whole process; an answer that long belongs in
    a folder of text files."""
    text = read_utf8(path, "knowledge base", InputError)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as e:
        hint = ("question,answer rows of ordinary length; give long texts as a folder of .txt "
                "files" if "field limit" in str(e) else "a question,answer CSV")
        raise InputError(f"knowledge base {path} line {reader.line_num}: {e}: expected "
                         f"{hint}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["question", "answer"]:
        rows = rows[1:]
    return rows


class Chatbot:
    """Answers questions from a knowledge base (see the module's docstring)."""

    def __init__(self, kb: str | Path, *, threshold: float = 0.4, rerank: Any = False,
                 span: Any = True, top_k: int = 5, encoder: str = "minilm",
                 device: str = "cpu") -> None:
        from taskzoo.hf.encoders import Subwords, encoder_repo
        from taskzoo.runtime import Runtime
        from taskzoo.tasks.common.pretrained_text import load_embedder

        if not 0 <= threshold <= 1:
            raise UsageError(f"threshold={threshold}: expected a score in [0, 1]")
        self.skipped: list[tuple[str, str]] = []  # (file, reason) of a folder's special files
        self.entries, self.threshold = read_kb(kb, self.skipped), threshold
        self.top_k = max(1, top_k)
        self.runtime = Runtime.create(device=device)
        repo = encoder_repo(encoder)
        if repo is None:
            raise UsageError(f"encoder={encoder!r}: expected minilm or hf:<repo>@<commit>")
        self.subwords = Subwords.from_repo(repo)
        self.embedder = load_embedder(self.subwords, self.runtime)
        self.index = self._index(Path(kb))
        self.reranker = self._predictor("answer_selection", rerank)
        has_passages = any(e.passage for e in self.entries)
        self.reader = self._predictor("qa", span) if has_passages else None

    def _predictor(self, task: str, spec: Any) -> Any:
        """False: none; True: the task's default released weights; a string: those weights;
        else a predictor already made."""
        if spec is False or spec is None:
            return None
        if spec is True or isinstance(spec, str):
            from taskzoo.weights import load

            return load(task, weights=None if spec is True else spec,
                        device=str(self.runtime.device))
        return spec

    def _embed(self, texts: list[str]) -> torch.Tensor:
        from taskzoo.tasks.common.pretrained_text import embed

        return embed(self.embedder, self.subwords, self.runtime, texts, max_tokens=256,
                     batch_size=64)

    def _index(self, kb: Path) -> torch.Tensor:
        """The entries' embeddings: from the cache when its sha256 verifies, else computed and
        cached (written atomically, its sha256 recorded beside it)."""
        from safetensors.torch import load_file, save_file

        from taskzoo import files, hub
        from taskzoo.hf.encoders import describe

        key = hashlib.sha256(json.dumps(
            [INDEX_VERSION, describe(self.subwords.repo)["sha256"],
             [(e.key, e.answer, e.source) for e in self.entries]]).encode()).hexdigest()
        folder = hub.make_cache_dir(hub.cache_root() / "chat")
        path, record = folder / f"{key[:32]}.safetensors", folder / f"{key[:32]}.json"
        if path.is_file() and record.is_file():
            expected = json.loads(record.read_text(encoding="utf-8")).get("sha256")
            if hub.sha256_file(path) == expected:
                return load_file(path)["embeddings"]
            print(f"taskzoo chat: the cached index {path} does not match its recorded sha256; "
                  "rebuilding it", file=sys.stderr)
        vectors = self._embed([e.key for e in self.entries]).contiguous()
        with files.atomic_path(path) as tmp:
            save_file({"embeddings": vectors}, str(tmp))
        files.write_json(record, {"sha256": hub.sha256_file(path), "entries": len(self.entries),
                                  "knowledge_base": str(kb), "version": INDEX_VERSION})
        return vectors

    def __call__(self, question: str) -> Reply:
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty: type a question")
        q = self._embed([question])[0]
        cos = self.index @ q
        best = cos.topk(min(self.top_k, len(self.entries)))
        candidates = best.indices.tolist()
        cosine = dict(zip(candidates, best.values.tolist()))
        if self.reranker is not None:  # reorders only: its probabilities are not calibrated
            ranked = self.reranker((question, [self.entries[i].key for i in candidates]))
            candidates = [candidates[r["index"]] for r in ranked]
        top = candidates[0]
        score = float(cosine[top])  # the threshold always reads the retrieval cosine
        entry = self.entries[top]
        if score < self.threshold:
            return Reply(None, score, "")
        if entry.passage and self.reader is not None:
            span = self.reader((question, entry.answer))
            if span["answer"].strip():
                return Reply(span["answer"], score, entry.source, context=entry.answer)
        return Reply(entry.answer, score, entry.source)


def chatbot(kb: str | Path, **options: Any) -> Chatbot:
    """A Chatbot over `kb` (a question,answer CSV or a folder of text files).

    >>> bot = taskzoo.chatbot("faq.csv", threshold=0.5)          # doctest: +SKIP
    >>> print(bot("opening hours?"))                              # doctest: +SKIP
    """
    return Chatbot(kb, **options)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def repl(bot: Chatbot, *, stdin: Any = None, stdout: Any = None) -> int:
    """The terminal loop of `taskzoo chat`: a prompt with readline history (arrow keys, kept
    in the taskzoo cache between sessions); 'quit', 'exit' or Ctrl-D ends it."""
    from taskzoo import hub

    out = stdout or sys.stdout
    history = hub.cache_root() / "chat" / "history"
    try:
        import readline
    except ImportError:  # Windows without pyreadline: a plain prompt
        readline = None  # type: ignore[assignment]
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    for name, reason in getattr(bot, "skipped", []):
        print(f"taskzoo chat: skipped {name}: {reason}", file=out, flush=True)
    print(f"taskzoo chat: {len(bot.entries)} entries. Ask a question; 'quit' or Ctrl-D to end.",
          file=out, flush=True)
    try:
        while True:
            try:
                line = input("you> ") if stdin is None else stdin.readline()
            except (EOFError, KeyboardInterrupt):
                break
            except UnicodeDecodeError:  # a strict stdin: the line is gone, the session is not
                line = "\udcff"
            if stdin is not None and not line:
                break
            if not _utf8(line):
                # surrogates are the bytes Python could not decode; the encoder cannot take them
                print("bot> that line is not valid UTF-8 text: type it again as UTF-8 (check "
                      "the terminal's encoding)", file=out, flush=True)
                continue
            line = line.strip()
            if line.lower() in ("quit", "exit"):
                break
            if not line:
                continue
            reply = bot(line)
            where = f"  [{reply.source}, {reply.score:.2f}]" if reply.answer is not None else ""
            print(f"bot> {reply}{where}", file=out, flush=True)
    finally:
        if readline is not None:
            readline.set_history_length(1000)
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(history)
            except OSError:
                pass
    return 0
